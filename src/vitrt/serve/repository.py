"""The set of served models: loading artifacts through `vitrt.engines.load`, lookup by name and version."""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from vitrt.engines import ENGINE_SUFFIXES
from vitrt.engines.base import InferenceBackend
from vitrt.errors import ArtifactError, VitrtError
from vitrt.files import CHECKPOINT_SUFFIXES
from vitrt.serve.config import ModelConfig, ServerConfig
from vitrt.serve.errors import NotFoundError
from vitrt.serve.model import ServedModel
from vitrt.serve.shadow import ShadowMonitor

log = logging.getLogger("vitrt.serve")

BackendLoader = Callable[..., InferenceBackend]
_ARTIFACT_SUFFIXES = {".onnx", *ENGINE_SUFFIXES, *CHECKPOINT_SUFFIXES}


class ModelRepository:
    def __init__(self, models: list[ServedModel], workdir: Path | None = None) -> None:
        self._models = {model.name: model for model in models}
        self._workdir = workdir

    @classmethod
    def load(cls, config: ServerConfig, loader: BackendLoader | None = None) -> ModelRepository:
        """Load every configured model (exporting zoo models to ONNX first) and warm it up.

        Raises a `VitrtError` naming the model whose artifact cannot be loaded; models loaded before it are closed.
        """
        workdir = Path(tempfile.mkdtemp(prefix="vitrt-serve-"))
        models: list[ServedModel] = []
        try:
            for model_config in config.models:
                backend = load_backend(model_config, workdir, loader)
                served = ServedModel(
                    model_config,
                    backend,
                    nonfinite=config.policy_for(model_config),
                    request_timeout_s=config.request_timeout_s,
                )
                models.append(served)
                if model_config.shadow is not None:
                    served.shadow = load_shadow(model_config, backend, workdir, loader)
                if model_config.warmup:
                    _warmup(served)
                if backend.selection_reason and model_config.backend == "auto":
                    log.info(
                        "backend chosen",
                        extra={
                            "model": served.name,
                            "backend": backend.name,
                            "runtime": backend.describe(),
                            "why": backend.selection_reason,
                        },
                    )
                log.info(
                    "loaded model",
                    extra={
                        "model": served.name,
                        "backend": backend.name,
                        "runtime": backend.describe(),
                        "artifact": model_config.artifact,
                        "max_batch_size": served.batcher.max_batch_size,
                    },
                )
        except BaseException:
            for served in models:
                served.close()
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        return cls(models, workdir)

    def __iter__(self) -> Iterator[ServedModel]:
        return iter(self._models.values())

    def __len__(self) -> int:
        return len(self._models)

    @property
    def names(self) -> list[str]:
        return list(self._models)

    def get(self, name: str, version: str | None = None) -> ServedModel:
        model = self._models.get(name)
        if model is None:
            raise NotFoundError(f"unknown model {name!r}; this server serves {sorted(self._models)}")
        if version not in (None, "", model.version):
            raise NotFoundError(f"model {name!r} has no version {version!r} (served version: {model.version!r})")
        return model

    @property
    def ready(self) -> bool:
        return bool(self._models) and all(model.ready for model in self)

    async def start(self) -> None:
        for model in self:
            await model.start()

    async def stop(self, timeout_s: float) -> None:
        for model in self:
            await model.stop(timeout_s)

    def close(self) -> None:
        for model in self:
            model.close()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None


def load_backend(config: ModelConfig, workdir: Path, loader: BackendLoader | None = None) -> InferenceBackend:
    """An artifact path goes straight to the loader; a zoo model name is exported to ONNX first (or handed to the
    torch backend as is)."""
    if loader is None:
        from vitrt.engines import load

        loader = load
    options: dict[str, Any] = dict(config.backend_options)
    if config.precision is not None:
        options["precision"] = config.precision
    if config.backend == "auto":  # on a CPU-only machine: the faster of onnxruntime and openvino, measured
        options.setdefault("cpu_probe", True)
        options.setdefault("probe_batch", min(config.max_batch_size, 8))
    artifact = Path(config.artifact).expanduser()
    try:
        if artifact.exists():
            return loader(artifact, backend=config.backend, **options)
        if artifact.suffix in _ARTIFACT_SUFFIXES or len(artifact.parts) > 1:
            raise ArtifactError(f"model {config.name!r}: artifact not found: {artifact}")
        return _load_zoo_model(config, workdir, loader, options)
    except VitrtError as err:
        message = str(err)
        raise type(err)(message if config.name in message else f"model {config.name!r}: {message}") from None
    except TypeError as err:  # backend options the backend does not take
        raise ArtifactError(f"model {config.name!r}: bad backend option ({err})") from None


