"""`export_model`: PyTorch module -> one validated ONNX file per flavour.

Pipeline: trace once (custom ops -> single vitrt nodes) -> complete the nodes' attributes and attach the canonical
function bodies -> constant-fold without touching vitrt nodes -> lint -> derive each requested flavour by graph
surgery -> validate (checker, shape inference, ONNX Runtime CPU, parity with eager PyTorch at batch 1 and 8) ->
write. A file is written at the requested path only once it has passed; a failing one is kept next to it as
`<name>.rejected.onnx` for inspection and `ValidationError` carries the table.

Exporter choice (`exporter="auto"`): the TorchScript exporter (`dynamo=False`) for opsets up to 20, the dynamo
exporter (`torch.export`) above that or when the TorchScript exporter is unavailable. Measured on the project's
2-core CI machine (torch 2.14, CPU seconds of the export call, one thread; dynamo without / with its optimizer):

    timm DeiT-T      TorchScript 0.9 s    dynamo 10.4 s / 12.3 s
    timm Swin-T      TorchScript 4.2 s    dynamo 27.1 s / 32.7 s
    agent_pvt_t      TorchScript 1.4 s    dynamo  9.5 s /  9.8 s
    flatten_cswin_t  TorchScript 7.5 s    dynamo 58.6 s

so only the TorchScript exporter fits ~20 model exports plus validation into the CI budget, and it is the faster
choice for users too. Correctness does not depend on the choice: both emit the same vitrt nodes (a symbolic vs. a
translation table backed by an OpSchema from the YAML), vitrt attaches the bodies afterwards (the dynamo optimizer,
which inlines functions, never sees one), and every export is validated at two batch sizes, so a batch dimension
frozen by either exporter fails loudly. `exporter="dynamo"` is covered by op-level tests in the default suite and
by model-level tests marked slow.

What model code must respect for export (both exporters): call the attention cores through `vitrt.ops`; keep the
batch symbolic (`reshape(-1, ...)`, `x.shape[0]` passed straight to tensor ops; never `int(...)`/float arithmetic on
it); no data-dependent Python control flow; no complex tensors, `torch.fft`, non-divisible `AdaptiveAvgPool2d` or
per-forward parameter interpolation outside the ops (precompute buffers instead); return tensors or tuples of
tensors with the batch first.
"""

from __future__ import annotations

import contextlib
import io
import os
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vitrt import onnx_passes
from vitrt.errors import ExportError, ValidationError
from vitrt.export import graph
from vitrt.export import validate as validation
from vitrt.export.functions import MAX_OPSET, MIN_OPSET
from vitrt.files import atomic_write
from vitrt.metadata import ModelMetadata

if TYPE_CHECKING:
    import onnx
    import torch

EXPORTERS = ("auto", "torchscript", "dynamo")
DEFAULT_OPSET = 18
TORCHSCRIPT_MAX_OPSET = 20
NO_CUSTOM_OPS = "no-custom-ops"
DEFAULT_VALIDATION_BATCHES = (1, 8)
_EXAMPLE_BATCH = 2  # neither 1 nor a validation batch: a size frozen into the graph cannot pass by accident


@dataclass
class ExportReport:
    """What an export produced and how it was checked."""

    path: Path
    flavour: str
    opset: int
    exporter: str
    batch: str
    op_counts: dict[str, int]
    total_nodes: int
    function_bodies: list[str]
    file_size: int
    timings: dict[str, float]
    validation: validation.ValidationReport | None
    metadata: ModelMetadata | None
    warnings: list[str] = field(default_factory=list)  # for the user (e.g. random weights)
    trace_warnings: list[str] = field(default_factory=list)  # the exporter's tracer warnings, de-duplicated

    @property
    def validated(self) -> bool:
        return self.validation is not None and self.validation.passed

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "flavour": self.flavour,
            "opset": self.opset,
            "exporter": self.exporter,
            "batch": self.batch,
            "op_counts": dict(self.op_counts),
            "total_nodes": self.total_nodes,
            "function_bodies": list(self.function_bodies),
            "file_size": self.file_size,
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
            "validation": None if self.validation is None else self.validation.to_dict(),
            "metadata": None if self.metadata is None else self.metadata.to_dict(),
            "warnings": list(self.warnings),
            "trace_warnings": list(self.trace_warnings),
        }


@dataclass
class _Traced:
    model: onnx.ModelProto
    exporter: str
    warnings: list[str]


