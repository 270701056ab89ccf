"""Triton repositories for ONNX files: configs parsed with Triton's schema, copies byte-identical and runnable."""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from vitrt.cli import main
from vitrt.errors import ArtifactError, VitrtError
from vitrt.metadata import ModelMetadata
from vitrt.triton import RepositoryOptions, build_repository, load_artifact


def _export_tiny(path: Path, metadata: ModelMetadata | None, *, dynamic: bool = True) -> Path:
    """A small patch-embed + LayerNorm + head classifier exported with plain torch.onnx.export."""
    torch = pytest.importorskip("torch")
    from torch import nn

    class Tiny(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.patch = nn.Conv2d(3, 16, kernel_size=4, stride=4)
            self.norm = nn.LayerNorm(16)
            self.head = nn.Linear(16, 10)

        def forward(self, x: Any) -> Any:
            tokens = self.norm(self.patch(x).flatten(2).transpose(1, 2))
            return self.head(tokens.mean(1))

    torch.manual_seed(0)
    axes = {"input": {0: "batch"}, "logits": {0: "batch"}} if dynamic else None
    # The TorchScript exporter takes 0.3 s here; the dynamo one ~19 s for the same module.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            Tiny().eval(),
            (torch.randn(2, 3, 32, 32),),
            str(path),
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes=axes,
            dynamo=False,
        )
    model = onnx.load(str(path))
    if metadata is not None:
        helper.set_model_props(model, metadata.to_props())
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory, digits_metadata: Callable[..., ModelMetadata]) -> Path:
    return _export_tiny(tmp_path_factory.mktemp("onnx") / "tiny.onnx", digits_metadata())


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_onnx_repository_matches_the_graph_and_runs(tiny_onnx: Path, tmp_path: Path, parse_config: Callable) -> None:
    import onnxruntime as ort

    repo = tmp_path / "repo"
    report = build_repository([tiny_onnx], repo, RepositoryOptions(max_batch_size=16, warmup=2))
    config = parse_config(repo / "tiny_digits" / "config.pbtxt")

    assert config.name == "tiny_digits" and config.backend == "onnxruntime"
    assert config.max_batch_size == 16
    original = ort.InferenceSession(str(tiny_onnx), providers=["CPUExecutionProvider"])
    for declared, node in zip(config.input, original.get_inputs(), strict=True):
        assert declared.name == node.name and list(declared.dims) == node.shape[1:]
        assert declared.data_type == 11  # TYPE_FP32; ORT says tensor(float)
    assert [o.name for o in config.output] == [o.name for o in original.get_outputs()] == ["logits"]
    assert list(config.output[0].dims) == [10] and config.output[0].label_filename == "labels.txt"
    assert (repo / "tiny_digits" / "labels.txt").read_text().splitlines()[3] == "digit 3"
    assert list(config.dynamic_batching.preferred_batch_size) == [2, 4, 8, 16]
    assert config.instance_group[0].kind == 2 and config.instance_group[0].count == 1  # KIND_CPU
    assert [w.batch_size for w in config.model_warmup] == [1, 16]
    assert list(config.model_warmup[0].inputs["input"].dims) == [3, 32, 32]

    copied = repo / "tiny_digits" / "1" / "model.onnx"
    assert _sha256(copied) == _sha256(tiny_onnx)
    session = ort.InferenceSession(str(copied), providers=["CPUExecutionProvider"])
    batch = np.random.default_rng(0).standard_normal((5, 3, 32, 32), dtype=np.float32)
    np.testing.assert_array_equal(session.run(None, {"input": batch})[0], original.run(None, {"input": batch})[0])

    assert report.triton_release == "26.08" and report.image == "nvcr.io/nvidia/tritonserver:26.08-py3"
    assert "--gpus" not in report.commands["docker"] and f"{repo}:/models:ro" in report.commands["docker"]
    assert report.plugin_library is None


def test_gpu_instances_and_fixed_batch(tmp_path: Path, parse_config: Callable, digits_metadata: Callable) -> None:
    fixed = _export_tiny(tmp_path / "fixed.onnx", digits_metadata("fixed_digits"), dynamic=False)
    repo = tmp_path / "repo"
    report = build_repository([fixed], repo, RepositoryOptions(device="gpu", gpus=[0, 1], instances=2))
    config = parse_config(repo / "fixed_digits" / "config.pbtxt")
    assert config.max_batch_size == 0 and not config.HasField("dynamic_batching")
    assert list(config.input[0].dims) == [2, 3, 32, 32]  # no batching: the full shape
    assert config.instance_group[0].kind == 1 and list(config.instance_group[0].gpus) == [0, 1]  # KIND_GPU
    assert "--gpus all" in report.commands["docker"]
    with pytest.raises(VitrtError, match="fixed batch dimension"):
        build_repository([fixed], tmp_path / "other", RepositoryOptions(max_batch_size=4))


def _helper_model(path: Path, *, external: bool) -> Path:
    """A Gemm classifier with FP16 output built with onnx.helper (optionally with external weights)."""
    weight = numpy_helper.from_array(np.arange(48, dtype=np.float32).reshape(12, 4) / 10, "weight")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "weight"], ["y"]), helper.make_node("Cast", ["y"], ["probs"], to=10)],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 12])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT16, ["n", "classes"])],  # 4 by shape inference
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(
        model,
        str(path),
        save_as_external_data=external,
        all_tensors_to_one_file=True,
        location="gemm.bin",
        size_threshold=0,
    )
    return path


