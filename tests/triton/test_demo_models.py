"""Triton repositories for the trained `*_digits` demo models exported by vitrt.

Exporting one demo model takes 7-20 s on two cores, so the default suite covers one of them end to end and
the rest run with `make test-all` (marked slow). The models' own tests already check export parity.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vitrt import export
from vitrt.data.digits import digit_to_pil, digits_batch, load_digits_split
from vitrt.models import list_models
from vitrt.triton import RepositoryOptions, build_repository

DEFAULT_DEMO = "ca_digits"  # the one exported in the default suite
DEMOS = sorted(name for name in list_models(with_weights=True) if name.endswith("_digits"))


@pytest.mark.parametrize("name", [pytest.param(n, marks=() if n == DEFAULT_DEMO else pytest.mark.slow) for n in DEMOS])
def test_demo_model_repository_serves_digits(
    name: str,
    tmp_path: Path,
    parse_config: Callable,
    monkeypatch: pytest.MonkeyPatch,
    stand_in_pb_utils: types.ModuleType,
) -> None:
    import onnxruntime as ort
    from google.protobuf import json_format

    onnx_path = tmp_path / f"{name}.onnx"
    export.export_zoo_model(name, onnx_path, validate=False)
    repo = tmp_path / "repo"
    build_repository([onnx_path], repo, RepositoryOptions(max_batch_size=16, with_preprocessing=True))

    config = parse_config(repo / name / "config.pbtxt")
    original = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (graph_in,), (graph_out,) = original.get_inputs(), original.get_outputs()
    assert config.name == name and config.backend == "onnxruntime" and config.max_batch_size == 16
    assert [i.name for i in config.input] == [graph_in.name] and list(config.input[0].dims) == graph_in.shape[1:]
    assert [o.name for o in config.output] == [graph_out.name] and list(config.output[0].dims) == graph_out.shape[1:]
    assert config.input[0].data_type == config.output[0].data_type == 11  # TYPE_FP32 == tensor(float)
    copied = repo / name / "1" / "model.onnx"
    assert hashlib.sha256(copied.read_bytes()).digest() == hashlib.sha256(onnx_path.read_bytes()).digest()

    # The ensemble path, emulated: PNG bytes -> the preprocessing model -> the copied classifier.
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", stand_in_pb_utils)
    from vitrt.triton.preprocess_model import TritonPythonModel

    pre_config = json_format.MessageToDict(
        parse_config(repo / f"{name}_preprocess" / "config.pbtxt"), preserving_proto_field_name=True
    )
    model = TritonPythonModel()
    model.initialize({"model_config": json.dumps(pre_config)})
    images, labels = load_digits_split("test")
    encoded = []
    for image in images[:32]:
        buffer = io.BytesIO()
        digit_to_pil(image).save(buffer, format="PNG")
        encoded.append([buffer.getvalue()])
    (response,) = model.execute([{"IMAGE": np.array(encoded, dtype=object)}])
    pixels = response.output_tensors[0].as_numpy()
    reference_pixels, _ = digits_batch(_metadata_of(onnx_path), "test", limit=32)
    np.testing.assert_allclose(pixels, reference_pixels, rtol=0, atol=1e-6)
    session = ort.InferenceSession(str(copied), providers=["CPUExecutionProvider"])
    logits = session.run(None, {graph_in.name: pixels})[0]
    accuracy = float((logits.argmax(1) == labels[:32]).mean())
    assert accuracy >= 0.9, f"{name}: {accuracy:.2f} on 32 test digits through the repository"


def _metadata_of(onnx_path: Path) -> Any:
    import onnx

    from vitrt.metadata import ModelMetadata

    model = onnx.load(str(onnx_path), load_external_data=False)
    return ModelMetadata.from_props({p.key: p.value for p in model.metadata_props})