def export_model(
    model: torch.nn.Module,
    path: str | os.PathLike[str],
    *,
    input_size: int | Sequence[int] | None = None,
    batch: str | int = "dynamic",
    opset: int = DEFAULT_OPSET,
    flavour: str = "portable",
    fp16_safe: bool = False,
    validate: bool = True,
    metadata: ModelMetadata | None = None,
    budget: float | Mapping[str, float] | None = None,
    output_names: Sequence[str] | None = None,
    custom_ops: bool = True,
    exporter: str = "auto",
    validation_batch_sizes: Sequence[int] | None = None,
    progress: Callable[[str], None] | None = None,
) -> ExportReport:
    """Export `model` to ONNX at `path` and validate it against PyTorch.

    Args:
        model: any nn.Module taking one image batch (B, C, H, W) whose attention goes through `vitrt.ops`; it may
            return one tensor or a tuple/list of tensors (each with the batch first).
        path: the .onnx file to write (parent directories are created).
        input_size: (C, H, W), (H, W) or H; defaults to `metadata.input_size`.
        batch: "dynamic" (default; a symbolic batch axis, validated at batch 1 and 8) or a fixed batch size.
        opset: default-domain ONNX opset, 17..23.
        flavour: "portable" (vitrt nodes + function bodies; runs in ONNX Runtime and TensorRT), "tensorrt"
            (bodies stripped: TensorRT with the vitrt plugins only) or "inlined" (bodies inlined: plain ONNX).
        fp16_safe: use the overflow-guarded function bodies (FLatten's focusing map on x / max(x)).
        validate: run the checker, shape inference, ONNX Runtime and the PyTorch comparison (default on).
        metadata: written to `metadata_props`; defaults to `model.vitrt_metadata`.
        budget: max-abs budget for every output (float) or per output name; default 1e-4 (FP32).
        output_names: ONNX output names; default "logits" (one output) or "output_<i>".
        custom_ops: False exports the plain-PyTorch decomposition ("no-custom-ops": no vitrt nodes; circulant
            attention as DFT-by-MatMul); `flavour` must then stay "portable".
        exporter: "auto", "torchscript" or "dynamo" (see the module docstring).
        validation_batch_sizes: override the batch sizes compared (default (1, 8), or the fixed batch).
        progress: called with a short message at each step (the CLI's progress display).
    """
    reports = export_flavours(
        model,
        {flavour: path},
        input_size=input_size,
        batch=batch,
        opset=opset,
        fp16_safe=fp16_safe,
        validate=validate,
        metadata=metadata,
        budget=budget,
        output_names=output_names,
        custom_ops=custom_ops,
        exporter=exporter,
        validation_batch_sizes=validation_batch_sizes,
        progress=progress,
    )
    return reports[flavour]