def test_external_data_becomes_a_model_directory(tmp_path: Path, parse_config: Callable) -> None:
    import onnxruntime as ort

    source = _helper_model(tmp_path / "gemm.onnx", external=True)
    repo = tmp_path / "repo"
    build_repository([source], repo, RepositoryOptions(name="gemm"))
    bundle = repo / "gemm" / "1" / "model.onnx"
    assert bundle.is_dir()
    assert _sha256(bundle / "model.onnx") == _sha256(source)
    assert _sha256(bundle / "gemm.bin") == _sha256(tmp_path / "gemm.bin")
    config = parse_config(repo / "gemm" / "config.pbtxt")
    assert config.output[0].data_type == 10 and not config.output[0].label_filename  # TYPE_FP16, no metadata
    assert list(config.output[0].dims) == [4]  # the symbolic class dim, resolved by ONNX shape inference
    x = np.ones((3, 12), dtype=np.float32)
    copied = ort.InferenceSession(str(bundle / "model.onnx"), providers=["CPUExecutionProvider"])
    original = ort.InferenceSession(str(source), providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(copied.run(None, {"x": x})[0], original.run(None, {"x": x})[0])

    (tmp_path / "gemm.bin").unlink()
    with pytest.raises(ArtifactError, match="external data file 'gemm.bin' is missing"):
        load_artifact(source)


def test_preprocessing_ensemble(tiny_onnx: Path, tmp_path: Path, parse_config: Callable) -> None:
    repo = tmp_path / "repo"
    report = build_repository([tiny_onnx], repo, RepositoryOptions(with_preprocessing=True))
    pre = parse_config(repo / "tiny_digits_preprocess" / "config.pbtxt")
    ens = parse_config(repo / "tiny_digits_image" / "config.pbtxt")
    assert pre.backend == "python" and (repo / "tiny_digits_preprocess" / "1" / "model.py").is_file()
    assert pre.input[0].data_type == 13 and list(pre.output[0].dims) == [3, 32, 32]  # TYPE_STRING in
    assert '"crop_pct": 0.875' in pre.parameters["preprocess"].string_value
    assert ens.platform == "ensemble" and ens.max_batch_size == pre.max_batch_size == 8
    steps = ens.ensemble_scheduling.step
    assert [s.model_name for s in steps] == ["tiny_digits_preprocess", "tiny_digits"]
    assert dict(steps[0].output_map) == {"PIXELS": "pixels"} and dict(steps[1].input_map) == {"input": "pixels"}
    assert ens.output[0].name == "logits" and (repo / "tiny_digits_image" / "1").is_dir()
    assert report.commands["build_image"].startswith("docker build -f docker/Dockerfile.triton")
    assert "vitrt-triton:26.08" in report.commands["docker"]


def test_refusals_leave_the_repository_alone(tiny_onnx: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    build_repository([tiny_onnx], repo, RepositoryOptions())
    before = _sha256(repo / "tiny_digits" / "config.pbtxt")
    with pytest.raises(VitrtError, match="already exists; pass --force"):
        build_repository([tiny_onnx], repo, RepositoryOptions(max_batch_size=4))
    with pytest.raises(VitrtError, match="not a usable Triton model name"):
        build_repository([tiny_onnx], repo, RepositoryOptions(name="../escape"))
    with pytest.raises(VitrtError, match="preferred-batch-size 16 exceeds max_batch_size 8"):
        build_repository([tiny_onnx], repo, RepositoryOptions(preferred_batch_sizes=[16], force=True))
    assert _sha256(repo / "tiny_digits" / "config.pbtxt") == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".vitrt-triton-")]  # staging cleaned up
    build_repository([tiny_onnx], repo, RepositoryOptions(max_batch_size=4, force=True))
    assert _sha256(repo / "tiny_digits" / "config.pbtxt") != before

    plain = _helper_model(tmp_path / "plain.onnx", external=False)
    with pytest.raises(VitrtError, match="needs the model's metadata"):
        build_repository([plain], tmp_path / "r2", RepositoryOptions(with_preprocessing=True))
    with pytest.raises(VitrtError, match="2 artifacts map to the model name 'tiny_digits'"):
        build_repository([tiny_onnx, tiny_onnx], tmp_path / "r3", RepositoryOptions())


def test_cli_writes_and_reports_errors(tiny_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as ok:
        main(["triton-repo", str(tiny_onnx), "--out", str(tmp_path / "repo"), "--name", "digits"])
    assert ok.value.code == 0
    printed = capsys.readouterr().out
    assert "digits: onnxruntime KIND_CPU max_batch_size=8" in printed
    assert "tritonserver --model-repository=/models" in printed

    (tmp_path / "broken.onnx").write_bytes(b"not an onnx file")
    with pytest.raises(SystemExit) as bad:
        main(["triton-repo", str(tmp_path / "broken.onnx"), "--out", str(tmp_path / "repo2")])
    assert bad.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot read ONNX file") and "Traceback" not in err
    assert not (tmp_path / "repo2").exists()


def test_pbtxt_strings_survive_the_schema(parse_config: Callable, tmp_path: Path) -> None:
    from vitrt.triton.pbtxt import Enum, ProtoMap, to_pbtxt

    tricky = 'quote " backslash \\ newline \n tab \t bell \x07 ünïcode'
    text = to_pbtxt(
        {
            "name": "m",
            "backend": "python",
            "max_batch_size": 0,
            "input": [{"name": "x", "data_type": Enum("TYPE_FP32"), "dims": [-1]}],
            "parameters": ProtoMap({"p": {"string_value": tricky}}),
        }
    )
    (tmp_path / "config.pbtxt").write_text(text, encoding="utf-8")
    config = parse_config(tmp_path / "config.pbtxt")
    assert config.parameters["p"].string_value == tricky and list(config.input[0].dims) == [-1]
    with pytest.raises(TypeError):
        to_pbtxt({"x": object()})
