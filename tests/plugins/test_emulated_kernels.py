"""The real kernel sources, compiled for the host with the CUDA emulation header, against the op references.

There is no GPU in CI, so this is where the kernels' index math, shared-memory layouts, barriers, warp shuffles,
chunking and cuFFT layout are exercised; tests/gpu repeats the same comparison on a real device. Every op, strategy
and dtype runs on small and odd shapes; the full YAML matrix is marked slow.
"""

from __future__ import annotations

import pytest
import torch

from vitrt.errors import PluginError
from vitrt.ops import reference
from vitrt.ops.spec import load_op_specs, op_spec
from vitrt.plugins.cases import kernel_test_configs, make_inputs
from vitrt.plugins.kernels import KernelLibrary
from vitrt.plugins.torch_ops import KernelRunner

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}

# Small shapes for the default suite: odd grids, cls tokens, head_dim not a multiple of 4 (scalar paths), C not a
# multiple of the direct kernel's channel tile.
SMALL = {
    "VitrtCirculantAttention": [
        {"name": "odd_3x5", "B": 2, "H": 3, "W": 5, "C": 13},
        {"name": "grid_7x7", "B": 1, "H": 7, "W": 7, "C": 16},
        {"name": "row_1x6", "B": 1, "H": 1, "W": 6, "C": 9},
    ],
    "VitrtFocusedLinearAttention": [
        {"name": "odd_5x7_d10", "B": 2, "H": 5, "W": 7, "C": 30, "attrs": {"num_heads": 3, "focusing_factor": 2.0}},
        {"name": "grid_4x4_d8", "B": 1, "H": 4, "W": 4, "C": 16, "attrs": {"num_heads": 2}},
    ],
    "VitrtMllaLinearAttention": [
        {"name": "odd_5x7_d10", "B": 2, "H": 5, "W": 7, "C": 30, "attrs": {"num_heads": 3}},
        {"name": "grid_4x4_d8", "B": 1, "H": 4, "W": 4, "C": 16, "attrs": {"num_heads": 2}},
    ],
    "VitrtInLineAttention": [
        {"name": "cls_3x5_d10", "B": 2, "H": 3, "W": 5, "C": 30, "prefix": 1, "attrs": {"num_heads": 3}},
        {"name": "grid_4x4_d8", "B": 1, "H": 4, "W": 4, "C": 16, "attrs": {"num_heads": 2}},
    ],
    "VitrtAgentAttention": [
        {"name": "cls_3x5_d10", "B": 2, "H": 3, "W": 5, "C": 30, "a": 4, "prefix": 1, "attrs": {"num_heads": 3}},
        {"name": "grid_6x6_a9", "B": 1, "H": 6, "W": 6, "C": 16, "a": 9, "attrs": {"num_heads": 2}},
    ],
}


def _strategies(op: str) -> list[int | None]:
    return [1, 2] if op == "VitrtCirculantAttention" else [None]


def _cases(configs: dict[str, list[dict]], dtypes: list[str]) -> list:
    return [
        pytest.param(op, config, dtype, strategy, id=f"{op}-{config['name']}-{dtype}-s{strategy}")
        for op, op_configs in configs.items()
        for config in op_configs
        for dtype in dtypes
        for strategy in _strategies(op)
    ]


@pytest.fixture(scope="module")
def runner(emulated_kernels) -> KernelRunner:
    return KernelRunner(KernelLibrary(emulated_kernels), emulated=True)


def _check(runner: KernelRunner, op: str, config: dict, dtype: str, strategy: int | None) -> None:
    args, attrs = make_inputs(op, config, dtype=DTYPES[dtype], seed=7)
    if strategy is not None:
        attrs["strategy"] = strategy
    with torch.no_grad():
        got = runner.implementations()[op](*args, **attrs)
    expected = reference.REFERENCE[op](*args, **attrs)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    atol, rtol = op_spec(op).tolerance(dtype)
    torch.testing.assert_close(got.float(), expected.float(), atol=atol, rtol=rtol)


@pytest.mark.parametrize(("op", "config", "dtype", "strategy"), _cases(SMALL, ["float32"]))
def test_kernel_matches_reference(runner, op, config, dtype, strategy):
    _check(runner, op, config, dtype, strategy)


@pytest.mark.parametrize(
    ("op", "config", "dtype", "strategy"),
    _cases({op: SMALL[op][:1] for op in SMALL}, ["float16", "bfloat16"]),
)
def test_kernel_matches_reference_half_precision(runner, op, config, dtype, strategy):
    _check(runner, op, config, dtype, strategy)


FULL = {name: kernel_test_configs(name) for name in load_op_specs()}