def export_flavours(
    model: torch.nn.Module,
    paths: Mapping[str, str | os.PathLike[str]],
    *,
    input_size: int | Sequence[int] | None = None,
    batch: str | int = "dynamic",
    opset: int = DEFAULT_OPSET,
    fp16_safe: bool = False,
    validate: bool = True,
    metadata: ModelMetadata | None = None,
    budget: float | Mapping[str, float] | None = None,
    output_names: Sequence[str] | None = None,
    custom_ops: bool = True,
    exporter: str = "auto",
    validation_batch_sizes: Sequence[int] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, ExportReport]:
    """Like `export_model`, for several flavours from ONE trace: `paths` maps flavour -> file."""
    import torch

    say = progress or (lambda _message: None)
    started = time.perf_counter()
    timings: dict[str, float] = {}
    _check_options(paths, opset, batch, exporter, custom_ops)
    targets = {flavour: _check_path(p) for flavour, p in paths.items()}
    meta = _resolve_metadata(model, metadata)
    shape = _resolve_input_size(input_size, meta)
    input_name = meta.input_name if meta is not None else "input"
    dynamic = batch == "dynamic"
    example_batch = _EXAMPLE_BATCH if dynamic else int(batch)
    batches = _validation_batches(validation_batch_sizes, dynamic, example_batch) if validate else []

    device = next((p.device for p in model.parameters()), None)
    if device is not None and device.type != "cpu":
        raise ExportError(f"export a CPU model (its parameters are on {device}); call model.cpu() first")
    was_training = model.training
    model.eval()
    try:
        say("running the model in PyTorch")
        example = torch.randn((example_batch, *shape), generator=torch.Generator().manual_seed(1))
        outputs = _run_model(model, example, shape)
        names = _output_names(output_names, len(outputs), meta)
        budgets = _budgets(budget, names)
        chosen = _choose_exporter(exporter, opset)
        say(f"tracing with the {chosen} exporter")
        tick = time.perf_counter()
        traced = _trace(model, example, chosen, opset, input_name, names, dynamic, custom_ops)
        timings["trace"] = time.perf_counter() - tick
        produced = graph.model_opset(traced.model)
        if produced != opset:
            # The dynamo exporter builds opset 18+ graphs and down-converts; when that conversion fails it keeps 18.
            raise ExportError(
                f"the {chosen} exporter produced opset {produced} instead of {opset}; "
                f"use the TorchScript exporter or opset {produced} or later"
            )

        say("attaching function bodies and cleaning up the graph")
        tick = time.perf_counter()
        portable = _postprocess(traced.model, dynamic=dynamic, custom_ops=custom_ops, fp16_safe=fp16_safe)
        timings["postprocess"] = time.perf_counter() - tick

        references = None
        if validate:
            say("computing PyTorch reference outputs")
            tick = time.perf_counter()
            references = validation.reference_outputs(
                lambda x: _run_model(model, x, shape), shape, batches, seed=validation.DEFAULT_SEED
            )
            timings["reference"] = time.perf_counter() - tick
    finally:
        model.train(was_training)

    reports: dict[str, ExportReport] = {}
    validated: dict[str, validation.ValidationReport] = {}
    for flavour, target in targets.items():
        reports[flavour] = _finish_flavour(
            portable,
            flavour,
            target,
            custom_ops=custom_ops,
            meta=meta,
            shape=shape,
            opset=opset,
            batch=batch,
            exporter=traced.exporter,
            input_name=input_name,
            references=references,
            budgets=budgets,
            timings=dict(timings),
            trace_warnings=list(traced.warnings),
            validated=validated,
            say=say,
        )
        reports[flavour].timings["total"] = time.perf_counter() - started
    return reports


# --- steps ---------------------------------------------------------------------------------------------------------


def _finish_flavour(
    portable: onnx.ModelProto,
    flavour: str,
    target: Path,
    *,
    custom_ops: bool,
    meta: ModelMetadata | None,
    shape: tuple[int, int, int],
    opset: int,
    batch: str | int,
    exporter: str,
    input_name: str,
    references: list[validation.Reference] | None,
    budgets: Mapping[str, float],
    timings: dict[str, float],
    trace_warnings: list[str],
    validated: dict[str, validation.ValidationReport],
    say: Callable[[str], None],
) -> ExportReport:
    import onnx

    tick = time.perf_counter()
    recorded_flavour = flavour if custom_ops else NO_CUSTOM_OPS
    if flavour == "tensorrt":
        say("deriving the tensorrt flavour (function bodies stripped)")
        artifact = onnx_passes.strip_functions(portable)
    elif flavour == "inlined":
        say("deriving the inlined flavour (function bodies inlined)")
        artifact = onnx_passes.inline_functions(portable).model
    else:
        artifact = onnx.ModelProto()
        artifact.CopyFrom(portable)
    file_meta = _file_metadata(meta, artifact, shape, recorded_flavour, opset, batch, input_name)
    _write_metadata(artifact, file_meta)
    problems = graph.lint(artifact, flavour)
    if problems:
        raise ExportError(f"{flavour} export failed the lint: {'; '.join(problems)}")
    timings["flavour"] = time.perf_counter() - tick

    report_validation = None
    data = artifact.SerializeToString()
    if references is not None:
        tick = time.perf_counter()
        # The tensorrt flavour has no bodies, so nothing but TensorRT with the plugins can run it; its graph is the
        # portable one minus the functions, which is what ONNX Runtime and the checker see instead (once for both).
        key = "inlined" if flavour == "inlined" else "portable"
        rejected = target.with_name(target.stem + ".rejected.onnx")
        if key not in validated:
            try:
                validated[key] = validation.validate(
                    portable if flavour == "tensorrt" else data,
                    references,
                    input_name=input_name,
                    budgets=budgets,
                    progress=say,
                )
            except ValidationError as err:
                _write(rejected, data)
                raise ValidationError(f"{flavour} export: {err} (file kept at {rejected})") from None
        report_validation = replace(validated[key])
        if flavour == "tensorrt":
            report_validation.note = (
                "tensorrt flavour: numerics checked on the identical graph with function bodies (portable); "
                "the file itself needs TensorRT with the vitrt plugins"
            )
        timings["validate"] = time.perf_counter() - tick
        if not report_validation.passed:
            _write(rejected, data)
            worst = max(report_validation.failures(), key=lambda c: c.max_abs)
            raise ValidationError(
                f"{flavour} export does not match PyTorch: {worst.output} max abs {worst.max_abs:.3g} > budget "
                f"{worst.budget:.3g} at batch {worst.batch} (file kept at {rejected})\n{report_validation.table()}"
            )
    tick = time.perf_counter()
    say(f"writing {target}")
    _write(target, data)
    timings["write"] = time.perf_counter() - tick
    return ExportReport(
        path=target,
        flavour=recorded_flavour,
        opset=opset,
        exporter=exporter,
        batch=str(batch),
        op_counts=graph.vitrt_op_counts(artifact),
        total_nodes=len(artifact.graph.node),
        function_bodies=sorted(f.name for f in artifact.functions if f.domain == graph.DOMAIN),
        file_size=len(data),
        timings=timings,
        validation=report_validation,
        metadata=file_meta,
        trace_warnings=trace_warnings,
    )


