"""`vitrt export` end to end: a toy zoo entry (so these run before the real models land), checkpoints, bad input."""

from __future__ import annotations

import json

import onnx
import pytest
import torch
from export_toys import Unpicklable, build_tiny_stack
from safetensors.torch import save_file

from vitrt.cli import main
from vitrt.metadata import ModelMetadata
from vitrt.models import registry

TOY = "toy_stack_t"


@pytest.fixture
def toy_model(monkeypatch):
    """A registered zoo entry for the duration of one test (kept out of timm's registry and of other tests)."""
    spec = registry.ModelSpec(
        name=TOY,
        family="ca",
        backbone="deit",
        builder=build_tiny_stack,
        default_img_size=56,
        num_classes=10,
        official_name="toy_stack_tiny",
    )
    monkeypatch.setitem(registry._REGISTRY, TOY, spec)
    return spec


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    try:
        main(["export", *args])
        code = 0
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, fragment: str) -> None:
    assert code != 0
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[-1].startswith("error: ") and fragment in lines[-1], err


def test_zoo_name_exports_random_weights_with_a_warning(toy_model, tmp_path, capsys):
    out, report = tmp_path / "toy.onnx", tmp_path / "toy.json"
    code, stdout, _ = run_cli(capsys, TOY, "--out", str(out), "--report", str(report))
    assert code == 0
    assert "RANDOM weights" in stdout and "wrote" in stdout and "logits" in stdout
    model = onnx.load(out)
    meta = ModelMetadata.from_props({p.key: p.value for p in model.metadata_props})
    assert meta.model == TOY and meta.family == "ca" and meta.flavour == "portable" and meta.batch == "dynamic"
    assert len([n for n in model.graph.node if n.domain == "vitrt"]) == 5
    data = json.loads(report.read_text())
    assert data["validation"]["passed"] and data["flavour"] == "portable"


def test_checkpoint_file_names_its_model_through_the_official_config(toy_model, tmp_path, capsys):
    torch.manual_seed(3)
    trained = build_tiny_stack()
    checkpoint = tmp_path / "ckpt_best.pth"
    config = {"MODEL": {"NAME": "toy_stack_tiny", "TYPE": "toy"}, "DATA": {"IMG_SIZE": 56}}
    torch.save({"model": trained.state_dict(), "config": config, "epoch": 299}, checkpoint)
    out = tmp_path / "from_ckpt.onnx"
    code, stdout, err = run_cli(capsys, str(checkpoint), "--out", str(out), "--flavour", "inlined")
    assert code == 0, err
    assert "RANDOM" not in stdout
    x = torch.randn(2, 3, 56, 56)
    import onnxruntime as ort

    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        torch.testing.assert_close(
            torch.from_numpy(session.run(None, {"input": x.numpy()})[0]), trained.eval()(x), atol=1e-5, rtol=1e-4
        )
    meta = ModelMetadata.from_props({p.key: p.value for p in onnx.load(out).metadata_props})
    assert meta.flavour == "inlined" and len(meta.checkpoint_sha256) == 64


def test_safetensors_with_sidecar_and_explicit_model(toy_model, tmp_path, capsys):
    weights = tmp_path / "weights.safetensors"
    save_file(build_tiny_stack().state_dict(), str(weights))
    code, _, err = run_cli(capsys, str(weights), "--out", str(tmp_path / "a.onnx"), "--skip-validation")
    assert_one_line_error(code, err, "cannot tell which model")
    weights.with_suffix(".json").write_text(json.dumps({"model": TOY}))
    code, stdout, err = run_cli(
        capsys, str(weights), "--out", str(tmp_path / "a.onnx"), "--skip-validation", "--flavour", "tensorrt"
    )
    assert code == 0, err
    assert "validation skipped" in stdout
    assert not onnx.load(tmp_path / "a.onnx").functions
    code, _, err = run_cli(
        capsys, TOY, "--checkpoint", str(weights), "--out", str(tmp_path / "b.onnx"), "--skip-validation"
    )
    assert code == 0, err


def test_untrusted_pickle_needs_trust_checkpoint(toy_model, tmp_path, capsys):
    checkpoint = tmp_path / "full.pth"
    torch.save({"model": build_tiny_stack().state_dict(), "extra": Unpicklable()}, checkpoint)
    code, _, err = run_cli(capsys, TOY, "--checkpoint", str(checkpoint), "--out", str(tmp_path / "m.onnx"))
    assert_one_line_error(code, err, "--trust-checkpoint")
    code, _, err = run_cli(
        capsys,
        TOY,
        "--checkpoint",
        str(checkpoint),
        "--out",
        str(tmp_path / "m.onnx"),
        "--trust-checkpoint",
        "--skip-validation",
    )
    assert code == 0, err


class _RunsAShellCommand:
    """A pickle that would call os.system when unpickled (it writes a marker file)."""

    def __init__(self, marker) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("layout", ["torch.save", "plain pickle"])