@pytest.mark.slow
@pytest.mark.parametrize(("op", "config", "dtype", "strategy"), _cases(FULL, ["float32", "float16", "bfloat16"]))
def test_kernel_matches_reference_on_every_test_config(runner, op, config, dtype, strategy):
    if strategy == 2:
        n = config["H"] * config["W"]
        if runner.library.circulant_direct_shared_bytes(config["H"], config["W"]) + 1024 > 101376:
            with pytest.raises(PluginError, match="shared memory"):
                _check(runner, op, config, dtype, strategy)
            pytest.skip(f"{n} tokens exceed the direct strategy's shared memory on sm_86 (refused cleanly)")
    _check(runner, op, config, dtype, strategy)


def test_launchers_reject_bad_arguments(runner):
    q = torch.randn(1, 12, 30)
    with pytest.raises(PluginError, match="not divisible by num_heads"):
        runner.focused_linear_attention(q, q, q, torch.zeros(1, 12, 30), torch.zeros(1, 1, 30), num_heads=4)
    with pytest.raises(PluginError, match="do not form a 3x5 grid"):
        runner.circulant_attention(q, q, q, height=3, width=5)
    with pytest.raises(PluginError, match="must be even"):
        runner.mlla_linear_attention(q, q, q, torch.zeros(12, 15, 2), num_heads=10)
    with pytest.raises(PluginError, match="strategy=3 is not one of"):
        runner.circulant_attention(q, q, q, height=3, width=4, strategy=3)
    with pytest.raises(PluginError, match="inference-only"):
        runner.circulant_attention(q.requires_grad_(), q, q, height=3, width=4)


def _plans_made(library_path) -> list[tuple[int, int, int]]:
    import ctypes

    hook = ctypes.CDLL(str(library_path)).vitrt_emulated_cufft_plans
    hook.argtypes = [ctypes.POINTER(ctypes.c_longlong), ctypes.c_int]
    count = hook(None, 0)
    values = (ctypes.c_longlong * (3 * count))()
    hook(values, count)
    return [tuple(values[i : i + 3]) for i in range(0, 3 * count, 3)]


def test_cufft_plans_and_workspace_hold_at_every_batch_of_a_dynamic_profile(runner, emulated_kernels):
    """A dynamic batch reuses the plans of power-of-two sample runs, and the workspace sized at a larger batch
    covers every smaller one although cuFFT's work area does not grow with the batch (the emulation shrinks it)."""
    height, width, channels = 5, 3, 11  # a grid no other test plans
    library = runner.library
    sizes = [library.circulant_workspace(b, height, width, channels, 0, 1) for b in range(1, 10)]
    assert sizes == sorted(sizes), sizes
    for batch in (1, 3, 5, 6, 7, 9):
        _check(runner, "VitrtCirculantAttention", {"B": batch, "H": height, "W": width, "C": channels}, "float32", 1)
    planned = {b for h, w, b in _plans_made(emulated_kernels) if (h, w) == (height, width)}
    assert planned == {channels * runs for runs in (1, 2, 4, 8)}  # not one plan per batch size


RACE_PROBE = r"""
#include <cstdio>
// Thread i > 0 reads what thread i - 1 wrote to shared memory, with or without the barrier in between.
__global__ void neighbour(float* out, int with_barrier)
{
    float* values = static_cast<float*>(::vitrt::emulation::dynamic_shared_memory());
    values[threadIdx.x] = static_cast<float>(threadIdx.x);
    if (with_barrier)
    {
        __syncthreads();
    }
    out[threadIdx.x] = values[threadIdx.x == 0 ? 0 : threadIdx.x - 1];
}

int main()
{
    static float out[256];
    for (int with_barrier = 0; with_barrier < 2; ++with_barrier)
    {
        int missing = 0;
        for (int launch = 0; launch < 8; ++launch)
        {
            ::vitrt::emulation::launch(neighbour, dim3(1), dim3(256), 256 * sizeof(float), nullptr, out, with_barrier);
            for (float value : out)
            {
                missing += value != value;
            }
        }
        std::printf("%d ", missing);
    }
    return 0;
}
"""


def test_emulated_thread_order_exposes_a_missing_barrier(emulated_kernels, tmp_path):
    """In a fixed thread order, thread i always finds thread i - 1's write; the emulator's shuffled order does not."""
    import shutil
    import subprocess

    from host_build import EMULATION_DIR, cuda_include

    source = tmp_path / "race.cpp"
    source.write_text(RACE_PROBE)
    binary = tmp_path / "race"
    flags = ["-x", "c++", "-std=c++20", "-O1", "-DVITRT_HOST_EMULATION", "-include", "vitrt_cuda_emulation.h"]
    includes = [f"-I{EMULATION_DIR}", f"-I{cuda_include()}"]
    compiler = shutil.which("g++")
    assert compiler is not None
    subprocess.run([compiler, *flags, *includes, str(source), "-o", str(binary), "-x", "none", str(emulated_kernels),
                    f"-Wl,-rpath,{emulated_kernels.parent}"], check=True)  # fmt: skip
    racy, synced = map(int, subprocess.run([binary], capture_output=True, text=True, check=True).stdout.split())
    assert racy > 0  # some reader ran before its writer
    assert synced == 0