def _check_options(paths: Mapping[str, Any], opset: int, batch: str | int, exporter: str, custom_ops: bool) -> None:
    if not paths:
        raise ExportError("no output path given")
    for flavour in paths:
        if flavour not in graph.FLAVOURS:
            raise ExportError(f"unknown flavour {flavour!r}; choose from {', '.join(graph.FLAVOURS)}")
        if not custom_ops and flavour != "portable":
            raise ExportError(f"--no-custom-ops exports have no vitrt nodes, so flavour {flavour!r} does not apply")
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= MAX_OPSET:
        raise ExportError(f"opset {opset!r} is not supported; choose {MIN_OPSET}..{MAX_OPSET}")
    if batch != "dynamic" and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
        raise ExportError(f"batch must be 'dynamic' or a positive integer, got {batch!r}")
    if exporter not in EXPORTERS:
        raise ExportError(f"unknown exporter {exporter!r}; choose from {', '.join(EXPORTERS)}")
    if exporter == "torchscript" and opset > TORCHSCRIPT_MAX_OPSET:
        raise ExportError(
            f"the TorchScript exporter supports opsets up to {TORCHSCRIPT_MAX_OPSET}; use the dynamo exporter "
            f"for opset {opset}"
        )


def _check_path(path: str | os.PathLike[str]) -> Path:
    target = Path(path).expanduser()
    if target.exists() and target.is_dir():
        raise ExportError(f"output path {target} is a directory")
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ExportError(f"cannot create the output directory {parent}: {err.strerror or err}") from None
    if not os.access(parent, os.W_OK):
        raise ExportError(f"output directory {parent} is not writable")
    if target.exists() and not os.access(target, os.W_OK):
        raise ExportError(f"output file {target} is not writable")
    return target


def _write(target: Path, data: bytes) -> None:
    try:
        atomic_write(target, data)
    except OSError as err:
        raise ExportError(f"cannot write {target}: {err.strerror or err}") from None


def _resolve_metadata(model: torch.nn.Module, metadata: ModelMetadata | None) -> ModelMetadata | None:
    meta = metadata if metadata is not None else getattr(model, "vitrt_metadata", None)
    if meta is not None and not isinstance(meta, ModelMetadata):
        raise ExportError(f"metadata must be a vitrt.metadata.ModelMetadata, got {type(meta).__name__}")
    return None if meta is None else replace(meta)


def _resolve_input_size(input_size: int | Sequence[int] | None, meta: ModelMetadata | None) -> tuple[int, int, int]:
    if input_size is None:
        if meta is None:
            raise ExportError("input_size is required for a model without vitrt metadata")
        size: Sequence[int] = meta.input_size
    elif isinstance(input_size, int):
        size = (3, input_size, input_size)
    else:
        size = tuple(input_size)
        if len(size) == 2:
            size = (3, *size)
    if len(size) != 3 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size):
        raise ExportError(f"input_size must be positive (C, H, W), (H, W) or H, got {input_size!r}")
    return int(size[0]), int(size[1]), int(size[2])


