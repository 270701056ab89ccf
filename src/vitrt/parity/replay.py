"""`vitrt parity --replay DIR`: re-run the inputs a server's shadow parity kept (`vitrt serve --shadow-keep DIR`).

Every kept request runs again through the served (primary) artifact and the shadow reference recorded in the
folder's `shadow.json`, and is compared with `vitrt.parity.metrics` against the budget the server used. When the
primary is a vitrt export of a zoo model (or `model` names its PyTorch model), the kept inputs also go through
`run_parity` with per-block comparison, which names the first transformer block that drifts.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vitrt.errors import ArtifactError, VitrtError
from vitrt.parity.budgets import Budget
from vitrt.parity.metrics import OutputComparison, check_budget, compare
from vitrt.parity.report import ParityReport

log = logging.getLogger(__name__)

INDEX_NAME = "shadow.json"
INDEX_FORMAT = "vitrt-shadow-keep/1"


@dataclass
class KeptRequest:
    file: str
    request_id: str
    inputs: dict[str, np.ndarray]
    primary: dict[str, np.ndarray]  # outputs the server answered with
    reference: dict[str, np.ndarray]  # outputs the shadow reference computed


@dataclass
class ReplayedRequest:
    file: str
    request_id: str
    comparisons: list[OutputComparison]
    # Largest difference between the primary's output now and the one the server answered with.
    reproduced_max_abs: float | None

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.comparisons)

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "request_id": self.request_id,
            "passed": self.passed,
            "reproduced_max_abs": self.reproduced_max_abs,
            "comparisons": [c.to_dict() for c in self.comparisons],
        }


@dataclass
class ReplayReport:
    directory: str
    model: str
    primary: dict[str, Any]
    reference: dict[str, Any]
    budget: Budget
    requests: list[ReplayedRequest]
    parity: ParityReport | None = None  # against PyTorch, with per-block localisation
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.requests) and (self.parity is None or self.parity.passed)

    def failures(self) -> list[str]:
        found = [f"{r.request_id or r.file}: {f}" for r in self.requests for c in r.comparisons for f in c.failures]
        if self.parity is not None:
            found += [f"against PyTorch: {f}" for f in self.parity.failures()]
        return found

    def first_divergent_blocks(self) -> dict[str, str | None]:
        return self.parity.first_divergent_blocks() if self.parity is not None else {}

    def to_dict(self) -> dict[str, Any]:
        return {
            "directory": self.directory,
            "model": self.model,
            "primary": self.primary,
            "reference": self.reference,
            "budget": self.budget.to_dict(),
            "passed": self.passed,
            "requests": [r.to_dict() for r in self.requests],
            "parity": self.parity.to_dict() if self.parity is not None else None,
            "first_divergent_blocks": self.first_divergent_blocks(),
            "notes": self.notes,
        }

    def write(self, path: str | Path) -> Path:
        from vitrt.files import atomic_write

        target = Path(path)
        target = target if target.suffix == ".json" else target.with_suffix(".json")
        atomic_write(target, json.dumps(self.to_dict(), indent=2).encode())
        return target

    def print(self, console: Any = None) -> None:
        from rich.console import Console
        from rich.table import Table

        console = console or Console()
        console.print(
            f"[bold]shadow replay[/bold] of {len(self.requests)} kept requests of model {self.model!r} from "
            f"{self.directory}"
        )
        console.print(f"primary: {_describe(self.primary)}   reference: {_describe(self.reference)}")
        table = Table("request", "output", "max abs", "mean abs", "min cosine", "top-1", "reproduced", "verdict")
        for request in self.requests:
            for c in request.comparisons:
                table.add_row(
                    request.request_id or request.file,
                    c.output,
                    f"{c.max_abs:.3g}",
                    f"{c.mean_abs:.3g}",
                    f"{c.cosine_min:.6f}",
                    "-" if c.top1_agreement is None else f"{c.top1_agreement:.3f}",
                    "-" if request.reproduced_max_abs is None else f"{request.reproduced_max_abs:.2g}",
                    "ok" if c.passed else "; ".join(c.failures),
                )
        console.print(table)
        if self.parity is not None:
            self.parity.print(console)
        for note in self.notes:
            console.print(f"note: {note}")


def read_index(directory: str | Path) -> dict[str, Any]:
    folder = Path(directory)
    index_path = folder / INDEX_NAME
    if not index_path.is_file():
        raise VitrtError(f"{folder} is not a shadow keep folder (no {INDEX_NAME}); see vitrt serve --shadow-keep")
    try:
        index = json.loads(index_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise VitrtError(f"{index_path}: not valid JSON ({err})") from None
    if not isinstance(index, dict) or index.get("format") != INDEX_FORMAT or not isinstance(index.get("entries"), list):
        raise VitrtError(f"{index_path}: not a {INDEX_FORMAT} index")
    return index


def load_kept(directory: str | Path) -> tuple[dict[str, Any], list[KeptRequest]]:
    """The index and every kept request still on disk (entries whose file is gone are skipped)."""
    folder = Path(directory)
    index = read_index(folder)
    kept = []
    for entry in index["entries"]:
        path = folder / str(entry.get("file", ""))
        if not path.is_file() or path.parent != folder:
            continue
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {key: data[key] for key in data.files}
        except (OSError, ValueError) as err:
            raise VitrtError(f"{path}: not a readable .npz file ({err})") from None
        groups: dict[str, dict[str, np.ndarray]] = {"input": {}, "primary": {}, "reference": {}}
        for key, value in arrays.items():
            group, _, name = key.partition(":")
            if group in groups and name:
                groups[group][name] = value
        if groups["input"]:
            kept.append(KeptRequest(path.name, str(entry.get("request_id", "")), *groups.values()))
    if not kept:
        raise VitrtError(f"{folder}: the index lists no kept inputs that are still on disk")
    return index, kept


def replay(
    directory: str | Path,
    *,
    model: str | None = None,
    per_block: bool = True,
    budget_overrides: dict[str, float] | None = None,
    device: str = "auto",
    plugins: str | Path | None = None,
) -> ReplayReport:
    """Re-run a shadow keep folder through its primary and reference backends (and PyTorch, per block)."""
    from vitrt.parity.budgets import default_budget
    from vitrt.serve.config import ModelConfig
    from vitrt.serve.repository import load_backend

    folder = Path(directory)
    index, kept = load_kept(folder)
    budget = Budget(**index["budget"]) if isinstance(index.get("budget"), dict) else default_budget("fp32")
    budget = budget.with_overrides(budget_overrides)
    name = str(index.get("model", "model"))
    primary_info, reference_info = dict(index.get("primary") or {}), dict(index.get("reference") or {})
    notes: list[str] = []
    workdir = Path(tempfile.mkdtemp(prefix="vitrt-replay-"))
    requests = []
    try:
        backends = []
        for role, info in (("primary", primary_info), ("reference", reference_info)):
            if not info.get("artifact"):
                raise VitrtError(f"{folder / INDEX_NAME}: no {role} artifact recorded")
            config = ModelConfig(
                name=f"{name}.{role}",
                artifact=str(info["artifact"]),
                backend=info.get("backend") or "auto",
                backend_options=info.get("backend_options") or {},
                warmup=False,
            )
            backends.append(load_backend(config, workdir))
        primary, reference = backends
        try:
            from vitrt.serve.shadow import run_backend

            for request in kept:
                names = [n for n in request.primary if any(s.name == n for s in reference.outputs)]
                ours = run_backend(primary, request.inputs, names)
                theirs = run_backend(reference, request.inputs, names)
                comparisons = []
                for output in names:
                    comparison = compare(f"{primary.name} vs {reference.name}", output, theirs[output], ours[output])
                    check_budget(comparison, budget)
                    comparisons.append(comparison)
                reproduced = (
                    max(float(np.max(np.abs(ours[n].astype(np.float64) - request.primary[n]))) for n in names)
                    if names
                    else None
                )
                requests.append(ReplayedRequest(request.file, request.request_id, comparisons, reproduced))
            torch_model = model or _zoo_model_of(primary)
        finally:
            for backend in backends:
                backend.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    parity = None
    artifact = Path(str(primary_info.get("artifact", "")))
    if per_block and torch_model is not None:
        if artifact.suffix == ".onnx" or artifact.suffix in (".plan", ".engine"):
            from vitrt.parity.runner import run_parity

            runtime = primary_info.get("runtime") or "onnxruntime"
            try:
                parity = run_parity(
                    torch_model,
                    artifact,
                    backends=[str(runtime)],
                    inputs=str(folder),
                    n=None,
                    budget=budget,
                    per_block=True,
                    device=device,
                    plugins=plugins,
                )
            except (ArtifactError, VitrtError) as err:
                notes.append(f"no per-block comparison against PyTorch: {err}")
        else:
            notes.append(f"no per-block comparison: the primary {artifact} is not an ONNX file or engine")
    elif per_block:
        notes.append("no per-block comparison: the primary is no vitrt export of a zoo model (pass --model)")
    return ReplayReport(str(folder), name, primary_info, reference_info, budget, requests, parity, notes)


def kept_images(directory: str | Path, n: int | None) -> tuple[np.ndarray, str]:
    """The kept inputs of a single-input image model as one (N, C, H, W) float32 batch, for `vitrt parity`."""
    _, kept = load_kept(directory)
    names = {name for request in kept for name in request.inputs}
    if len(names) != 1:
        raise VitrtError(f"{directory}: the kept requests have inputs {sorted(names)}; parity needs a single input")
    images = np.concatenate([next(iter(r.inputs.values())) for r in kept]).astype(np.float32)
    if images.ndim != 4:
        raise VitrtError(f"{directory}: kept inputs have shape {list(images.shape)}, not (N, C, H, W)")
    if n is not None:
        images = images[:n]
    return images, f"shadow keep folder {directory} ({len(kept)} requests)"


def _zoo_model_of(backend: Any) -> str | None:
    metadata = getattr(backend, "metadata", None)
    if metadata is None or not getattr(metadata, "weights", None):
        return None
    try:
        from vitrt.models import get_spec

        get_spec(metadata.model)
    except (ImportError, VitrtError):
        return None
    return str(metadata.model)


def _describe(info: dict[str, Any]) -> str:
    runtime = info.get("runtime") or info.get("backend") or "auto"
    return f"{info.get('artifact')} ({runtime})"
