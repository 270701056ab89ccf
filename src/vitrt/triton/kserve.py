"""KServe `InferenceService` manifests: the Triton model repository, and the vitrt image as a custom predictor.

Both are `serving.kserve.io/v1beta1` resources as plain dicts (written as YAML by `vitrt triton-repo --kserve`):

* Triton: `predictor.model` with `modelFormat: triton`, protocol v2, the Triton release as `runtimeVersion`, the
  repository's `storageUri`, resources and autoscaling. Repositories that need vitrt's Triton image (Python
  backend with the vitrt environment, the preprocessing model, the plugin library) name that image.
* vitrt: `predictor.containers` running `vitrt serve` on the model file KServe's storage initializer downloads to
  /mnt/models (`STORAGE_URI`), with readiness and liveness on vitrt's KServe v2 health routes.

The tests check every field against the `kserve` SDK's model classes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vitrt.errors import VitrtError

API_VERSION = "serving.kserve.io/v1beta1"
VITRT_PORT = 8080
# Where docker/Dockerfile.triton installs the `vitrt triton-env` environment.
TRITON_IMAGE_ENV = "/opt/vitrt/triton-env"
# The file `vitrt serve` loads from a model's version folder (the ONNX file, the plan, or the OpenVINO IR).
_MODEL_FILES = ("model.onnx", "model.plan", "model.xml")
_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti)?$")


@dataclass
class KServeOptions:
    storage_uri: str  # where the repository (Triton) or model file's folder (vitrt) is stored: s3://, gs://, pvc://
    namespace: str | None = None
    cpu: str = "2"
    memory: str = "4Gi"
    gpus: int = 0
    min_replicas: int = 1
    max_replicas: int = 4
    scale_metric: str = "concurrency"  # KServe's autoscaling metric: concurrency | rps | cpu | memory
    scale_target: int = 16


def check_options(options: KServeOptions) -> None:
    if "://" not in options.storage_uri:
        raise VitrtError(f"--storage-uri needs a scheme (s3://, gs://, pvc://, https://), got {options.storage_uri!r}")
    if options.namespace is not None and not _DNS_LABEL.match(options.namespace):
        raise VitrtError(f"{options.namespace!r} is not a Kubernetes namespace name")
    for label, value in (("--cpu", options.cpu), ("--memory", options.memory)):
        if not _QUANTITY.match(value):
            raise VitrtError(f"{label} {value!r} is not a Kubernetes quantity (e.g. 2, 500m, 4Gi)")
    if options.gpus < 0:
        raise VitrtError("--gpus-per-replica must be >= 0")
    if options.min_replicas < 0 or options.max_replicas < max(1, options.min_replicas):
        raise VitrtError("replicas: need 0 <= --min-replicas <= --max-replicas and --max-replicas >= 1")
    if options.scale_metric not in ("concurrency", "rps", "cpu", "memory"):
        raise VitrtError(f"--scale-metric must be concurrency, rps, cpu or memory, got {options.scale_metric!r}")
    if options.scale_target < 1:
        raise VitrtError("--scale-target must be >= 1")


def service_name(model: str) -> str:
    """A DNS-1035 label from a model name (InferenceService names become host names)."""
    name = re.sub(r"[^a-z0-9-]+", "-", model.lower()).strip("-")
    if not name or not name[0].isalpha():
        name = f"m-{name}".rstrip("-")
    return name[:45].rstrip("-")


def _metadata(name: str, options: KServeOptions, labels: dict[str, str]) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "labels": {"app.kubernetes.io/part-of": "vitrt", **labels}}
    if options.namespace:
        metadata["namespace"] = options.namespace
    return metadata


def _resources(options: KServeOptions) -> dict[str, Any]:
    limits: dict[str, Any] = {"cpu": options.cpu, "memory": options.memory}
    if options.gpus:
        limits["nvidia.com/gpu"] = str(options.gpus)
    return {"requests": dict(limits), "limits": limits}


def _scaling(options: KServeOptions) -> dict[str, Any]:
    return {
        "minReplicas": options.min_replicas,
        "maxReplicas": options.max_replicas,
        "scaleMetric": options.scale_metric,
        "scaleTarget": options.scale_target,
    }


def triton_service(
    name: str,
    triton_release: str,
    options: KServeOptions,
    *,
    image: str | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An InferenceService serving the model repository with KServe's Triton runtime."""
    check_options(options)
    model: dict[str, Any] = {
        "modelFormat": {"name": "triton"},
        "protocolVersion": "v2",
        "runtimeVersion": f"{triton_release}-py3",
        "storageUri": options.storage_uri,
        "resources": _resources(options),
    }
    if image:
        model["image"] = image
    if env:
        model["env"] = [{"name": k, "value": v} for k, v in env.items()]
    return {
        "apiVersion": API_VERSION,
        "kind": "InferenceService",
        "metadata": _metadata(service_name(name), options, {"vitrt.dev/server": "triton"}),
        "spec": {"predictor": {**_scaling(options), "model": model}},
    }


