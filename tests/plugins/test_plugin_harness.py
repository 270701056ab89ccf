"""The TensorRT plugin layer without TensorRT: creators, attribute validation, serialization, format/shape/tactic
queries and enqueue, driven by emulation/plugin_harness.cpp against real TensorRT headers and the host-emulated
kernels (so enqueue really runs). Runs once per TensorRT header set: `vitrt.plugins.paths.tensorrt_header_sets()`
($VITRT_TENSORRT_HEADERS, else ../shared/third_party/tensorrt beside the checkout, which CI has) plus
$TENSORRT_INCLUDE_DIR when set (e.g. an installed TensorRT)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch
from host_build import NO_HEADERS_REASON, tensorrt_headers

from vitrt.ops import reference
from vitrt.ops.spec import load_op_specs, op_spec

HEADER_SETS = tensorrt_headers()
pytestmark = pytest.mark.skipif(not HEADER_SETS, reason=NO_HEADERS_REASON)


@pytest.fixture(scope="module", params=list(HEADER_SETS), ids=lambda version: f"tensorrt-{version}")
def harness(request, plugin_harness) -> Path:
    return plugin_harness(request.param)


def test_creators_fields_validation_and_build_queries(harness):
    report = json.loads(subprocess.run([harness, "describe"], capture_output=True, text=True, check=True).stdout)
    specs = load_op_specs()
    creators = {c["name"]: c for c in report["creators"]}
    assert set(creators) == set(specs)  # getCreators hands over all five ...
    assert report["creators_on_second_call"] == len(specs)  # ... to every registry that asks
    for name, spec in specs.items():
        creator = creators[name]
        assert (creator["version"], creator["namespace"]) == ("1", "vitrt")
        assert creator["interface"] == "PLUGIN CREATOR_V3ONE"
        assert creator["fields"] == {a.name: "INT32" if a.type == "int" else "FLOAT32" for a in spec.attributes}
    assert report["accepts_valid"] == 1
    for check in ("missing", "out_of_range", "bad_option", "wrong_type", "unknown"):
        assert report[f"rejects_{check}"] == 1, check
    assert report["core_name"] == "VitrtCirculantAttention"
    assert report["metadata"] == report["restored_metadata"] == "height=14,width=7,strategy=0"
    assert report["timing_cache_id"] == "VitrtCirculantAttention/height=14,width=7,strategy=0/kernels=10000"
    assert report["formats"] == {"half": 1, "mixed": 0, "int8": 0, "bf16": 1, "hwc": 0}
    assert report["output_shapes_status"] == 0 and report["output_is_q"] == 1
    assert report["rejects_bad_tokens"] == 1 and report["configure_ok"] == 1
    assert report["tactics"] == 2  # auto: cuFFT and direct (a 14x7 grid fits shared memory)


CASES = {
    "VitrtCirculantAttention": {"B": 2, "H": 5, "W": 6, "C": 12},
    "VitrtFocusedLinearAttention": {"B": 2, "H": 4, "W": 5, "C": 24, "attrs": {"num_heads": 3}},
    "VitrtMllaLinearAttention": {"B": 2, "H": 4, "W": 5, "C": 24, "attrs": {"num_heads": 3}},
    "VitrtInLineAttention": {"B": 2, "H": 4, "W": 5, "C": 24, "prefix": 1, "attrs": {"num_heads": 3}},
    "VitrtAgentAttention": {"B": 2, "H": 4, "W": 5, "C": 24, "a": 4, "prefix": 1, "attrs": {"num_heads": 3}},
}


@pytest.mark.parametrize(
    ("op", "dtype", "tactic"),
    [(op, dtype, 0) for op in CASES for dtype in ("float32", "float16")]
    + [("VitrtCirculantAttention", "float32", 1), ("VitrtCirculantAttention", "float32", 2)],
)
def test_enqueue_matches_reference(harness, tmp_path, op, dtype, tactic):
    from vitrt.plugins.cases import make_inputs

    torch_dtype = getattr(torch, dtype)
    tensors, attrs = make_inputs(op, CASES[op], dtype=torch_dtype, seed=11)
    spec = op_spec(op)
    lines = [f"op {op}", f"dtype {['float32', 'float16', 'bfloat16'].index(dtype)}", f"tactic {tactic}"]
    for attr in spec.attributes:
        if attr.name in attrs:
            lines.append(f"attr {attr.name} {attr.type[0]} {attrs[attr.name]!r}")
    for index, tensor in enumerate(tensors):
        path = tmp_path / f"in{index}.bin"
        path.write_bytes(tensor.contiguous().view(torch.uint8).numpy().tobytes())
        lines.append(f"input {tensor.dim()} {' '.join(map(str, tensor.shape))} {path}")
    lines.append(f"output {tmp_path / 'out.bin'}")
    (tmp_path / "job.txt").write_text("\n".join(lines) + "\n")
    run = subprocess.run([harness, "run", tmp_path / "job.txt"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    raw = bytearray((tmp_path / "out.bin").read_bytes())
    got = torch.frombuffer(raw, dtype=torch_dtype).reshape(tensors[0].shape)
    expected = reference.REFERENCE[op](*tensors, **attrs)
    atol, rtol = spec.tolerance(dtype)
    torch.testing.assert_close(got.float(), expected.float(), atol=atol, rtol=rtol)
    # Sized at build time before a tactic is chosen, so it covers cuFFT even when the direct tactic runs.
    assert json.loads(run.stdout)["workspace_bytes"] > 0