def test_malicious_pickle_is_refused_naming_the_global_and_the_flag(toy_model, tmp_path, capsys, layout):
    import pickle

    marker = tmp_path / "pwned"
    checkpoint = tmp_path / "evil.pth"
    payload = {"model": build_tiny_stack().state_dict(), "hook": _RunsAShellCommand(marker)}
    if layout == "torch.save":
        torch.save(payload, checkpoint)
    else:
        checkpoint.write_bytes(pickle.dumps(payload, protocol=4))
    code, out, err = run_cli(capsys, TOY, "--checkpoint", str(checkpoint), "--out", str(tmp_path / "m.onnx"))
    assert_one_line_error(code, err, "disallowed global posix.system")
    line = err.strip().splitlines()[-1]
    assert "could run code" in line and "--trust-checkpoint" in line
    assert "not a PyTorch checkpoint" not in line
    assert "weights_only" not in out + err and "Warning" not in out + err  # no torch advice or warning leaks
    assert not marker.exists()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["nonexistent_model_t"], "unknown model"),
        ([TOY, "--opset", "30"], "opset 30 is not supported"),
        ([TOY, "--batch", "0"], "--batch must be"),
        ([TOY, "--batch", "many"], "--batch must be"),
        ([TOY, "--flavour", "tflite"], "unknown flavour"),
        ([TOY, "--exporter", "jit"], "unknown exporter"),
        ([TOY, "--img-size", "60"], "cannot be built for img_size 60"),
        ([TOY, "--img-size", "0"], "img_size 0 is out of range"),
        ([TOY, "--no-custom-ops", "--flavour", "tensorrt"], "no vitrt nodes"),
        (["missing_checkpoint.pth"], "checkpoint not found"),
        ([TOY, "--checkpoint", "missing_checkpoint.pth"], "checkpoint not found"),
        ([TOY, "--model", "agent_deit_t"], "contradicts"),
    ],
)
def test_bad_input_is_one_line_error(toy_model, tmp_path, capsys, args, fragment):
    code, _, err = run_cli(capsys, *args, "--out", str(tmp_path / "m.onnx"))
    assert_one_line_error(code, err, fragment)
    assert not (tmp_path / "m.onnx").exists()


def test_wrong_or_broken_checkpoints_are_one_line_errors(toy_model, tmp_path, capsys):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint at all")
    code, _, err = run_cli(capsys, TOY, "--checkpoint", str(garbage), "--out", str(tmp_path / "m.onnx"))
    assert_one_line_error(code, err, "not a PyTorch checkpoint")
    wrong = tmp_path / "wrong.pth"
    torch.save({"model": {"head.weight": torch.zeros(3, 3)}}, wrong)
    code, _, err = run_cli(capsys, str(wrong), "--model", TOY, "--out", str(tmp_path / "m.onnx"))
    assert_one_line_error(code, err, "does not fit")


def test_unwritable_output_is_one_line_error(toy_model, tmp_path, capsys):
    blocker = tmp_path / "plain_file"
    blocker.write_text("x")
    code, _, err = run_cli(capsys, TOY, "--out", str(blocker / "m.onnx"))
    assert_one_line_error(code, err, "cannot create the output directory")


def _run(capsys, *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_random_weight_export_records_its_seed_and_parity_uses_the_same_weights(toy_model, tmp_path, capsys):
    """`vitrt export MODEL && vitrt parity --model MODEL`: a random-weight artifact must not fail parity against a
    new random model (it did: cosine -0.03, blamed on the first block)."""
    out = tmp_path / "toy.onnx"
    code, _, err = run_cli(capsys, TOY, "--out", str(out), "--skip-validation")
    assert code == 0, err
    meta = ModelMetadata.from_props({p.key: p.value for p in onnx.load(out).metadata_props})
    assert meta.weights == "random" and meta.weights_seed == 0 and meta.checkpoint_sha256 is None
    torch.manual_seed(1234)  # whatever the global RNG state, parity rebuilds the recorded weights
    code, stdout, err = _run(capsys, "parity", "--model", TOY, "--artifact", str(out), "--n", "8", "--device", "cpu")
    assert code == 0, stdout + err
    assert "all backends within budget" in stdout and "seed 0" in stdout

    checkpoint = tmp_path / "toy.pth"
    torch.save({"model": build_tiny_stack().state_dict()}, checkpoint)
    code, _, err = _run(
        capsys, "parity", "--model", str(checkpoint), "--arch", TOY, "--artifact", str(out), "--device", "cpu"
    )
    assert_one_line_error(code, err, "holds random weights (seed 0)")
    assert f"--model {TOY}" in err


def test_checkpoint_export_records_its_sha256_and_parity_refuses_other_weights(toy_model, tmp_path, capsys):
    checkpoint, other = tmp_path / "trained.pth", tmp_path / "other.pth"
    torch.manual_seed(7)
    torch.save({"model": build_tiny_stack().state_dict()}, checkpoint)
    torch.manual_seed(8)
    torch.save({"model": build_tiny_stack().state_dict()}, other)
    out = tmp_path / "trained.onnx"
    code, _, err = run_cli(capsys, TOY, "--checkpoint", str(checkpoint), "--out", str(out), "--skip-validation")
    assert code == 0, err
    meta = ModelMetadata.from_props({p.key: p.value for p in onnx.load(out).metadata_props})
    assert meta.weights == "checkpoint" and len(meta.checkpoint_sha256) == 64

    code, _, err = _run(capsys, "parity", "--model", TOY, "--artifact", str(out), "--device", "cpu")
    assert_one_line_error(code, err, "was exported from a checkpoint")
    assert f"--model CHECKPOINT --arch {TOY}" in err
    code, _, err = _run(capsys, "parity", "--model", str(other), "--arch", TOY, "--artifact", str(out))
    assert_one_line_error(code, err, "is not the checkpoint trained.onnx was exported from")
    code, stdout, err = _run(
        capsys, "parity", "--model", str(checkpoint), "--arch", TOY, "--artifact", str(out), "--n", "8"
    )
    assert code == 0, stdout + err