def _run_model(model: torch.nn.Module, x: torch.Tensor, shape: Sequence[int]) -> list[torch.Tensor]:
    import torch

    try:
        with torch.no_grad():
            out = model(x)
    except Exception as err:  # the model rejects the input (e.g. an impossible input size)
        text = " ".join(str(err).split())[:240]
        raise ExportError(
            f"the model cannot run on an input of size {tuple(shape)}: {type(err).__name__}: {text}"
        ) from None
    outputs = list(out) if isinstance(out, tuple | list) else [out]
    if not outputs or not all(isinstance(t, torch.Tensor) for t in outputs):
        raise ExportError("the model must return a tensor or a tuple/list of tensors")
    if not all(t.ndim >= 1 and t.shape[0] == x.shape[0] for t in outputs):
        raise ExportError("every model output must have the batch as its first dimension")
    return outputs


def _output_names(names: Sequence[str] | None, count: int, meta: ModelMetadata | None) -> list[str]:
    if names is not None:
        names = list(names)
        if len(names) != count or len(set(names)) != count or not all(isinstance(n, str) and n for n in names):
            raise ExportError(f"output_names must be {count} distinct non-empty names, got {names!r}")
        return names
    if count == 1:
        return [meta.output_name if meta is not None else "logits"]
    return [f"output_{i}" for i in range(count)]


def _budgets(budget: float | Mapping[str, float] | None, names: Sequence[str]) -> dict[str, float]:
    if budget is None:
        return {n: validation.DEFAULT_FP32_BUDGET for n in names}
    if isinstance(budget, Mapping):
        unknown = set(budget) - set(names)
        if unknown:
            raise ExportError(f"budget names unknown outputs {sorted(unknown)} (outputs: {', '.join(names)})")
        return {n: float(budget.get(n, validation.DEFAULT_FP32_BUDGET)) for n in names}
    if not isinstance(budget, int | float) or budget < 0:
        raise ExportError(f"budget must be a non-negative number or a mapping, got {budget!r}")
    return {n: float(budget) for n in names}


def _validation_batches(sizes: Sequence[int] | None, dynamic: bool, example_batch: int) -> list[int]:
    if sizes is not None:
        chosen = [int(s) for s in sizes]
        if not chosen or any(s < 1 for s in chosen):
            raise ExportError(f"validation batch sizes must be positive, got {list(sizes)!r}")
        if not dynamic and any(s != example_batch for s in chosen):
            raise ExportError(f"a fixed-batch export can only be validated at batch {example_batch}")
        return chosen
    return list(DEFAULT_VALIDATION_BATCHES) if dynamic else [example_batch]


def _choose_exporter(exporter: str, opset: int) -> str:
    if exporter != "auto":
        if exporter == "torchscript" and not _torchscript_available():
            raise ExportError("this PyTorch has no TorchScript ONNX exporter; use the dynamo exporter")
        return exporter
    if opset <= TORCHSCRIPT_MAX_OPSET and _torchscript_available():
        return "torchscript"
    return "dynamo"


def _torchscript_available() -> bool:
    from vitrt.export import custom_ops

    return custom_ops.register_torchscript_symbolics()


def _trace(
    model: torch.nn.Module,
    example: torch.Tensor,
    exporter: str,
    opset: int,
    input_name: str,
    output_names: Sequence[str],
    dynamic: bool,
    custom_ops: bool,
) -> _Traced:
    from vitrt import ops

    implementation = "custom_op" if custom_ops else "decomposed"
    with ops.use_implementation(implementation):
        if exporter == "torchscript":
            return _trace_torchscript(model, example, opset, input_name, output_names, dynamic)
        return _trace_dynamo(model, example, opset, input_name, output_names, dynamic, custom_ops)


def _trace_torchscript(
    model: torch.nn.Module,
    example: torch.Tensor,
    opset: int,
    input_name: str,
    output_names: Sequence[str],
    dynamic: bool,
) -> _Traced:
    import onnx
    import torch

    from vitrt.export import custom_ops

    custom_ops.register_torchscript_symbolics()
    buffer = io.BytesIO()
    axes = {name: {0: "batch"} for name in [input_name, *output_names]} if dynamic else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            torch.onnx.export(
                model,
                (example,),
                buffer,  # type: ignore[arg-type]  # the TorchScript exporter writes to file-like objects too
                dynamo=False,
                opset_version=opset,
                input_names=[input_name],
                output_names=list(output_names),
                dynamic_axes=axes,
                custom_opsets={graph.DOMAIN: 1},
                do_constant_folding=True,
            )
        except Exception as err:  # the tracer or a symbolic rejects a construct in the model
            raise ExportError(f"TorchScript export failed: {type(err).__name__}: {_one_line(err)}") from None
    notes = _trace_warnings(caught)
    return _Traced(onnx.load_from_string(buffer.getvalue()), "torchscript", notes)