def vitrt_service(name: str, model_file: str, image: str, options: KServeOptions) -> dict[str, Any]:
    """An InferenceService whose predictor is the vitrt image running `vitrt serve` (KServe v2 on port 8080)."""
    check_options(options)
    probe = {"httpGet": {"path": "/v2/health/ready", "port": VITRT_PORT}, "periodSeconds": 10}
    container = {
        "name": "kserve-container",
        "image": image,
        "args": [
            "serve",
            f"/mnt/models/{model_file}",
            "--name",
            name,
            "--host",
            "0.0.0.0",
            "--port",
            str(VITRT_PORT),
        ],
        "env": [{"name": "STORAGE_URI", "value": options.storage_uri}],
        "ports": [{"containerPort": VITRT_PORT, "protocol": "TCP"}],
        "resources": _resources(options),
        "readinessProbe": {**probe, "initialDelaySeconds": 5},
        "livenessProbe": {"httpGet": {"path": "/v2/health/live", "port": VITRT_PORT}, "periodSeconds": 20},
    }
    return {
        "apiVersion": API_VERSION,
        "kind": "InferenceService",
        "metadata": _metadata(service_name(f"{name}-vitrt"), options, {"vitrt.dev/server": "vitrt"}),
        "spec": {"predictor": {**_scaling(options), "containers": [container]}},
    }


def write_manifests(report: Any, directory: str | Path, options: KServeOptions, vitrt_image: str) -> dict[str, str]:
    """Write `<repo>-triton.yaml` and one `<model>-vitrt.yaml` per classifier; returns the kubectl command."""
    import yaml

    from vitrt.triton.runtime_model import ENV_VARIABLE

    directory = Path(directory)
    classifiers = [m for m in report.models if m.backend not in ("ensemble",) and not m.name.endswith("_preprocess")]
    if not classifiers:
        raise VitrtError("the repository has no classifier model to write KServe manifests for")
    vitrt_runtime = any(m.backend.startswith("python/") for m in classifiers)
    custom = report.image.startswith("vitrt-triton:")
    env = {ENV_VARIABLE: TRITON_IMAGE_ENV} if vitrt_runtime else None
    gpu_options = options
    if any(m.kind == "KIND_GPU" for m in classifiers) and not options.gpus:
        gpu_options = KServeOptions(**{**vars(options), "gpus": 1})
    documents = {
        f"{service_name(classifiers[0].name)}-triton.yaml": triton_service(
            classifiers[0].name, report.triton_release, gpu_options, image=report.image if custom else None, env=env
        )
    }
    for model in classifiers:
        artifact = next(
            (f for f in model.files if f.rsplit("/", 1)[-1] in ("model.onnx", "model.plan", "model.xml")), None
        )
        if artifact is None or "/" not in artifact:
            continue
        version, filename = artifact.split("/", 1)
        per_model = KServeOptions(
            **{**vars(gpu_options), "storage_uri": f"{options.storage_uri.rstrip('/')}/{model.name}/{version}"}
        )
        documents[f"{service_name(model.name)}-vitrt.yaml"] = vitrt_service(
            model.name, filename, vitrt_image, per_model
        )
    directory.mkdir(parents=True, exist_ok=True)
    for filename, document in documents.items():
        (directory / filename).write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return {"kubectl": f"kubectl apply -f {directory / next(iter(documents))}", "kserve_dir": str(directory)}
