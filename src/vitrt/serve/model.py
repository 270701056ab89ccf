"""A served model: backend + batcher + statistics, strict input validation and the protocol views of it."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from vitrt.engines.base import InferenceBackend, TensorSpec
from vitrt.errors import VitrtError
from vitrt.metadata import ModelMetadata
from vitrt.serve.batching import DynamicBatcher, ExecutionRecord, InferenceResult
from vitrt.serve.config import ModelConfig, NonFinitePolicy
from vitrt.serve.errors import InferenceFailedError, InvalidRequestError, ServiceUnavailableError
from vitrt.serve.metrics import ModelMetrics
from vitrt.serve.protocol import datatype_of, triton_config_type
from vitrt.serve.schemas import ModelMetadataResponse, ModelSummary, TensorMetadata
from vitrt.serve.shadow import ShadowMonitor
from vitrt.serve.stats import ModelStats

_PLATFORMS = {
    "onnxruntime": "onnxruntime_onnx",
    "openvino": "openvino",
    "tensorrt": "tensorrt_plan",
    "torch": "pytorch",
}


class ServedModel:
    def __init__(
        self,
        config: ModelConfig,
        backend: InferenceBackend,
        *,
        nonfinite: NonFinitePolicy = "reject",
        request_timeout_s: float = 60.0,
    ) -> None:
        self.config = config
        self.backend = backend
        self.name = config.name
        self.version = config.version
        self.nonfinite = nonfinite
        self.request_timeout_s = request_timeout_s
        self.inputs: dict[str, TensorSpec] = {spec.name: spec for spec in backend.inputs}
        self.outputs: dict[str, TensorSpec] = {spec.name: spec for spec in backend.outputs}
        self.platform = _PLATFORMS.get(backend.name, backend.name)
        self.stats = ModelStats()
        self.metrics: ModelMetrics | None = None
        self.shadow: ShadowMonitor | None = None
        self.batcher = DynamicBatcher(
            config.name,
            backend,
            max_batch_size=config.max_batch_size,
            max_queue_delay_s=config.max_queue_delay_ms / 1000.0,
            instances=config.instances,
            max_queue_size=config.max_queue_size,
            on_execution=self._on_execution,
        )

    # ---- lifecycle -------------------------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self.batcher.running and not (self.shadow is not None and self.shadow.blocks_readiness)

    async def start(self) -> None:
        await self.batcher.start()
        if self.shadow is not None:
            self.shadow.start()

    async def stop(self, timeout_s: float) -> None:
        await self.batcher.stop(timeout_s)
        if self.shadow is not None:
            self.shadow.stop()

    def close(self) -> None:
        self.backend.close()
        if self.shadow is not None:
            self.shadow.close()

    # ---- inference -------------------------------------------------------------------------------------------

    def validate(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Names, datatypes (exact, or a lossless numpy 'safe' cast), shapes, batch agreement, non-finite policy."""
        unknown = sorted(set(inputs) - set(self.inputs))
        if unknown:
            raise InvalidRequestError(
                f"unknown input {unknown[0]!r} for model {self.name!r}; it expects {sorted(self.inputs)}"
            )
        missing = sorted(set(self.inputs) - set(inputs))
        if missing:
            raise InvalidRequestError(f"missing input {missing[0]!r} for model {self.name!r}")
        feeds = {}
        batch = None
        for name, spec in self.inputs.items():
            array = inputs[name]
            want = np.dtype(spec.dtype)
            if array.dtype != want:
                if not np.can_cast(array.dtype, want, "safe"):
                    raise InvalidRequestError(
                        f"input {name!r}: datatype {datatype_of(array.dtype)} does not match the model's "
                        f"{datatype_of(want)} (only lossless conversions are applied)"
                    )
                array = array.astype(want)
            if array.ndim != len(spec.shape) or any(
                want_dim is not None and got != want_dim
                for got, want_dim in zip(array.shape[1:], spec.shape[1:], strict=False)
            ):
                raise InvalidRequestError(
                    f"input {name!r}: shape {list(array.shape)} does not match the model's {_dims(spec.shape)}"
                )
            if array.shape[0] == 0:
                raise InvalidRequestError(f"input {name!r}: the batch is empty")
            if batch is None:
                batch = array.shape[0]
            elif array.shape[0] != batch:
                raise InvalidRequestError(
                    f"input {name!r}: batch {array.shape[0]} differs from the other inputs' {batch}"
                )
            if self.nonfinite == "reject" and array.dtype.kind == "f" and not np.isfinite(array).all():
                raise InvalidRequestError(f"input {name!r} contains NaN or infinite values (non-finite policy: reject)")
            feeds[name] = array
        return feeds

    def resolve_outputs(self, names: Sequence[str] | None) -> list[str]:
        if names is None:
            return list(self.outputs)
        for name in names:
            if name not in self.outputs:
                raise InvalidRequestError(
                    f"unknown output {name!r} for model {self.name!r}; it has {sorted(self.outputs)}"
                )
        return list(names)

    async def infer(
        self,
        inputs: Mapping[str, np.ndarray],
        output_names: Sequence[str] | None,
        *,
        started: float,
        timeout_s: float | None = None,
        request_id: str = "",
    ) -> InferenceResult:
        """Validate, queue, wait; records success/failure statistics. `started` is the request's perf_counter.

        With shadow parity on, the finished request is offered to the shadow monitor (never waiting for it), or,
        under the `fallback` policy after a breach, answered by the reference backend instead of the batcher."""
        shadow = self.shadow
        try:
            feeds = self.validate(inputs)
            names = self.resolve_outputs(output_names)
            if shadow is not None and shadow.serving_reference:
                result = await self._infer_reference(shadow, feeds, names)
            else:
                result = await self.batcher.infer(feeds, names, timeout_s or self.request_timeout_s)
                if shadow is not None:
                    shadow.offer(request_id, feeds, result.outputs)
        except ServiceUnavailableError:
            self.record_failure("REJECTED", started)
            raise
        except InferenceFailedError:
            self.record_failure("BACKEND", started)
            raise
        except asyncio.CancelledError:
            self.record_failure("CANCELED", started)
            raise
        except VitrtError:
            self.record_failure("OTHER", started)
            raise
        elapsed = time.perf_counter() - started
        self.stats.record_success(int(next(iter(feeds.values())).shape[0]), elapsed, result)
        if self.metrics is not None:
            self.metrics.observe_success(elapsed, result)
        return result

    async def _infer_reference(
        self, shadow: ShadowMonitor, feeds: dict[str, np.ndarray], names: list[str]
    ) -> InferenceResult:
        began = time.perf_counter()
        try:
            outputs = await shadow.infer_reference(feeds, names)
        except Exception as err:
            raise InferenceFailedError(f"model {self.name!r}: the fallback reference failed: {err}") from None
        size = int(next(iter(feeds.values())).shape[0])
        return InferenceResult(outputs, 0.0, 0.0, time.perf_counter() - began, 0.0, [size])

    def record_failure(self, reason: str, started: float) -> None:
        self.stats.record_failure(reason, time.perf_counter() - started)

    def _on_execution(self, record: ExecutionRecord) -> None:
        self.stats.record_execution(record)
        if self.metrics is not None:
            self.metrics.observe_execution(record)

    # ---- image classification --------------------------------------------------------------------------------

    @property
    def image_metadata(self) -> ModelMetadata | None:
        """The export metadata when this model is an image classifier the classify endpoint can drive."""
        metadata = self.backend.metadata
        if metadata is None or len(self.inputs) != 1:
            return None
        spec = next(iter(self.inputs.values()))
        if len(spec.shape) != 4 or spec.shape[1] not in (3, None):
            return None
        return metadata

    def labels(self, count: int) -> list[str]:
        metadata = self.backend.metadata
        if metadata is not None and metadata.labels and len(metadata.labels) == count:
            return list(metadata.labels)
        return [str(i) for i in range(count)]

    # ---- protocol views --------------------------------------------------------------------------------------

    def metadata_response(self) -> ModelMetadataResponse:
        return ModelMetadataResponse(
            name=self.name,
            versions=[self.version],
            platform=self.platform,
            inputs=[_tensor_metadata(spec) for spec in self.inputs.values()],
            outputs=[_tensor_metadata(spec) for spec in self.outputs.values()],
        )

    def summary(self) -> ModelSummary:
        metadata = self.image_metadata
        return ModelSummary(
            name=self.name,
            version=self.version,
            platform=self.platform,
            classify=metadata is not None,
            input_size=list(metadata.input_size) if metadata else None,
            labels=list(metadata.labels) if metadata and metadata.labels else None,
            max_batch_size=self.batcher.max_batch_size,
        )

    def triton_config(self) -> dict[str, Any]:
        """The model's configuration in Triton's JSON form (`GET /v2/models/{m}/config`)."""
        gpu = self.backend.name == "tensorrt" or any(
            "CUDA" in str(p) or "Tensorrt" in str(p) for p in getattr(self.backend, "providers", [])
        )
        config: dict[str, Any] = {
            "name": self.name,
            "platform": self.platform,
            "backend": self.backend.name,
            "max_batch_size": self.batcher.max_batch_size,
            "input": [_config_tensor(spec) for spec in self.inputs.values()],
            "output": [_config_tensor(spec) for spec in self.outputs.values()],
            "instance_group": [
                {"name": f"{self.name}_0", "kind": "KIND_GPU" if gpu else "KIND_CPU", "count": self.config.instances}
            ],
            "version_policy": {"specific": {"versions": [self.version]}},
        }
        if self.batcher.max_batch_size > 1:
            config["dynamic_batching"] = {
                "max_queue_delay_microseconds": int(self.config.max_queue_delay_ms * 1000),
                "default_queue_policy": {
                    "max_queue_size": self.config.max_queue_size,
                    "default_timeout_microseconds": int(self.request_timeout_s * 1e6),
                    "timeout_action": "REJECT",
                },
            }
        if self.backend.metadata is not None:
            config["parameters"] = {
                "vitrt_metadata": {"string_value": json.dumps(self.backend.metadata.to_dict(), sort_keys=True)}
            }
        return config


def _dims(shape: tuple[int | None, ...]) -> list[int]:
    return [-1 if d is None else int(d) for d in shape]


def _tensor_metadata(spec: TensorSpec) -> TensorMetadata:
    return TensorMetadata(name=spec.name, datatype=datatype_of(spec.dtype), shape=_dims(spec.shape))


def _config_tensor(spec: TensorSpec) -> dict[str, Any]:
    return {"name": spec.name, "data_type": triton_config_type(datatype_of(spec.dtype)), "dims": _dims(spec.shape[1:])}
