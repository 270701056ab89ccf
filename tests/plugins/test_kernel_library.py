"""The real kernel library, built by CMake + nvcc for sm_80/86/89/90: exports, versions and host-side logic.

Nothing here launches a kernel (CI has no GPU); the numerics are covered by test_emulated_kernels.py and tests/gpu.
"""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import torch

from vitrt.errors import PluginError
from vitrt.plugins.kernels import DTYPES, STRATEGIES, KernelError, KernelLibrary
from vitrt.plugins.paths import BUILD_INFO
from vitrt.plugins.torch_ops import KernelRunner


@pytest.fixture(scope="module")
def library(kernel_build) -> KernelLibrary:
    return KernelLibrary(kernel_build / "libvitrt_kernels.so")


def test_build_targets_every_supported_architecture(kernel_build):
    info = json.loads((kernel_build / BUILD_INFO).read_text())
    assert info["cuda_architectures"] == ["80", "86", "89", "90"]
    assert info["cufft_library"] and "cufft" in info["cufft_library"]
    # The fatbinary carries one cubin per architecture.
    blob = (kernel_build / "libvitrt_kernels.so").read_bytes()
    for arch in (80, 86, 89, 90):
        assert re.search(rb"sm_%d" % arch, blob), f"no sm_{arch} code in the library"


def test_library_reports_versions(library):
    nvcc = subprocess.run(["nvcc", "--version"], capture_output=True, text=True, check=True).stdout
    release = re.search(r"release (\d+\.\d+)", nvcc).group(1)
    assert library.cuda_compiled_version == release
    assert library.version == "1.0.0"
    assert re.fullmatch(r"\d+\.\d+\.\d+", library.cufft_version)
    assert library.status_string(4) == "workspace too small"


def test_auto_strategy_follows_the_cost_model(library):
    cufft, direct = STRATEGIES["cufft"], STRATEGIES["direct"]
    assert library.circulant_auto_strategy(2, 14, 14, 192) == direct  # CA-DeiT-T at 224 px
    assert library.circulant_auto_strategy(1, 28, 28, 384) == direct  # small batch, launch-bound FFT
    assert library.circulant_auto_strategy(8, 28, 28, 384) == cufft  # O(N^2) work overtakes the FFT
    assert library.circulant_auto_strategy(1, 64, 64, 192) == cufft  # does not fit shared memory
    assert library.circulant_direct_shared_bytes(14, 14) == 3 * 14 * (14 * 8 + 8) * 4


def test_linear_workspace_covers_every_smaller_batch(library):
    dtype = DTYPES["float16"]
    # The chunking depends on the batch (more chunks where few samples leave SMs idle), so the size is not simply
    # linear: check that the size for batch B still bounds every batch up to B (dynamic-batch engines get the
    # profile maximum's size), across the whole default profile 1..32.
    sizes = [library.focused_workspace(b, 3136, 96, 3, dtype) for b in range(1, 33)]
    assert all(s > 0 for s in sizes)
    assert all(sizes[b] >= max(sizes[: b + 1]) for b in range(len(sizes))), sizes
    assert library.agent_workspace(4, 197, 192, 49, 3, dtype) >= library.agent_workspace(3, 197, 192, 49, 3, dtype)
    assert library.inline_workspace(2, 197, 192, 6, 14, 14, 1, dtype) > 0
    assert library.mlla_workspace(2, 196, 256, 8, dtype) > 0


def test_invalid_arguments_are_explained(library):
    with pytest.raises(KernelError, match="channels 100 are not divisible by num_heads 3"):
        library.focused_workspace(1, 49, 100, 3, 0)
    with pytest.raises(KernelError, match="head_dim 5 must be even"):
        library.mlla_workspace(1, 49, 10, 2, 0)
    with pytest.raises(KernelError, match=r"tokens 50 != num_prefix_tokens 0 \+ height 7 \* width 7"):
        library.inline_workspace(1, 50, 16, 2, 7, 7, 0, 0)
    with pytest.raises(KernelError, match="dtype 7 is not float32"):
        library.agent_workspace(1, 49, 16, 9, 2, 7)
    with pytest.raises(KernelError, match="strategy 5 is not 0"):
        library.circulant_select_strategy(1, 7, 7, 16, 5)
    assert issubclass(KernelError, PluginError)


def test_device_queries_fail_cleanly_without_a_gpu(library):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(KernelError, match="cudaGetDevice"):
        library.circulant_select_strategy(1, 14, 14, 64, STRATEGIES["direct"])


def test_cuda_runner_refuses_cpu_tensors(library):
    q = torch.randn(1, 16, 8)
    with pytest.raises(PluginError, match="needs CUDA tensors"):
        KernelRunner(library).circulant_attention(q, q, q, height=4, width=4)
