"""Where the time goes: an ONNX Runtime profile of one model, its kernel time split by part of the network.

The portable file's vitrt nodes are inlined with `vitrt.onnx_passes.inline_functions` (body nodes are named
`<call node>/<body node>`), and the session runs with ONNX Runtime's basic graph optimizations only, so node names
keep the exporter's module scopes (`/blocks/blocks.3/attn/qkv/MatMul`) and every kernel can be attributed:

* `attention core`: the vitrt attention op (its inlined body) and, in a softmax model, the QK^T / softmax / AV
  nodes - everything of a block's token mixer that is not a projection;
* `attention projections`: the token mixer's linear layers (qkv, q, kv, proj, in_proj, out_proj, ...);
* `mlp`: the block's feed-forward network; `norm`: the block's normalizations;
* `other`: stem / patch embedding, downsampling, position encodings, residual adds, head;
* `unattributed`: nodes without a module scope (rare: nodes the exporter or ONNX Runtime created unnamed).

The shares are of summed kernel time at basic optimization level; the fused graph the benchmark times spends its
time in the same places, at a smaller total.
"""

from __future__ import annotations

import json
import math
import re
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

CATEGORIES = ("attention core", "attention projections", "mlp", "norm", "other", "unattributed")
_BLOCK = re.compile(r"^blocks?\d*\.\d+$")  # blocks.3 (DeiT, Swin, MLLA), block1.0 (PVT)
_PROJECTION = re.compile(r"(proj|^qkv$|^q$|^k$|^v$|^kv$|^qk$|^to_[qkv]+$)")
_MLP = re.compile(r"^(mlp|ffn|feed_?forward|fc\d*)$")


def categorize(name: str, vitrt_calls: set[str] | None = None) -> str:
    """The category of one node, from its (module-scoped) name."""
    if vitrt_calls and any(name.startswith(call + "/") for call in vitrt_calls):
        return "attention core"
    if not name.startswith("/"):
        return "unattributed"  # no module scope at all
    parts = [p for p in name.split("/") if p][:-1]  # module scopes; the last part is the node's own name
    if not parts:
        return "other"  # the top-level module's own code (class token, position embedding)
    blocks = [i for i, part in enumerate(parts) if _BLOCK.match(part)]
    if not blocks:
        return "other"
    # The innermost block scope that still has a child module (Swin: layers.0 / blocks.0 / attn).
    inner = [i for i in blocks if i + 1 < len(parts)]
    if not inner:
        return "other"  # residual adds, window partition reshapes at block level
    children = parts[inner[-1] + 1 :]
    child = children[0].lower()
    if _MLP.match(child) or "mlp" in child:
        return "mlp"
    if child.startswith(("norm", "ln")):
        return "norm"
    if child.startswith(("cpe", "pos", "drop", "downsample", "merg", "patch")):
        return "other"
    if any(_PROJECTION.search(part.lower()) for part in children):
        return "attention projections"
    return "attention core"


def cost_split(
    onnx_path: str | Path,
    *,
    batch: int = 1,
    threads: int | None = None,
    runs: int | None = None,
    warmup: int = 1,
    seed: int = 0,
    target_s: float = 1.0,
) -> dict[str, Any]:
    """Kernel time per category (ms per run and share) of `onnx_path` at `batch`, from an ONNX Runtime profile.

    runs: profiled runs (default: enough for about `target_s` seconds, 3 to 20).
    """
    import onnx
    import onnxruntime as ort

    from vitrt.onnx_passes import inline_functions, vitrt_nodes

    model = onnx.load(str(onnx_path))
    calls = {node.name for node in vitrt_nodes(model)}
    inlined = inline_functions(model).model if calls else model
    with tempfile.TemporaryDirectory(prefix="vitrt-profile-") as tmp:
        path = Path(tmp) / "model.onnx"
        onnx.save(inlined, str(path))
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.log_severity_level = 3
        if threads is not None:
            options.intra_op_num_threads = threads
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        feeds = _feeds(session, batch, seed)
        began = time.perf_counter()
        for _ in range(max(1, warmup)):
            session.run(None, feeds)
        per_run = (time.perf_counter() - began) / max(1, warmup)
        if runs is None:
            runs = min(20, max(3, math.ceil(target_s / max(per_run, 1e-4))))
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "profile")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        for _ in range(runs + 1):  # the first profiled run carries one-time allocations; it is dropped below
            session.run(None, feeds)
        trace = json.loads(Path(session.end_profiling()).read_text())
    return summarize(trace, calls, runs)


def _feeds(session: Any, batch: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    feeds = {}
    for spec in session.get_inputs():
        shape = [batch if i == 0 else d for i, d in enumerate(spec.shape)]
        if not all(isinstance(d, int) for d in shape):
            raise ValueError(f"input {spec.name} has a symbolic non-batch dimension: {spec.shape}")
        feeds[spec.name] = rng.standard_normal(shape, dtype=np.float32)
    return feeds


def summarize(trace: list[dict[str, Any]], calls: set[str], runs: int) -> dict[str, Any]:
    """Per category: kernel ms per run and share; the op types that take the most time."""
    run_starts = sorted(e["ts"] for e in trace if e.get("cat") == "Session" and e.get("name") == "model_run")
    first_end = None
    if len(run_starts) > runs:
        first = next(e for e in trace if e.get("name") == "model_run" and e["ts"] == run_starts[0])
        first_end = first["ts"] + first["dur"]
    by_category: Counter[str] = Counter()
    by_op: Counter[str] = Counter()
    for event in trace:
        if event.get("cat") != "Node" or not event.get("name", "").endswith("_kernel_time"):
            continue
        if first_end is not None and event["ts"] <= first_end:
            continue
        name = event["name"][: -len("_kernel_time")]
        by_category[categorize(name, calls)] += event["dur"]
        by_op[event.get("args", {}).get("op_name", "?")] += event["dur"]
    total = sum(by_category.values()) or 1
    return {
        "total_kernel_ms": round(total / 1e3 / runs, 3),
        "categories": {
            c: {"ms": round(by_category[c] / 1e3 / runs, 3), "share": round(by_category[c] / total, 4)}
            for c in CATEGORIES
        },
        "top_ops": [[op, round(t / total, 4)] for op, t in by_op.most_common(5)],
        "runs": runs,
        "optimization": "basic",
    }


def split_exponents(splits: list[dict[str, Any]], from_px: int) -> dict[str, float]:
    """Per category: the slope of log kernel time against log tokens over `splits` (one per resolution)."""
    used = [s for s in splits if s["img_size"] >= from_px]
    used = used if len(used) >= 2 else splits
    if len(used) < 2:
        return {}
    exponents = {}
    for category in ("attention", *CATEGORIES, "total"):
        xs, ys = [], []
        for split in used:
            ms = _category_ms(split, category)
            if ms > 0:
                xs.append(np.log(split["img_size"] ** 2))
                ys.append(np.log(ms))
        if len(xs) >= 2:
            exponents[category] = round(float(np.polyfit(xs, ys, 1)[0]), 3)
    return exponents


def _category_ms(split: dict[str, Any], category: str) -> float:
    cats = split["categories"]
    if category == "total":
        return float(split["total_kernel_ms"])
    if category == "attention":
        return float(cats["attention core"]["ms"] + cats["attention projections"]["ms"])
    return float(cats[category]["ms"])
