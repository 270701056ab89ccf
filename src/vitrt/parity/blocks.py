"""Per-block parity: where inside the network does a deployed artifact start to diverge?

PyTorch block outputs come from forward hooks. On the artifact side the same tensors are exposed as extra graph
outputs of the artifact itself (never of a re-export, so a corrupted initializer in the file shows up where it
sits): the ONNX file for ONNX Runtime, and an engine rebuilt from the marked ONNX for TensorRT. The block-to-tensor
mapping comes from the module scopes the PyTorch exporter records on each node (`onnx_graph.block_output_tensors`).
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vitrt.parity.metrics import cosine_similarity

if TYPE_CHECKING:
    import onnx
    from torch import nn

# Module paths that name one transformer block: `blocks.3`, `layers.1.blocks.0`, `stages.2.blocks.1`, `block1.0`;
# models without such names fall back to stage lists (`stage3.5`, `layers.2`).
_BLOCK_PATH = re.compile(r"(?:^|\.)blocks?\d*\.\d+$")
_STAGE_PATH = re.compile(r"(?:^|\.)(?:layers|stages?)\d*\.\d+$")


@dataclass
class BlockComparison:
    block: str
    tensor: str
    max_abs: float
    rel: float  # max abs error / max |reference|
    cosine_min: float
    diverged: bool


@dataclass
class PerBlockReport:
    backend: str
    rows: list[BlockComparison] = field(default_factory=list)
    first_divergent: str | None = None
    threshold: float = 0.0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        if not self.rows:
            return f"{self.backend}: no block outputs compared ({'; '.join(self.notes) or 'no blocks found'})"
        if self.first_divergent is None:
            return f"{self.backend}: no block diverges (all within {self.threshold:g} relative error)"
        return f"{self.backend}: first divergent block is {self.first_divergent}"


def find_blocks(model: nn.Module) -> list[str]:
    """Qualified names of the model's transformer blocks, in forward order.

    A model may name them itself with a `parity_blocks()` method; otherwise module paths are matched.
    """
    custom = getattr(model, "parity_blocks", None)
    if callable(custom):
        return list(custom())
    all_names = [name for name, _ in model.named_modules() if name]
    for pattern in (_BLOCK_PATH, _STAGE_PATH):
        names = [name for name in all_names if pattern.search(name)]
        if names:
            # Outermost matches only: a list inside a block (`blocks.3.mlp.layers.0`) is not a block.
            return [name for name in names if not any(name.startswith(other + ".") for other in names)]
    return []


def torch_block_outputs(model: nn.Module, blocks: list[str], run: Callable[[], Any]) -> dict[str, np.ndarray]:
    """Call `run()` with forward hooks on `blocks`; returns each block's (first tensor) output as float32 numpy."""
    import torch

    modules = dict(model.named_modules())
    captured: dict[str, np.ndarray] = {}
    handles = []

    def hook_for(name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            tensor = output
            while isinstance(tensor, tuple | list) and tensor:
                tensor = tensor[0]
            if isinstance(tensor, torch.Tensor):
                captured[name] = tensor.detach().float().cpu().numpy()

        return hook

    try:
        for name in blocks:
            handles.append(modules[name].register_forward_hook(hook_for(name)))
        run()
    finally:
        for handle in handles:
            handle.remove()
    return captured


def onnx_block_outputs(
    model: onnx.ModelProto, tensors: dict[str, str], feeds: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Run `model` in ONNX Runtime (CPU) with the block tensors exposed as outputs."""
    import onnxruntime as ort

    from vitrt.engines.onnx_graph import add_graph_outputs

    probed = add_graph_outputs(model, tensors.values())
    session = ort.InferenceSession(probed.SerializeToString(), providers=["CPUExecutionProvider"])
    names = list(dict.fromkeys(tensors.values()))
    values = dict(zip(names, session.run(names, feeds), strict=True))
    return {block: values[tensor] for block, tensor in tensors.items()}


def openvino_block_outputs(
    model: onnx.ModelProto, tensors: dict[str, str], feeds: dict[str, np.ndarray], options: dict[str, Any]
) -> dict[str, np.ndarray]:
    """Compile `model` with OpenVINO (same precision options as the checked backend) with the block tensors exposed
    as outputs, and run it."""
    import tempfile
    from pathlib import Path

    import onnx as onnx_lib

    from vitrt.engines.onnx_graph import add_graph_outputs
    from vitrt.engines.openvino import OpenVINOBackend

    probed = add_graph_outputs(model, tensors.values())
    names = list(dict.fromkeys(tensors.values()))
    with tempfile.TemporaryDirectory(prefix="vitrt-ov-blocks-") as tmp:
        path = Path(tmp) / "probe.onnx"
        onnx_lib.save(probed, str(path))
        backend = OpenVINOBackend(path, cache=False, **options)
        try:
            values = backend.run(feeds, names)
        finally:
            backend.close()
    return {block: values[tensor] for block, tensor in tensors.items()}


def tensorrt_block_outputs(
    model: onnx.ModelProto,
    tensors: dict[str, str],
    feeds: dict[str, np.ndarray],
    build_options: dict[str, Any],
    plugins: str | Path | None,
) -> dict[str, np.ndarray]:
    """Build a probe engine from `model` with the block tensors marked as outputs, and run it."""
    import onnx as onnx_lib

    from vitrt.engines.builder import BuildOptions, build_engine
    from vitrt.engines.onnx_graph import add_graph_outputs
    from vitrt.engines.tensorrt_runtime import TensorRTBackend

    probed = add_graph_outputs(model, tensors.values())
    known = set(BuildOptions.__dataclass_fields__)
    options = BuildOptions(**{k: v for k, v in build_options.items() if k in known})
    options.progress = False
    batch = next(iter(feeds.values())).shape[0]
    options.batch = str(batch)
    with tempfile.TemporaryDirectory(prefix="vitrt-probe-") as tmp:
        onnx_path = Path(tmp) / "probe.onnx"
        onnx_lib.save(probed, str(onnx_path))
        result = build_engine(onnx_path, Path(tmp) / "probe.plan", options)
        backend = TensorRTBackend(result.engine_path, plugins=plugins)
        try:
            names = list(dict.fromkeys(tensors.values()))
            values = backend.run(feeds, names)
        finally:
            backend.close()
    return {block: values[tensor] for block, tensor in tensors.items()}


def compare_blocks(
    backend: str,
    blocks: list[str],
    reference: dict[str, np.ndarray],
    actual: dict[str, np.ndarray],
    tensors: dict[str, str],
    threshold: float,
) -> PerBlockReport:
    report = PerBlockReport(backend=backend, threshold=threshold)
    for block in blocks:
        if block not in reference or block not in actual:
            continue
        ref, act = reference[block], actual[block]
        if ref.size != act.size:
            report.notes.append(f"{block}: torch output {ref.shape} and artifact tensor {act.shape} differ in size")
            continue
        ref64 = ref.astype(np.float64).reshape(ref.shape[0], -1)
        act64 = act.astype(np.float64).reshape(ref.shape[0], -1)
        diff = np.abs(act64 - ref64)
        max_abs = float(diff.max())
        rel = max_abs / max(float(np.abs(ref64).max()), 1e-12)
        cos = float(cosine_similarity(ref64, act64).min())
        diverged = not np.isfinite(max_abs) or rel > threshold
        report.rows.append(BlockComparison(block, tensors.get(block, ""), max_abs, rel, cos, diverged))
        if diverged and report.first_divergent is None:
            report.first_divergent = block
    return report
