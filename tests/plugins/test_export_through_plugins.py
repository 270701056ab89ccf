"""Every family's vitrt export, node by node, through our plugins the way TensorRT's ONNX parser drives them.

Without TensorRT (tests/engines/test_tensorrt_plugins.py does it with TensorRT): for each trained demo model, the
`tensorrt` flavour the engine builder would hand to the parser; each vitrt node's attributes become plugin fields
exactly as the parser converts them (every attribute but `plugin_namespace`/`plugin_version`, INT -> kINT32,
FLOAT -> kFLOAT32) for the creator that the node's op_type, namespace and version name; the harness creates the
plugin from them, serializes and deserializes it, configures it for the node's real input shapes and runs enqueue
on the emulated kernels; the output must equal what ONNX Runtime computes for that node from its function body,
at batch 3 (not an optimisation-profile point).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from host_build import NO_HEADERS_REASON, tensorrt_headers
from onnx import numpy_helper

from vitrt import onnx_passes
from vitrt.data.digits import digits_batch
from vitrt.engines.onnx_graph import add_graph_outputs, model_metadata
from vitrt.export import export_model
from vitrt.models import create_model, list_models
from vitrt.ops.spec import op_spec

HEADER_SETS = tensorrt_headers()
pytestmark = pytest.mark.skipif(not HEADER_SETS, reason=NO_HEADERS_REASON)
DEMOS = sorted(name for name in list_models(with_weights=True) if name.endswith("_digits"))
PLUGIN_FIELDS_NOT_PASSED = {"plugin_namespace", "plugin_version"}


@pytest.fixture(scope="module")
def harness(plugin_harness) -> Path:
    return plugin_harness(list(HEADER_SETS)[-1])


@pytest.fixture(scope="module")
def creators(harness: Path) -> dict[str, dict]:
    report = json.loads(subprocess.run([harness, "describe"], capture_output=True, text=True, check=True).stdout)
    return {c["name"]: c for c in report["creators"]}


def _parser_fields(node: onnx.NodeProto) -> list[str]:
    """Job lines for the attributes the ONNX parser turns into plugin fields."""
    lines = []
    for attr in node.attribute:
        if attr.name in PLUGIN_FIELDS_NOT_PASSED:
            continue
        if attr.type == onnx.AttributeProto.INT:
            lines.append(f"attr {attr.name} i {attr.i}")
        elif attr.type == onnx.AttributeProto.FLOAT:
            lines.append(f"attr {attr.name} f {attr.f!r}")
        else:
            raise AssertionError(f"{node.name}: attribute {attr.name} has a type the plugin fields cannot carry")
    return lines


@pytest.mark.parametrize("name", DEMOS)
def test_every_vitrt_node_runs_as_its_plugin(name: str, harness: Path, creators: dict, tmp_path: Path) -> None:
    portable = tmp_path / f"{name}.onnx"
    export_model(create_model(name), portable, validate=False)  # export parity is tests/export's job
    model = onnx.load(str(portable))
    trt_flavour = onnx_passes.strip_functions(model)
    nodes = onnx_passes.vitrt_nodes(trt_flavour)
    assert nodes and not trt_flavour.functions

    # The tensors around every vitrt node, computed by ONNX Runtime from the portable file (function bodies).
    initializers = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    probes = sorted({t for n in nodes for t in [*n.input, *n.output] if t and t not in initializers})
    session = ort.InferenceSession(add_graph_outputs(model, probes).SerializeToString())
    x, _ = digits_batch(model_metadata(model), "test", limit=3)
    values = dict(zip(probes, session.run(probes, {session.get_inputs()[0].name: x}), strict=True))
    values.update(initializers)

    for index, node in enumerate(nodes):
        attrs = {a.name: a.s.decode() for a in node.attribute if a.name in PLUGIN_FIELDS_NOT_PASSED}
        creator = creators[node.op_type]  # the parser looks the creator up by op_type, version and namespace
        assert (attrs["plugin_version"], attrs["plugin_namespace"]) == (creator["version"], creator["namespace"])
        fields = _parser_fields(node)
        assert {line.split()[1] for line in fields} <= set(creator["fields"]), node.name
        job = tmp_path / f"node{index}"
        job.mkdir()
        lines = [f"op {node.op_type}", "dtype 0", "tactic 0", *fields]
        for i, tensor_name in enumerate(node.input):
            tensor = np.ascontiguousarray(values[tensor_name], dtype=np.float32)
            (job / f"in{i}.bin").write_bytes(tensor.tobytes())
            lines.append(f"input {tensor.ndim} {' '.join(map(str, tensor.shape))} {job / f'in{i}.bin'}")
        lines.append(f"output {job / 'out.bin'}")
        (job / "job.txt").write_text("\n".join(lines) + "\n")
        run = subprocess.run([harness, "run", job / "job.txt"], capture_output=True, text=True)
        assert run.returncode == 0, f"{node.name} ({node.op_type}): {run.stderr}"
        expected = values[node.output[0]]
        got = np.frombuffer((job / "out.bin").read_bytes(), dtype=np.float32).reshape(expected.shape)
        atol, rtol = op_spec(node.op_type).tolerance("float32")
        np.testing.assert_allclose(got, expected, atol=atol, rtol=rtol, err_msg=f"{node.name} ({node.op_type})")