def _trace_dynamo(
    model: torch.nn.Module,
    example: torch.Tensor,
    opset: int,
    input_name: str,
    output_names: Sequence[str],
    dynamic: bool,
    custom_ops: bool,
) -> _Traced:
    import torch

    from vitrt.export import custom_ops as vitrt_custom_ops

    table = vitrt_custom_ops.custom_translation_table() if custom_ops else None
    shapes = ({0: torch.export.Dim("batch", min=1, max=65536)},) if dynamic else None
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("always")
        try:
            program = torch.onnx.export(
                model,
                (example,),
                dynamo=True,
                opset_version=opset,
                input_names=[input_name],
                output_names=list(output_names),
                dynamic_shapes=shapes,
                custom_translation_table=table,
                # No function reaches the exporter (vitrt nodes are emitted bare), so its optimizer cannot inline
                # any; vitrt attaches the bodies afterwards.
                optimize=True,
                verbose=False,
            )
        except Exception as err:  # torch.export or the translation rejects a construct in the model
            raise ExportError(f"dynamo export failed: {type(err).__name__}: {_one_line(err)}") from None
    if program is None:
        raise ExportError("the dynamo exporter returned no program")
    return _Traced(program.model_proto, "dynamo", _trace_warnings(caught))


def _trace_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    notes: list[str] = []
    for item in caught:
        if issubclass(item.category, DeprecationWarning | FutureWarning):
            continue
        text = str(item.message).splitlines()[0][:200]
        if text not in notes:
            notes.append(text)
    return notes


def _postprocess(model: onnx.ModelProto, *, dynamic: bool, custom_ops: bool, fp16_safe: bool) -> onnx.ModelProto:
    _name_batch_axes(model, dynamic)
    if custom_ops:
        graph.complete_vitrt_nodes(model)
    elif onnx_passes.vitrt_nodes(model):
        raise ExportError("a --no-custom-ops export produced vitrt nodes; this is a vitrt bug")
    # Clean the traced graph first, so the canonical bodies are attached untouched.
    cleaned = onnx_passes.fold_constants(model)
    if custom_ops:
        graph.attach_functions(cleaned, fp16_safe=fp16_safe)
    problems = graph.lint(cleaned, "portable")
    if problems:
        raise ExportError(f"export failed the lint: {'; '.join(problems)}")
    return cleaned


def _name_batch_axes(model: onnx.ModelProto, dynamic: bool) -> None:
    """Call the symbolic batch axis of every graph input and output "batch" (exporters invent their own names)."""
    if not dynamic:
        return
    for value in [*model.graph.input, *model.graph.output]:
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_param = "batch"
        elif dims:
            raise ExportError(f"{value.name} has a fixed batch of {dims[0].dim_value} in a dynamic-batch export")


def _file_metadata(
    meta: ModelMetadata | None,
    artifact: onnx.ModelProto,
    shape: tuple[int, int, int],
    flavour: str,
    opset: int,
    batch: str | int,
    input_name: str,
) -> ModelMetadata:
    from vitrt import __version__
    from vitrt.ops.spec import load_op_specs

    specs = load_op_specs()
    used = sorted({n.op_type for n in onnx_passes.vitrt_nodes(artifact)} | {f.name for f in artifact.functions})
    base = meta if meta is not None else ModelMetadata(model="custom", family="", num_classes=0)
    return replace(
        base,
        input_size=shape,
        vitrt_version=__version__,
        flavour=flavour,
        opset=opset,
        op_versions={name: specs[name].plugin_version for name in used if name in specs},
        input_name=input_name,
        output_name=artifact.graph.output[0].name,
        batch=str(batch),
    )


def _write_metadata(model: onnx.ModelProto, meta: ModelMetadata) -> None:
    from vitrt import __version__

    kept = [p for p in model.metadata_props if not p.key.startswith("vitrt.")]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in meta.to_props().items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.producer_name = "vitrt"
    model.producer_version = __version__
    if meta.model and meta.model != "custom":
        model.graph.name = meta.model


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text[:300] + ("..." if len(text) > 300 else "")
