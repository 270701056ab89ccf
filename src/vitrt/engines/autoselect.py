"""`backend="auto"` for an ONNX file on a machine without a usable GPU: the fastest installed CPU runtime.

Which CPU runtime is faster depends on the model and the CPU (OpenVINO FP32 is 1.5x ONNX Runtime on flatten_swin_t
but slower on mlla_t on the same AMX machine; an AVX-512 machine without AMX orders them differently), so no fixed
rule holds. The choice is measured on the model itself: both runtimes are loaded, warmed up, and run the same
batch of the model's input shape interleaved, a few rounds within a small time budget; the lower median wins. The
probe costs one model load per runtime plus a few inferences, once per server start.

Rules before the probe:
* a `precision` other than fp32 (bf16, fp16) is an OpenVINO option: the choice is openvino, there is no probe;
* options only one runtime accepts (e.g. `intra_op_threads` -> onnxruntime, `threads` -> openvino) decide it;
* an option neither accepts is an `ArtifactError`;
* with OpenVINO not installed, or unable to compile the model, ONNX Runtime runs it and the reason is logged.
"""

from __future__ import annotations

import inspect
import logging
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vitrt.engines.base import InferenceBackend
from vitrt.errors import ArtifactError, BackendUnavailableError, VitrtError

log = logging.getLogger(__name__)

CPU_BACKENDS = ("onnxruntime", "openvino")
PROBE_ROUNDS = 5
PROBE_MIN_ROUNDS = 2
PROBE_BUDGET_S = 3.0


@dataclass
class Selection:
    backend: InferenceBackend
    reason: str


def backend_class(name: str) -> Any:
    if name == "onnxruntime":
        from vitrt.engines.onnxruntime import OnnxRuntimeBackend

        return OnnxRuntimeBackend
    if name == "openvino":
        from vitrt.engines.openvino import OpenVINOBackend

        return OpenVINOBackend
    if name == "torch":
        from vitrt.engines.pytorch import TorchBackend

        return TorchBackend
    from vitrt.engines.tensorrt_runtime import TensorRTBackend

    return TensorRTBackend


def option_names(name: str) -> list[str]:
    """The keyword options the `name` backend takes (its constructor's parameters after the artifact)."""
    parameters = list(inspect.signature(backend_class(name).__init__).parameters.values())[2:]  # self, artifact
    return [
        p.name for p in parameters if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]


def check_options(name: str, options: dict[str, Any]) -> None:
    """ArtifactError naming the first option the `name` backend does not take, and the ones it does."""
    known = option_names(name)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ArtifactError(f"unknown option {unknown[0]!r} for the {name} backend; it takes: {', '.join(known)}")


def cpu_only() -> bool:
    """True when ONNX Runtime would run on the CPU alone (no usable CUDA/TensorRT provider)."""
    from vitrt.engines.onnxruntime import auto_providers

    return auto_providers("none") == ["CPUExecutionProvider"]


def select_cpu_backend(path: Path, options: dict[str, Any], probe_batch: int = 1) -> Selection:
    """Load the fastest CPU backend for the ONNX file `path` (see the module docstring) and say why it won."""
    from vitrt.engines.openvino import normalise_precision, openvino_available

    precision = normalise_precision(options["precision"]) if "precision" in options else "fp32"
    if precision != "fp32":
        if not openvino_available():
            raise BackendUnavailableError(
                f"precision {precision} on CPU needs the openvino backend, which is not installed (pip install "
                "openvino); drop the precision to run fp32 with onnxruntime"
            )
        return Selection(
            _load("openvino", path, options), f"{precision} was asked for and only OpenVINO runs it on CPU"
        )
    ort_options = {k: v for k, v in options.items() if k != "precision"}  # an explicit fp32 fits both runtimes
    takers = [name for name in CPU_BACKENDS if not set(ort_options) - set(option_names(name))]
    if not takers:
        unknown = sorted(set(ort_options) - set(option_names("onnxruntime")) - set(option_names("openvino")))
        raise ArtifactError(
            f"unknown backend option {unknown[0]!r}; onnxruntime takes {', '.join(option_names('onnxruntime'))}; "
            f"openvino takes {', '.join(option_names('openvino'))}"
        )
    if len(takers) == 1:
        given = ", ".join(sorted(ort_options))
        chosen_options = options if takers[0] == "openvino" else ort_options
        return Selection(_load(takers[0], path, chosen_options), f"the backend options ({given}) are {takers[0]}'s")
    if not openvino_available():
        return Selection(
            _load("onnxruntime", path, ort_options),
            "the only CPU backend installed (OpenVINO, often faster, is not: pip install openvino)",
        )
    ort = _load("onnxruntime", path, ort_options)
    try:
        ov = _load("openvino", path, options)
    except VitrtError as err:
        return Selection(ort, f"OpenVINO cannot run this model ({err})")
    try:
        times = probe([ort, ov], probe_batch)
    except Exception as err:  # the probe's batch is not one the model takes: keep the universal default
        ov.close()
        return Selection(ort, f"the speed probe could not run ({' '.join(str(err).split())[:160]}); the default")
    winner, loser = (ort, ov) if times[0] <= times[1] else (ov, ort)
    loser.close()
    rounds = f"median of {len(times.rounds)} interleaved runs at batch {times.batch} on this CPU"
    fast, slow = sorted([(times[0], ort.name), (times[1], ov.name)])
    return Selection(
        winner,
        f"fastest FP32 CPU backend on this model: {fast[1]} {fast[0]:.1f} ms vs {slow[1]} {slow[0]:.1f} ms ({rounds})",
    )


@dataclass
class ProbeTimes:
    medians_ms: list[float]
    rounds: list[list[float]]
    batch: int

    def __getitem__(self, index: int) -> float:
        return self.medians_ms[index]


def probe(backends: list[InferenceBackend], batch: int = 1) -> ProbeTimes:
    """Median latency (ms) of each backend on one random batch, interleaved; rounds stop at PROBE_ROUNDS or once
    PROBE_BUDGET_S is spent (after PROBE_MIN_ROUNDS)."""
    first = backends[0]
    if first.max_batch_size is not None:
        batch = min(batch, first.max_batch_size)
    fixed = first.inputs[0].shape[0] if first.inputs else None
    batch = fixed or max(1, batch)
    rng = np.random.default_rng(0)
    feeds = {
        spec.name: rng.standard_normal((batch, *spec.static_shape)).astype(spec.dtype)
        if np.dtype(spec.dtype).kind == "f"
        else np.zeros((batch, *spec.static_shape), dtype=spec.dtype)
        for spec in first.inputs
    }
    for backend in backends:
        backend.run(feeds)  # warm-up: first-run allocations and lazy kernels
    rounds: list[list[float]] = []
    started = time.perf_counter()
    while len(rounds) < PROBE_ROUNDS:
        row = []
        for backend in backends:
            t0 = time.perf_counter()
            backend.run(feeds)
            row.append((time.perf_counter() - t0) * 1000.0)
        rounds.append(row)
        if len(rounds) >= PROBE_MIN_ROUNDS and time.perf_counter() - started > PROBE_BUDGET_S:
            break
    medians = [statistics.median(row[i] for row in rounds) for i in range(len(backends))]
    return ProbeTimes(medians, rounds, batch)


def _load(name: str, path: Path, options: dict[str, Any]) -> InferenceBackend:
    backend: InferenceBackend = backend_class(name)(path, **options)
    return backend
