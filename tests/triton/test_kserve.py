"""`vitrt triton-repo --kserve`: the InferenceService manifests, checked field by field against the kserve SDK.

The SDK's model classes (`kserve.models`, and the Kubernetes ones they refer to) name every field a resource may
have and its type; each manifest is rebuilt from them, so an unknown or misspelt field, a wrong type or a missing
required field fails here, before any cluster sees the file.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import yaml
from onnx import TensorProto, helper, numpy_helper

kserve_models = pytest.importorskip("kserve.models", reason="the kserve SDK (dev extra) checks the manifests")
kubernetes_models = pytest.importorskip("kubernetes.client.models", reason="the kserve SDK needs kubernetes")

from vitrt.cli import main  # noqa: E402
from vitrt.metadata import ModelMetadata  # noqa: E402

_LIST = re.compile(r"^[Ll]ist\[(.+)\]$")
_DICT = re.compile(r"^(?:dict\(str, (.+)\)|Dict\[str, (.+)\])$")
_PRIMITIVES: dict[str, tuple[type, ...]] = {"str": (str,), "int": (int,), "bool": (bool,), "float": (int, float)}


def build(data: Any, type_name: str, where: str = "") -> Any:
    """`data` as an instance of the SDK type `type_name`; AssertionError naming the field that does not fit."""
    if type_name == "object":  # int-or-string fields such as a probe's port
        return data
    if match := _LIST.match(type_name):
        assert isinstance(data, list), f"{where}: expected a list, got {data!r}"
        return [build(item, match.group(1), f"{where}[{i}]") for i, item in enumerate(data)]
    if match := _DICT.match(type_name):
        assert isinstance(data, dict), f"{where}: expected a mapping, got {data!r}"
        value_type = match.group(1) or match.group(2)
        return {key: build(value, value_type, f"{where}.{key}") for key, value in data.items()}
    if type_name in _PRIMITIVES:
        assert isinstance(data, _PRIMITIVES[type_name]), f"{where}: expected {type_name}, got {data!r}"
        return data
    klass = getattr(kserve_models, type_name, None) or getattr(kubernetes_models, type_name)
    assert isinstance(data, dict), f"{where}: expected a {type_name} mapping, got {data!r}"
    by_key = {key: attr for attr, key in klass.attribute_map.items()}
    unknown = sorted(set(data) - set(by_key))
    assert not unknown, f"{where or type_name}: {type_name} has no field(s) {unknown}"
    kwargs = {
        by_key[key]: build(value, klass.openapi_types[by_key[key]], f"{where}.{key}") for key, value in data.items()
    }
    return klass(**kwargs)  # the SDK's own checks: required fields, enumerations


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
    services = {name: yaml.safe_load((tmp_path / "k8s" / name).read_text()) for name in files}
    for name, document in services.items():
        service = build(document, "V1beta1InferenceService", name)
        assert service.kind == "InferenceService" and service.api_version == "serving.kserve.io/v1beta1"
        predictor = service.spec.predictor
        assert (predictor.min_replicas, predictor.max_replicas) == (2, 6)
        assert (predictor.scale_metric, predictor.scale_target) == ("concurrency", 24)

    triton = build(services["tiny-digits-triton.yaml"], "V1beta1InferenceService").spec.predictor.model
    assert triton.model_format.name == "triton" and triton.protocol_version == "v2"
    assert triton.storage_uri == "s3://models/vitrt"
    assert triton.resources.limits == {"cpu": "2", "memory": "4Gi"}
    env = {e.name: e.value for e in triton.env or []}
    if runtime == "vitrt":  # the Python-backend model needs vitrt's Triton image and its environment
        assert triton.image.startswith("vitrt-triton:") and env == {"VITRT_TRITON_ENV": "/opt/vitrt/triton-env"}
    else:
        assert triton.image is None and not env

    container = build(services["tiny-digits-vitrt.yaml"], "V1beta1InferenceService").spec.predictor.containers[0]
    assert container.args[:2] == ["serve", "/mnt/models/model.onnx"]
    assert {e.name: e.value for e in container.env} == {"STORAGE_URI": "s3://models/vitrt/tiny_digits/1"}
    assert container.readiness_probe.http_get.path == "/v2/health/ready"


def test_the_checker_rejects_a_misspelt_field() -> None:
    document = {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService", "spec": {"predictor": {}}}
    build(document, "V1beta1InferenceService")
    document["spec"]["predictor"]["minReplica"] = 1
    with pytest.raises(AssertionError, match="minReplica"):
        build(document, "V1beta1InferenceService")


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
