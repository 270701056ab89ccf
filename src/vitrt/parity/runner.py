"""`run_parity`: one model, one artifact, several runtimes, the same inputs, a verdict against budgets."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vitrt.engines import ENGINE_SUFFIXES, artifact_kind
from vitrt.engines.manifest import EngineManifest, manifest_path, now_iso
from vitrt.errors import ArtifactError, VitrtError
from vitrt.parity import blocks as block_probe
from vitrt.parity.budgets import MODEL_BUDGETS, Budget, budget_for, default_budget
from vitrt.parity.inputs import ParityInputs, load_inputs
from vitrt.parity.metrics import accuracy, check_budget, compare
from vitrt.parity.report import BackendSummary, ParityReport

if TYPE_CHECKING:
    from torch import nn

    from vitrt.engines.base import InferenceBackend

log = logging.getLogger(__name__)

RUNTIMES = ("torch", "onnxruntime", "openvino", "tensorrt")
PER_BLOCK_SAMPLES = 4


def run_parity(
    model: str | Path | nn.Module,
    artifact: str | Path,
    *,
    arch: str | None = None,
    checkpoint: str | Path | None = None,
    backends: Sequence[str] | None = None,
    inputs: str | Path = "random",
    n: int | None = 64,
    batch_size: int | None = None,
    precision: str | None = None,
    budget: Budget | None = None,
    budget_overrides: dict[str, float] | None = None,
    per_block: bool = False,
    device: str = "auto",
    seed: int = 0,
    plugins: str | Path | None = None,
    allow_mismatch: bool = False,
    providers: Any = "auto",
    report: str | Path | None = None,
    trust_checkpoint: bool = False,
    openvino_options: dict[str, Any] | None = None,
) -> ParityReport:
    """Run the PyTorch model and every requested runtime of `artifact` on the same inputs and compare.

    model: zoo name, checkpoint file (architecture from `arch`, else from the artifact's metadata) or nn.Module
        with `vitrt_metadata`.
    artifact: an ONNX file or a TensorRT engine. ONNX + "tensorrt" builds a temporary engine at `precision`;
        engine + "onnxruntime" runs the ONNX file recorded in the engine's manifest.
    backends: subset of torch, onnxruntime, openvino, tensorrt (default: torch plus the artifact's own runtime).
    precision: fp32, bf16 or fp16: the precision openvino runs (and a tensorrt build uses) and the budget,
        `budgets.budget_for(model, precision)` (default: the engine's precision, else fp32). onnxruntime always
        runs fp32 and is held to the fp32 budget.
    openvino_options: further OpenVINOBackend options (threads, keep_fp32, fallback_fp32, ...).
    per_block: also compare every transformer block's output and name the first one that diverges.
    report: write `<report>.md` and `<report>.json`.

    The reference uses the weights the artifact records it was exported with (`weights` in its metadata): the
    same random seed, the bundled demo weights, or a checkpoint with the recorded sha256. A reference that cannot
    hold those weights is refused (ArtifactError) rather than compared, since the verdict would be meaningless.
    """
    from vitrt import __version__
    from vitrt.engines.pytorch import TorchBackend

    artifact = Path(artifact)
    if artifact.suffix not in (".onnx", ".xml") and artifact.suffix not in ENGINE_SUFFIXES:
        raise ArtifactError(
            f"--artifact must be an ONNX file, an OpenVINO IR (.xml) or a TensorRT engine (.plan), got {artifact}"
        )
    kind = artifact_kind(artifact)
    if not artifact.is_file():
        raise ArtifactError(f"artifact not found: {artifact}")
    has_manifest = kind == "engine" and manifest_path(artifact).is_file()
    manifest = EngineManifest.load(manifest_path(artifact)) if has_manifest else None
    runtimes = _runtimes(backends, kind)
    if kind == "ir" and runtimes != ["openvino"]:
        raise VitrtError("an OpenVINO IR (.xml) runs only on openvino; use --backends torch,openvino")
    notes: list[str] = []
    artifact_meta, quantized = _artifact_records(artifact, manifest)
    precision = _check_precision(artifact, precision, manifest, quantized, notes)
    if precision == "bf16" and "tensorrt" in runtimes:
        raise VitrtError("tensorrt engines are fp32, fp16 or int8; check bf16 with --backends openvino")
    if arch is None and artifact_meta is not None and _is_checkpoint(model):
        arch = artifact_meta.model  # a bare checkpoint: the artifact says which architecture it is
    weights_seed = _reference_weights(model, checkpoint, artifact, artifact_meta, notes)
    reference = TorchBackend(
        model,
        checkpoint=checkpoint,
        arch=arch,
        device=device,
        dtype="float32",
        seed=weights_seed,
        trust_checkpoint=trust_checkpoint,
    )
    meta = reference.metadata
    assert meta is not None
    if artifact_meta is not None and artifact_meta.model != meta.model:
        notes.append(f"artifact was exported from {artifact_meta.model!r}, compared against {meta.model!r}")

    data = load_inputs(inputs, meta, n, seed)
    notes += data.notes
    labelled = data.labels is not None
    if budget is None and not labelled and (meta.model, precision) in MODEL_BUDGETS:
        notes.append(
            f"{meta.model}'s own {precision} budget holds for real (labelled) images; random inputs sit near class "
            f"ties, so the default {precision} budget applies"
        )
    budget = (budget or budget_for(meta.model, precision, labelled)).with_overrides(budget_overrides)
    # ONNX Runtime runs a float file in FP32 whatever the check's precision: it keeps the FP32 budget (with the same
    # overrides). An INT8 file is INT8 on every runtime.
    ort_budget = budget
    if precision not in ("fp32", "int8"):
        ort_budget = budget_for(meta.model, "fp32").with_overrides(budget_overrides)
        if "onnxruntime" in runtimes:
            notes.append("onnxruntime runs fp32: it is checked against the fp32 budget")
    opened: list[InferenceBackend] = []
    with tempfile.TemporaryDirectory(prefix="vitrt-parity-") as tmp:
        try:
            for runtime in runtimes:
                opened.append(
                    _open_runtime(
                        runtime,
                        artifact,
                        kind,
                        manifest,
                        precision,
                        plugins,
                        allow_mismatch,
                        providers,
                        tmp,
                        openvino_options or {},
                    )
                )
                if runtime == "tensorrt" and kind == "onnx":
                    notes.append(f"tensorrt ran an engine built for this check ({precision})")
            limits = [b.max_batch_size for b in opened if b.max_batch_size]
            fixed = sorted({b.inputs[0].shape[0] for b in opened if b.inputs[0].shape[0] is not None})
            if len(fixed) > 1:
                raise VitrtError(f"the backends need different fixed batch sizes {fixed}")
            size = batch_size or (fixed[0] if fixed else min([32, len(data.images), *limits]))
            if limits and size > min(limits):
                raise VitrtError(f"--batch-size {size} exceeds the engine's maximum batch {min(limits)}")
            if fixed and size != fixed[0]:
                raise VitrtError(f"the artifact has a fixed batch of {fixed[0]}; --batch-size {size} cannot run")
            ref_logits = _run_all(reference, data.images, size)
            outputs = {b.name: _run_all(b, data.images, size) for b in opened}

            ref_summary = _summary(reference, ref_logits, data)
            summaries, comparisons = [], []
            for backend in opened:
                logits = outputs[backend.name]
                summary = _summary(backend, logits, data)
                summaries.append(summary)
                comparison = compare(backend.name, backend.outputs[0].name, ref_logits, logits)
                if summary.accuracy is not None and ref_summary.accuracy is not None:
                    comparison.accuracy_drop = ref_summary.accuracy - summary.accuracy
                check_budget(comparison, ort_budget if backend.name == "onnxruntime" else budget)
                comparisons.append(comparison)

            block_reports = []
            if per_block:
                block_reports = _per_block(
                    reference, opened, artifact, kind, manifest, data, budget, plugins, openvino_options or {}
                )
        finally:
            for backend in opened:
                backend.close()
            reference.close()

    result = ParityReport(
        model=meta.model,
        artifact=str(artifact),
        precision=precision,
        inputs=data.source,
        n=len(data.images),
        batch_size=size,
        budget=budget,
        reference=ref_summary,
        backends=summaries,
        comparisons=comparisons,
        per_block=block_reports,
        notes=notes,
        created=now_iso(),
        vitrt_version=__version__,
    )
    if report is not None:
        result.write(report)
    return result


def _runtimes(backends: Sequence[str] | None, kind: str) -> list[str]:
    if backends is None:
        return {"onnx": ["onnxruntime"], "ir": ["openvino"]}.get(kind, ["tensorrt"])
    chosen = [b.strip() for b in backends if b.strip()]
    unknown = [b for b in chosen if b not in RUNTIMES]
    if unknown:
        raise VitrtError(f"unknown backend {unknown[0]!r}; choose from {', '.join(RUNTIMES)}")
    others = [b for b in dict.fromkeys(chosen) if b != "torch"]
    if not others:
        raise VitrtError("name at least one runtime besides torch to compare (onnxruntime, openvino, tensorrt)")
    return others


def _reference_weights(
    model: object, checkpoint: str | Path | None, artifact: Path, meta: Any, notes: list[str]
) -> int | None:
    """The seed of random reference weights (or None), after checking that the reference will hold the weights
    the artifact was exported with."""
    from vitrt.files import sha256_file

    recorded = getattr(meta, "weights", None)
    if recorded is None or not isinstance(model, str | Path):
        if meta is not None and recorded is None:
            notes.append("the artifact does not record where its weights came from; the reference is trusted as is")
        return None
    arch = meta.model
    source = Path(checkpoint) if checkpoint is not None else Path(model) if _is_checkpoint(model) else None
    short = (meta.checkpoint_sha256 or "")[:12]
    if recorded == "checkpoint":
        if source is None:
            raise ArtifactError(
                f"{artifact.name} was exported from a checkpoint (sha256 {short}...), not from {model}'s "
                f"{'bundled' if _has_bundled_weights(str(model)) else 'random'} weights; pass that checkpoint: "
                f"--model CHECKPOINT --arch {arch}"
            )
        if meta.checkpoint_sha256 and sha256_file(source) != meta.checkpoint_sha256:
            raise ArtifactError(
                f"{source.name} is not the checkpoint {artifact.name} was exported from (sha256 {short}...); "
                "pass the same checkpoint"
            )
        return None
    if recorded == "random":
        if source is not None:
            raise ArtifactError(
                f"{artifact.name} holds random weights (seed {meta.weights_seed}), not {source.name}'s; compare "
                f"against the same random weights with --model {arch} (no checkpoint), or export from the checkpoint"
            )
        notes.append(f"reference rebuilt with the artifact's random weights (seed {meta.weights_seed})")
        return int(meta.weights_seed) if meta.weights_seed is not None else None
    bundled = recorded == "bundled" and source is not None and meta.checkpoint_sha256
    if bundled and source is not None and sha256_file(source) != meta.checkpoint_sha256:
        raise ArtifactError(f"{artifact.name} holds {arch}'s bundled weights, not {source.name}'s; use --model {arch}")
    return None


def _has_bundled_weights(name: str) -> bool:
    from vitrt.models import get_spec

    try:
        return get_spec(name).has_weights
    except VitrtError:
        return False


def _is_checkpoint(model: object) -> bool:
    from vitrt.files import CHECKPOINT_SUFFIXES

    return isinstance(model, str | Path) and (Path(model).suffix in CHECKPOINT_SUFFIXES or Path(model).is_file())


def _artifact_records(artifact: Path, manifest: EngineManifest | None) -> tuple[Any, dict[str, Any] | None]:
    """The artifact's export metadata and its `vitrt quantize` record (None for a float artifact)."""
    if manifest is not None:
        return manifest.model_metadata(), manifest.quantization
    if artifact.suffix == ".xml":
        from vitrt.engines.openvino import read_ir_records

        return read_ir_records(artifact)
    if artifact.suffix == ".onnx":
        import onnx

        from vitrt.engines.onnx_graph import model_metadata
        from vitrt.quantize.base import onnx_record

        try:
            proto = onnx.load(str(artifact), load_external_data=False)
        except Exception as err:
            raise ArtifactError(f"cannot read ONNX file {artifact} ({type(err).__name__})") from None
        return model_metadata(proto), onnx_record(proto)
    return None, None


def _check_precision(
    artifact: Path,
    precision: str | None,
    manifest: EngineManifest | None,
    quantized: dict[str, Any] | None,
    notes: list[str],
) -> str:
    """The precision the check runs and is budgeted at: INT8 exactly for `vitrt quantize` artifacts."""
    int8 = quantized is not None or (manifest is not None and manifest.precision == "int8")
    if int8:
        if precision not in (None, "int8"):
            raise VitrtError(
                f"{artifact.name} is INT8 (vitrt quantize); it is checked at int8, so drop --precision {precision}"
            )
        record = quantized or {}
        notes.append(
            f"INT8 artifact (vitrt quantize for {record.get('target', '?')}, {record.get('method', '?')}, "
            f"calibrated on {record.get('calibration_count', '?')} images of {record.get('calibration', '?')}): "
            "held to the int8 budget"
        )
        return "int8"
    if precision == "int8":
        raise VitrtError(
            f"{artifact.name} is not INT8 (it carries no vitrt quantize record); make an INT8 file with "
            "`vitrt quantize` and check that one"
        )
    chosen = precision or (manifest.precision if manifest else "fp32")
    default_budget(chosen)  # an unknown precision is refused before anything loads
    return chosen


def _open_runtime(
    runtime: str,
    artifact: Path,
    kind: str,
    manifest: EngineManifest | None,
    precision: str,
    plugins: str | Path | None,
    allow_mismatch: bool,
    providers: Any,
    tmp: str,
    openvino_options: dict[str, Any],
) -> InferenceBackend:
    from vitrt.engines import load

    if runtime == "onnxruntime":
        return load(artifact, backend="onnxruntime", providers=providers)
    if runtime == "openvino":
        # An INT8 model runs its quantized layers in INT8 and the rest at the FP32 hint unless the options say so.
        compute = "fp32" if precision == "int8" else precision
        return load(artifact, backend="openvino", **{"precision": compute, **openvino_options})
    if kind == "engine":
        return load(artifact, backend="tensorrt", plugins=plugins, allow_mismatch=allow_mismatch)
    from vitrt.engines.builder import BuildOptions, build_engine

    built = build_engine(
        artifact,
        Path(tmp) / f"{artifact.stem}.plan",
        BuildOptions(precision=precision, plugins=str(plugins or "auto"), progress=False),
    )
    return load(built.engine_path, backend="tensorrt", plugins=plugins)


def _run_all(backend: Any, images: np.ndarray, batch_size: int) -> np.ndarray:
    """Logits for all images in batches; a short last batch is zero-padded when the backend needs a bigger one
    (a fixed-batch export, or an engine profile whose minimum batch is larger) and its padding dropped."""
    fixed = backend.inputs[0].shape[0]
    smallest = fixed or getattr(backend, "min_batch_size", 1)
    chunks = []
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        real = len(chunk)
        if real < smallest:
            pad = np.zeros((smallest - real, *chunk.shape[1:]), dtype=chunk.dtype)
            chunk = np.concatenate([chunk, pad], axis=0)
        chunks.append(backend.infer(chunk)[:real])
    return np.concatenate(chunks, axis=0)


def _summary(backend: Any, logits: np.ndarray, data: ParityInputs) -> BackendSummary:
    summary = BackendSummary(backend.name, backend.describe())
    if hasattr(backend, "runtime_precisions"):
        summary.runtime_precisions = backend.runtime_precisions()
    if data.labels is not None and logits.ndim == 2:
        summary.accuracy = accuracy(logits, data.labels, 1)
        summary.top5_accuracy = accuracy(logits, data.labels, 5)
    return summary


def _per_block(
    reference: Any,
    opened: list[InferenceBackend],
    artifact: Path,
    kind: str,
    manifest: EngineManifest | None,
    data: ParityInputs,
    budget: Budget,
    plugins: str | Path | None,
    openvino_options: dict[str, Any],
) -> list[block_probe.PerBlockReport]:
    import torch

    from vitrt.engines.onnx_graph import block_output_tensors, load_model

    names = block_probe.find_blocks(reference.model)
    sample = np.ascontiguousarray(data.images[:PER_BLOCK_SAMPLES])
    x = torch.from_numpy(sample).to(reference.device)
    with torch.inference_mode():
        ref_blocks = block_probe.torch_block_outputs(reference.model, names, lambda: reference.model(x))

    onnx_path = artifact if kind == "onnx" else Path(manifest.onnx_path) if manifest and manifest.onnx_path else None
    # One ONNX file and one block -> tensor mapping serve every backend.
    unavailable = None
    if not names:
        unavailable = "no transformer blocks found in the PyTorch model"
    elif onnx_path is None or not onnx_path.is_file():
        unavailable = "the ONNX file behind the artifact is not available"
    else:
        proto = load_model(onnx_path)
        tensors = block_output_tensors(proto, names)
        if not tensors:
            unavailable = (
                "the ONNX file records no module scopes (pkg.torch.onnx.name_scopes); re-export it with vitrt export"
            )
    reports = []
    for backend in opened:
        if unavailable is not None:
            reports.append(
                block_probe.PerBlockReport(backend=backend.name, threshold=budget.block_rel, notes=[unavailable])
            )
            continue
        feeds = {backend.inputs[0].name: sample}
        if backend.name == "tensorrt":
            options = manifest.build_options if manifest else {}
            actual = block_probe.tensorrt_block_outputs(proto, tensors, feeds, options, plugins)
        elif backend.name == "openvino":
            ov_options = {"precision": getattr(backend, "precision", "fp32"), **openvino_options}
            actual = block_probe.openvino_block_outputs(proto, tensors, feeds, ov_options)
        else:
            actual = block_probe.onnx_block_outputs(proto, tensors, feeds)
        report = block_probe.compare_blocks(backend.name, names, ref_blocks, actual, tensors, budget.block_rel)
        missing = [name for name in names if name not in tensors]
        if missing:
            report.notes.append(f"{len(missing)} block(s) without an ONNX tensor: {', '.join(missing[:4])}")
        reports.append(report)
    return reports
