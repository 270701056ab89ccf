"""A vitrt export through TensorRT's ONNX parser into our plugins, per family (TensorRT + GPU machines only).

For every trained demo model (one per attention family): `vitrt export` (portable file) -> parser with
libvitrt_plugins.so loaded -> every vitrt node is one plugin layer of its creator -> FP32 and FP16 engines with the
dynamic batch 1:8:32 -> parity against PyTorch within the precision's budget at batch 1 and at batch 5 (not a
profile point). Plus a version-compatible engine that carries the plugin library and loads in a fresh runtime, and
the refusal of an unknown hardware-compatibility level. Where TensorRT or a GPU is missing, every test skips with
that reason (tests/conftest.py).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from vitrt import export, onnx_passes
from vitrt.engines.builder import BuildOptions, build_engine
from vitrt.engines.manifest import EngineManifest, manifest_path
from vitrt.errors import EngineBuildError, PluginError
from vitrt.models import create_model, list_models
from vitrt.parity import run_parity

pytestmark = [pytest.mark.tensorrt, pytest.mark.gpu]

# One trained demo per family: agent, ca, flatten, inline, mlla.
DEMOS = sorted(name for name in list_models(with_weights=True) if name.endswith("_digits"))
PROFILE = "1:8:32"


@pytest.fixture(scope="module")
def plugin_library() -> Path:
    from vitrt.plugins.builder import build
    from vitrt.plugins.paths import find_plugin_library

    try:
        return find_plugin_library()
    except PluginError:
        result = build()  # a fresh GPU machine: build against its TensorRT (TENSORRT_ROOT or the CMake default)
        if result.plugin_library is None:
            pytest.skip("the plugin library was not built (no TensorRT headers found; set TENSORRT_ROOT)")
        return result.plugin_library


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("exports")
    paths = {}
    for name in DEMOS:
        paths[name] = out / f"{name}.onnx"
        report = export.export_model(create_model(name), paths[name])
        assert report.validated and report.op_counts, name
    return paths


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("name", DEMOS)
def test_export_parses_into_plugins_and_the_engine_matches_pytorch(
    name: str, precision: str, exports: dict[str, Path], plugin_library: Path, tmp_path: Path
) -> None:
    import onnx

    onnx_path = exports[name]
    result = build_engine(
        onnx_path,
        tmp_path / f"{name}_{precision}.plan",
        # Optimisation level 1: a few seconds per build instead of a minute, same kernels and precision rules.
        BuildOptions(
            precision=precision, batch=PROFILE, plugins=str(plugin_library), progress=False, optimization_level=1
        ),
    )
    manifest = result.manifest
    expected = onnx_passes.vitrt_op_counts(onnx.load(str(onnx_path)))
    assert manifest.onnx_flavour == "tensorrt" and expected
    assert manifest.plugin_layers == expected  # every vitrt node became one plugin layer of its creator
    assert manifest.profiles[0]["input"]["min"][0] == 1 and manifest.profiles[0]["input"]["max"][0] == 32
    if precision == "fp16":
        # Default islands are the fragile steps only: the attention plugins themselves run in FP16.
        assert not result.plan.fp32_nodes & {n.name for n in onnx_passes.vitrt_nodes(result.plan.model)}
    for batch in (1, 5):
        report = run_parity(name, result.engine_path, inputs="demo-digits", n=20, batch_size=batch)
        assert report.precision == precision
        assert report.passed, (batch, report.failures())


def test_version_compatible_engine_carries_the_plugins_and_loads_in_a_fresh_runtime(
    exports: dict[str, Path], plugin_library: Path, tmp_path: Path
) -> None:
    name = "ca_digits"
    result = build_engine(
        exports[name],
        tmp_path / "vc.plan",
        BuildOptions(
            version_compatible=True, batch="1:2:4", plugins=str(plugin_library), progress=False, optimization_level=1
        ),
    )
    manifest = EngineManifest.load(manifest_path(result.engine_path))
    assert manifest.version_compatible and manifest.plugins_serialized
    # A new process: nothing registered beforehand; the plan's lean runtime loads the serialized plugin library.
    script = (
        "import sys, numpy as np, tensorrt as trt\n"
        "logger = trt.Logger(trt.Logger.WARNING)\n"
        "runtime = trt.Runtime(logger)\n"
        "runtime.engine_host_code_allowed = True\n"
        f"engine = runtime.deserialize_cuda_engine(open({str(result.engine_path)!r}, 'rb').read())\n"
        "assert engine is not None, 'deserialisation failed'\n"
        "print(engine.num_io_tensors)\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert int(run.stdout.split()[-1]) == 2
    report = run_parity(name, result.engine_path, inputs="demo-digits", n=8, batch_size=3)
    assert report.passed, report.failures()


def test_unknown_hardware_compatibility_is_one_line(exports: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(EngineBuildError, match="unknown hardware compatibility 'hopper_only'") as caught:
        build_engine(exports["ca_digits"], tmp_path / "x.plan", BuildOptions(hardware_compatibility="hopper_only"))
    assert "\n" not in str(caught.value)
