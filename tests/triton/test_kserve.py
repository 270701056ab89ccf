"""`vitrt triton-repo --kserve`: the InferenceService manifests, checked field by field against the kserve SDK.

The SDK's model classes (`kserve.models`, and the Kubernetes ones they refer to) name every field a resource may
have and its type; each manifest is rebuilt from them, so an unknown or misspelt field, a wrong type or a missing
required field fails here, before any cluster sees the file.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
import yaml
from onnx import TensorProto, helper, numpy_helper

if importlib.util.find_spec("kserve") is None:
    pytest.skip("the kserve SDK (dev extra) checks the manifests", allow_module_level=True)

from vitrt.cli import main
from vitrt.metadata import ModelMetadata

# kserve's generated gRPC modules and tritonclient's register the same protobuf names ('inference.*'); one process
# cannot import both, so the SDK runs in a child process (kserve_check.py beside this file).
CHECKER = Path(__file__).with_name("kserve_check.py")


def check(*manifests: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CHECKER), *map(str, manifests)], capture_output=True, text=True, timeout=300, check=False
    )


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory: pytest.TempPathFactory, digits_metadata: Callable[..., ModelMetadata]) -> Path:
    """A linear 10-class digits classifier (Flatten + Gemm) with vitrt metadata."""
    weight = np.random.default_rng(0).standard_normal((3 * 32 * 32, 10)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["input"], ["flat"]), helper.make_node("Gemm", ["flat", "weight"], ["logits"])],
        "tiny_digits",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        [numpy_helper.from_array(weight, "weight")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    helper.set_model_props(model, digits_metadata().to_props())
    path = tmp_path_factory.mktemp("kserve") / "tiny_digits.onnx"
    onnx.save(model, str(path))
    return path


def _run(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    return int(exit_info.value.code or 0), captured.out + captured.err


@pytest.mark.parametrize("runtime", ["triton", "vitrt"])
def test_manifests_fit_the_kserve_models(
    onnx_model: Path, tmp_path: Path, runtime: str, capsys: pytest.CaptureFixture
) -> None:
    code, out = _run([
        "triton-repo", str(onnx_model), "--out", str(tmp_path / "repo"), "--runtime", runtime,
        "--kserve", str(tmp_path / "k8s"), "--storage-uri", "s3://models/vitrt", "--replicas", "2:6",
        "--scale-target", "24",
    ], capsys)  # fmt: skip
    assert code == 0, out
    files = sorted(p.name for p in (tmp_path / "k8s").iterdir())
    assert files == ["tiny-digits-triton.yaml", "tiny-digits-vitrt.yaml"]
    assert f"kubectl apply -f {tmp_path / 'k8s' / 'tiny-digits-triton.yaml'}" in out
    checked = check(*(tmp_path / "k8s" / name for name in files))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    services = {name: yaml.safe_load((tmp_path / "k8s" / name).read_text()) for name in files}
    for service in services.values():
        assert service["kind"] == "InferenceService" and service["apiVersion"] == "serving.kserve.io/v1beta1"
        predictor = service["spec"]["predictor"]
        assert (predictor["minReplicas"], predictor["maxReplicas"]) == (2, 6)
        assert (predictor["scaleMetric"], predictor["scaleTarget"]) == ("concurrency", 24)

    triton = services["tiny-digits-triton.yaml"]["spec"]["predictor"]["model"]
    assert triton["modelFormat"]["name"] == "triton" and triton["protocolVersion"] == "v2"
    assert triton["storageUri"] == "s3://models/vitrt"
    assert triton["resources"]["limits"] == {"cpu": "2", "memory": "4Gi"}
    env = {e["name"]: e["value"] for e in triton.get("env", [])}
    if runtime == "vitrt":  # the Python-backend model needs vitrt's Triton image and its environment
        assert triton["image"].startswith("vitrt-triton:") and env == {"VITRT_TRITON_ENV": "/opt/vitrt/triton-env"}
    else:
        assert "image" not in triton and not env

    container = services["tiny-digits-vitrt.yaml"]["spec"]["predictor"]["containers"][0]
    assert container["args"][:2] == ["serve", "/mnt/models/model.onnx"]
    assert {e["name"]: e["value"] for e in container["env"]} == {"STORAGE_URI": "s3://models/vitrt/tiny_digits/1"}
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"


def test_the_checker_rejects_a_misspelt_field(tmp_path: Path) -> None:
    document: dict = {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService", "spec": {"predictor": {}}}
    (tmp_path / "good.yaml").write_text(yaml.safe_dump(document))
    document["spec"]["predictor"]["minReplica"] = 1
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(document))
    good, bad = check(tmp_path / "good.yaml"), check(tmp_path / "bad.yaml")
    assert good.returncode == 0, good.stderr
    assert bad.returncode == 1 and "has no field(s) ['minReplica']" in bad.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "--kserve needs --storage-uri"),
        (["--storage-uri", "models/vitrt"], "--storage-uri needs a scheme"),
        (["--storage-uri", "s3://m", "--replicas", "many"], "--replicas takes MIN:MAX"),
        (["--storage-uri", "s3://m", "--replicas", "3:2"], "replicas"),
    ],
)
def test_bad_kserve_options_are_one_line_errors(
    onnx_model: Path, tmp_path: Path, args: list[str], message: str, capsys: pytest.CaptureFixture
) -> None:
    command = ["triton-repo", str(onnx_model), "--out", str(tmp_path / "repo"), "--kserve", str(tmp_path / "k"), *args]
    code, out = _run(command, capsys)
    assert code != 0
    assert out.startswith("error: ") and message in out and "Traceback" not in out
    assert not (tmp_path / "k").exists() and not (tmp_path / "repo").exists()