def load_shadow(
    config: ModelConfig, primary: InferenceBackend, workdir: Path, loader: BackendLoader | None = None
) -> ShadowMonitor:
    """The model's shadow monitor with its reference backend, refused (ConfigError) when the reference does not take
    the primary's inputs and produce its outputs."""
    from vitrt.serve.shadow import ShadowMonitor, check_compatible

    shadow = config.shadow
    assert shadow is not None
    shadow = shadow.model_copy(update={"reference": _located(shadow.reference)})
    options = dict(shadow.backend_options)
    thread_option = {"onnxruntime": "intra_op_threads", "openvino": "threads"}.get(shadow.backend)
    if thread_option:  # the reference's own threads stay few, beside the primary's
        options.setdefault(thread_option, shadow.threads)
    reference_config = ModelConfig(
        name=f"{config.name}.shadow",
        artifact=shadow.reference,
        backend=shadow.backend,
        backend_options=options,
        warmup=False,
    )
    reference = load_backend(reference_config, workdir, loader)
    try:
        check_compatible(config.name, primary, reference)
        metadata = primary.metadata
        statistics = {}
        if metadata is not None and metadata.input_name:
            statistics[metadata.input_name] = {
                "normalize_mean": list(metadata.mean),
                "normalize_std": list(metadata.std),
            }
        monitor = ShadowMonitor(
            config.name,
            shadow,
            reference,
            primary={"artifact": _located(config.artifact), "backend": config.backend, "runtime": primary.name},
            input_statistics=statistics,
        )
    except BaseException:
        reference.close()
        raise
    log.info(
        "shadow parity on",
        extra={
            "model": config.name,
            "reference": shadow.reference,
            "reference_backend": reference.name,
            "rate": shadow.rate,
            "policy": shadow.policy,
        },
    )
    return monitor


def _located(artifact: str) -> str:
    """An artifact file as an absolute path (the keep index must work from any folder); zoo names as they are."""
    path = Path(artifact).expanduser()
    return str(path.resolve()) if path.exists() else artifact


def _load_zoo_model(
    config: ModelConfig, workdir: Path, loader: BackendLoader, options: dict[str, Any]
) -> InferenceBackend:
    from vitrt.models import get_spec

    get_spec(config.artifact)  # raises ModelNotFoundError for names the zoo does not know
    if config.backend == "torch":
        return loader(config.artifact, backend="torch", **options)
    try:
        from vitrt.export import export_zoo_model
    except ImportError:
        raise ArtifactError(
            f"serving zoo model {config.artifact!r} needs the ONNX exporter (vitrt.export), which is not available; "
            "export the model to a file and serve that"
        ) from None
    path = workdir / f"{config.name}.onnx"
    log.info("exporting zoo model", extra={"model": config.name, "artifact": config.artifact, "path": str(path)})
    export_zoo_model(config.artifact, path)
    return loader(path, backend=config.backend, **options)


def _warmup(model: ServedModel) -> None:
    """One execution at batch 1 and one at the largest batch (plus image preprocessing for classifiers), so the
    first requests skip lazy initialisation."""
    metadata = model.image_metadata
    if metadata is not None:
        from PIL import Image

        from vitrt.preprocess import preprocess_images

        preprocess_images([Image.new("RGB", (8, 8))], metadata)
    if any(dim is None for spec in model.backend.inputs for dim in spec.shape[1:]):
        log.info("skipping warm-up: dynamic non-batch dimensions", extra={"model": model.name})
        return
    sizes = sorted({model.batcher.static_batch or 1, model.batcher.static_batch or model.batcher.max_batch_size})
    for size in sizes:
        try:
            model.backend.warmup(iterations=1, batch_size=size)
        except VitrtError:
            raise
        except Exception as err:
            raise ArtifactError(f"model {model.name!r} fails to run a warm-up batch of {size}: {err}") from None
