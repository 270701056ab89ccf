"""The CUDA kernels on a real GPU against the op references (needs only torch, numpy and pytest).

    PYTHONPATH=src python -m pytest tests/gpu -m gpu

Every op, strategy and dtype on the YAML test configs plus odd grids (7x7, 14x14, 13x17) at batch 1 and 5, within
the YAML tolerance; plus streams, repeatability and whole models under `use_implementation("cuda")`.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vitrt import ops
from vitrt.errors import PluginError
from vitrt.ops import reference
from vitrt.ops.spec import load_op_specs, op_spec
from vitrt.plugins.cases import kernel_test_configs, make_inputs
from vitrt.plugins.kernels import STRATEGIES, load_kernel_library
from vitrt.plugins.torch_ops import KernelRunner

pytestmark = pytest.mark.gpu

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@pytest.fixture(scope="session")
def runner() -> KernelRunner:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    try:
        library = load_kernel_library()
    except PluginError:
        from vitrt.plugins.builder import build

        try:
            build()  # a fresh GPU machine: build once for its toolkit
            library = load_kernel_library()
        except PluginError as err:
            pytest.skip(f"kernel library unavailable: {err}")
    return KernelRunner(library)


def _cases() -> list:
    cases = []
    for name, spec in load_op_specs().items():
        strategies = ["auto", "cufft", "direct"] if name == "VitrtCirculantAttention" else [None]
        for config in kernel_test_configs(name):
            for dtype in spec.dtypes:
                for strategy in strategies:
                    case_id = f"{name}-{config['name']}-{dtype}" + (f"-{strategy}" if strategy else "")
                    cases.append(pytest.param(name, config, dtype, strategy, id=case_id))
    return cases


@pytest.mark.parametrize(("op", "config", "dtype", "strategy"), _cases())
def test_kernel_matches_reference(runner, op, config, dtype, strategy):
    args, attrs = make_inputs(op, config, dtype=DTYPES[dtype], device="cuda", seed=3)
    if strategy is not None:
        attrs["strategy"] = STRATEGIES[strategy]
        if strategy == "direct":
            try:
                runner.library.circulant_select_strategy(config["B"], config["H"], config["W"], config["C"], 2)
            except PluginError as err:
                assert "shared memory" in str(err)
                with pytest.raises(PluginError, match="shared memory"):
                    runner.implementations()[op](*args, **attrs)
                pytest.skip(f"{config['H']}x{config['W']} does not fit the direct kernel here (refused cleanly)")
    with torch.inference_mode():
        got = runner.implementations()[op](*args, **attrs)
        torch.cuda.synchronize()
        expected = reference.REFERENCE[op](*args, **attrs)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    assert torch.isfinite(got.float()).all()
    atol, rtol = op_spec(op).tolerance(dtype)
    torch.testing.assert_close(got.float(), expected.float(), atol=atol, rtol=rtol)


@pytest.mark.parametrize("op", list(load_op_specs()))
def test_side_stream_and_repeatability(runner, op):
    config = kernel_test_configs(op)[0]
    args, attrs = make_inputs(op, config, device="cuda", seed=5)
    fn = runner.implementations()[op]
    with torch.inference_mode():
        first = fn(*args, **attrs)
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            second = fn(*args, **attrs)
        torch.cuda.current_stream().wait_stream(stream)
        torch.cuda.synchronize()
    # Right on the side stream (a missed stream argument would race the default stream's inputs) ...
    atol, rtol = op_spec(op).tolerance("float32")
    torch.testing.assert_close(second, reference.REFERENCE[op](*args, **attrs), atol=atol, rtol=rtol)
    # ... and bitwise equal to the default stream's result: fixed reduction orders.
    torch.testing.assert_close(first, second, atol=0, rtol=0)


def test_circulant_workspace_holds_at_every_batch_with_real_cufft(runner):
    """Real cuFFT work areas need not grow with the batch; the library's workspace size must (dynamic profiles)."""
    sizes = [runner.library.circulant_workspace(b, 14, 14, 96, 0, STRATEGIES["cufft"]) for b in range(1, 34)]
    assert sizes == sorted(sizes), sizes


def test_circulant_plans_follow_batch_changes(runner):
    op = "VitrtCirculantAttention"
    for batch in (1, 5, 2, 7, 32, 3, 5):  # power-of-two runs: 5 = 4 + 1, 7 = 4 + 2 + 1
        config = {"B": batch, "H": 16, "W": 12, "C": 40}
        args, attrs = make_inputs(op, config, device="cuda", seed=batch)
        with torch.inference_mode():
            got = runner.circulant_attention(*args, **attrs, strategy=STRATEGIES["cufft"])
            expected = reference.circulant_attention(*args, **attrs)
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


# -- whole models -------------------------------------------------------------------------------------------------


class TinyViT(nn.Module):
    """Patch embedding, one attention block of the chosen family calling vitrt.ops, pooled head."""

    def __init__(self, family: str, dim: int = 64, heads: int = 2, grid: int = 8, classes: int = 10):
        super().__init__()
        self.family, self.heads, self.grid = family, heads, grid
        self.embed = nn.Conv2d(3, dim, kernel_size=4, stride=4)
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.head = nn.Linear(dim, classes)
        n = grid * grid
        if family == "flatten":
            self.positional = nn.Parameter(torch.randn(1, n, dim) * 0.02)
            self.scale = nn.Parameter(torch.zeros(1, 1, dim))
        if family == "agent":
            self.agent_bias = nn.Parameter(torch.randn(heads, 4, n) * 0.02)
            self.query_bias = nn.Parameter(torch.randn(heads, n, 4) * 0.02)

    def forward(self, x):
        x = self.embed(x).flatten(2).transpose(1, 2)
        q, k, v = self.qkv(self.norm(x)).chunk(3, dim=-1)
        if self.family == "ca":
            y = ops.circulant_attention(q, k, v, height=self.grid, width=self.grid)
        elif self.family == "flatten":
            y = ops.focused_linear_attention(q, k, v, self.positional, self.scale, num_heads=self.heads)
        else:
            b, n, c = q.shape
            agents = nn.functional.adaptive_avg_pool2d(q.transpose(1, 2).reshape(b, c, self.grid, self.grid), 2)
            agents = agents.flatten(2).transpose(1, 2)
            y = ops.agent_attention(
                q, k, v, agents, self.agent_bias, self.query_bias, num_heads=self.heads, scale=(c // self.heads) ** -0.5
            )
        x = x + self.proj(y)
        return self.head(x.mean(dim=1))


@pytest.mark.parametrize("family", ["ca", "flatten", "agent"])
def test_model_logits_match_under_cuda_implementation(runner, family):
    torch.manual_seed(0)
    model = TinyViT(family).cuda().eval()
    images = torch.randn(3, 3, 32, 32, device="cuda")
    with torch.inference_mode():
        expected = model(images)
        with ops.use_implementation("cuda"):
            got = model(images)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
