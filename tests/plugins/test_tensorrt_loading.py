"""Loading libvitrt_plugins.so into TensorRT and running one engine per op (TensorRT + GPU machines only)."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from vitrt.errors import PluginError
from vitrt.ops import reference
from vitrt.ops.spec import load_op_specs, op_spec
from vitrt.plugins import load_into_tensorrt
from vitrt.plugins.cases import make_inputs


def _tensorrt_importable() -> bool:
    if importlib.util.find_spec("tensorrt") is None:
        return False
    try:
        import tensorrt
    except Exception:
        return False
    return hasattr(tensorrt, "get_plugin_registry")  # tensorrt-stubs alone is not TensorRT


@pytest.mark.skipif(_tensorrt_importable(), reason="TensorRT is installed here")
def test_loading_without_tensorrt_is_a_plugin_error(tmp_path):
    library = tmp_path / "libvitrt_plugins.so"
    library.write_bytes(b"")
    with pytest.raises(PluginError, match="TensorRT is not importable"):
        load_into_tensorrt(library)


CONFIGS = {
    "VitrtCirculantAttention": {"B": 2, "H": 7, "W": 7, "C": 32},
    "VitrtFocusedLinearAttention": {"B": 2, "H": 7, "W": 7, "C": 32, "attrs": {"num_heads": 2}},
    "VitrtMllaLinearAttention": {"B": 2, "H": 7, "W": 7, "C": 32, "attrs": {"num_heads": 2}},
    "VitrtInLineAttention": {"B": 2, "H": 7, "W": 7, "C": 32, "prefix": 1, "attrs": {"num_heads": 2}},
    "VitrtAgentAttention": {"B": 2, "H": 7, "W": 7, "C": 32, "a": 9, "prefix": 1, "attrs": {"num_heads": 2}},
}


@pytest.mark.tensorrt
@pytest.mark.gpu
@pytest.mark.parametrize("op", list(load_op_specs()))
def test_engine_with_the_plugin_matches_reference(op):
    import tensorrt as trt

    try:
        registered = load_into_tensorrt()
    except PluginError as err:
        pytest.skip(f"plugin library unavailable: {err}")
    assert op in registered
    spec = op_spec(op)
    tensors, attrs = make_inputs(op, CONFIGS[op], device="cuda", seed=2)
    creator = trt.get_plugin_registry().get_creator(op, spec.plugin_version, spec.plugin_namespace)
    fields = [
        trt.PluginField(
            a.name,
            torch.tensor([attrs[a.name]], dtype=torch.int32 if a.type == "int" else torch.float32).numpy(),
            trt.PluginFieldType.INT32 if a.type == "int" else trt.PluginFieldType.FLOAT32,
        )
        for a in spec.attributes
        if a.name in attrs
    ]
    plugin = creator.create_plugin(op, trt.PluginFieldCollection(fields), trt.TensorRTPhase.BUILD)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    inputs = [
        network.add_input(name, trt.float32, tuple(t.shape)) for name, t in zip(spec.input_names, tensors, strict=True)
    ]
    layer = network.add_plugin_v3(inputs, [], plugin)
    network.mark_output(layer.get_output(0))
    serialized = builder.build_serialized_network(network, builder.create_builder_config())
    assert serialized is not None, f"{op}: engine build failed"
    engine = trt.Runtime(logger).deserialize_cuda_engine(serialized)
    context = engine.create_execution_context()
    out = torch.empty_like(tensors[0])
    for name, tensor in zip(spec.input_names, tensors, strict=True):
        context.set_tensor_address(name, tensor.data_ptr())
    context.set_tensor_address(engine.get_tensor_name(engine.num_io_tensors - 1), out.data_ptr())
    assert context.execute_async_v3(torch.cuda.current_stream().cuda_stream)
    torch.cuda.synchronize()
    expected = reference.REFERENCE[op](*tensors, **attrs)
    atol, rtol = spec.tolerance("float32")
    torch.testing.assert_close(out, expected, atol=atol, rtol=rtol)


def test_plugin_library_loads_without_tensorrt_and_hands_over_every_creator():
    """dlopen without libnvinfer: static registration finds no registry, so getCreators() returns all five."""
    import subprocess
    import sys

    from vitrt.plugins.paths import find_plugin_library

    if _tensorrt_importable():
        pytest.skip("TensorRT is installed here (its registry would take the creators)")
    try:
        library = find_plugin_library()
    except PluginError as err:
        pytest.skip(str(err))
    script = (
        "import ctypes, sys\n"
        f"lib = ctypes.CDLL({str(library)!r})\n"
        "count = ctypes.c_int32(-1)\n"
        "lib.getCreators.restype = ctypes.c_void_p\n"
        "pointer = lib.getCreators(ctypes.byref(count))\n"
        "print(count.value, bool(pointer))\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["5", "True"]
