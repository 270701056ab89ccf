"""Server and per-model settings, from CLI flags or a YAML file.

# serve.yaml
host: 127.0.0.1
port: 8000
nonfinite: reject
models:
  - name: digits
    artifact: out/agent_digits.onnx
    backend: onnxruntime
    max_batch_size: 16
    max_queue_delay_ms: 2
    instances: 1
    max_queue_size: 128
    backend_options: {intra_op_threads: 2}
    shadow:                      # optional: shadow parity against a reference (see docs/serving.md)
      reference: out/agent_digits.onnx
      backend: onnxruntime
      rate: 0.05
      policy: unready
  - name: digits-fast
    artifact: out/agent_digits.onnx
    backend: openvino        # or auto: on a CPU-only machine the faster of onnxruntime and openvino, measured
    precision: bf16          # openvino only: fp32 | bf16 | fp16
    backend_options: {threads: 2, performance_hint: throughput}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from vitrt.errors import VitrtError

BackendName = Literal["auto", "onnxruntime", "openvino", "tensorrt", "torch"]
Precision = Literal["fp32", "bf16", "fp16"]
NonFinitePolicy = Literal["reject", "allow"]
ShadowPolicy = Literal["log", "unready", "fallback"]


class ConfigError(VitrtError):
    """A serve configuration (flags or YAML) that cannot be used."""


class ShadowConfig(BaseModel):
    """Shadow parity: a sampled fraction of live requests re-run on a reference backend, off the request path."""

    model_config = ConfigDict(extra="forbid")

    reference: str = Field(description="ONNX file, TensorRT plan or zoo model name computing the reference outputs")
    backend: BackendName = Field(default="auto", description="runtime of the reference (e.g. onnxruntime FP32)")
    backend_options: dict[str, Any] = Field(default_factory=dict)
    rate: float = Field(default=0.01, ge=0, le=1, description="fraction of requests re-run on the reference")
    window: int = Field(default=256, ge=1, le=1_000_000, description="compared requests the figures cover")
    min_samples: int = Field(default=1, ge=1, description="compared requests before a breach can be declared")
    precision: Literal["fp32", "fp16", "bf16"] = Field(default="fp32", description="selects the default budget")
    budget: dict[str, float] = Field(default_factory=dict, description="parity budget fields that override defaults")
    policy: ShadowPolicy = "log"
    queue_size: int = Field(default=64, ge=1, le=100_000, description="samples waiting for the reference")
    threads: int = Field(
        default=1,
        ge=1,
        le=64,
        description="threads of the reference runtime (onnxruntime intra_op_threads / openvino threads, unless its "
        "backend options set them); one worker thread runs it",
    )
    cpu_share: float = Field(
        default=0.1,
        gt=0,
        le=1,
        description="most of one core's time the shadow may use (a duty cycle: it rests in proportion to its work)",
    )
    keep: str | None = Field(default=None, description="folder keeping the inputs of requests over budget")
    keep_max: int = Field(default=100, ge=1, le=100_000, description="most inputs kept in the folder")
    keep_max_bytes: int = Field(default=256 * 1024 * 1024, ge=1024, description="most bytes kept in the folder")
    seed: int | None = Field(default=None, description="seed of the sampler (default: random)")

    @field_validator("budget")
    @classmethod
    def _known_budget_fields(cls, value: dict[str, float]) -> dict[str, float]:
        from vitrt.parity.budgets import default_budget

        try:
            default_budget("fp32").with_overrides(value)
        except VitrtError as err:  # unknown or negative fields
            raise ValueError(str(err)) from None
        return value


class ModelConfig(BaseModel):
    """One served model: where it comes from and how requests to it are batched."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
    artifact: str = Field(description="ONNX file, TensorRT plan, or a vitrt zoo model name")
    backend: BackendName = "auto"
    precision: Precision | None = Field(
        default=None,
        description="inference precision of the openvino backend (auto with bf16/fp16 picks openvino); a TensorRT "
        "engine keeps the precision it was built with",
    )
    version: str = Field(default="1", pattern=r"^[A-Za-z0-9_.\-]{1,64}$")
    max_batch_size: int = Field(default=8, ge=1, le=4096, description="largest batch one execution runs")
    max_queue_delay_ms: float = Field(
        default=0.0,
        ge=0,
        le=60_000,
        description="how long the oldest queued request waits for others to join (0: dispatch at once; batches "
        "still form from requests that queue while the previous batch runs)",
    )
    instances: int = Field(default=1, ge=1, le=64, description="batches that may execute at the same time")
    max_queue_size: int = Field(default=256, ge=1, le=1_000_000, description="queued requests before 503")
    nonfinite: NonFinitePolicy | None = Field(default=None, description="overrides the server-wide policy")
    warmup: bool = True
    backend_options: dict[str, Any] = Field(default_factory=dict)
    shadow: ShadowConfig | None = Field(default=None, description="shadow parity against a reference backend")

    @field_validator("precision", mode="before")
    @classmethod
    def _precision_spelling(cls, value: Any) -> Any:
        aliases = {"f32": "fp32", "float32": "fp32", "f16": "fp16", "float16": "fp16", "bfloat16": "bf16"}
        return aliases.get(str(value).lower(), str(value).lower()) if value is not None else None

    @model_validator(mode="after")
    def _precision_backend(self) -> ModelConfig:
        if self.precision is not None and self.backend not in ("auto", "openvino"):
            raise ValueError(
                f"precision is an option of the openvino backend (or auto), not {self.backend}; a TensorRT engine "
                "keeps the precision it was built with (vitrt build --precision)"
            )
        if self.precision is not None and "precision" in self.backend_options:
            raise ValueError("precision is given twice (precision and backend_options.precision)")
        return self


class ServerConfig(BaseModel):
    """Everything `create_app` and `vitrt serve` need."""

    model_config = ConfigDict(extra="forbid")

    models: list[ModelConfig] = Field(min_length=1)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    api_key: SecretStr | None = None
    cors_origins: list[str] = Field(default_factory=list)
    max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    max_image_pixels: int = Field(default=25_000_000, ge=1)
    max_images_per_request: int = Field(default=64, ge=1)
    nonfinite: NonFinitePolicy = "reject"
    request_timeout_s: float = Field(default=60.0, gt=0, description="longest a request may wait in a queue")
    shutdown_timeout_s: float = Field(default=30.0, ge=0, description="grace period to drain in-flight requests")
    # Longer than the idle expiry of common HTTP clients (httpx 5 s, aiohttp 15 s) and of typical load balancers
    # (60 s), so that the client closes idle connections. With equal timeouts (uvicorn's default 5 s against
    # httpx's 5 s) a client can reuse a connection in the instant the server closes it and lose that request
    # (ReadError): uvloop runs due timers before it reads sockets, so a busy event loop widens that instant.
    keep_alive_timeout_s: float = Field(
        default=75.0,
        gt=0,
        le=3600,
        description="how long an idle keep-alive connection stays open; longer than clients' own idle expiry so "
        "that clients close idle connections, never the server while a client reuses one",
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    access_log: bool = True

    @field_validator("api_key")
    @classmethod
    def _non_empty_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value():
            return None
        return value

    @model_validator(mode="after")
    def _unique_names(self) -> ServerConfig:
        names = [m.name for m in self.models]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"model name {duplicates[0]!r} is used twice")
        return self

    def policy_for(self, model: ModelConfig) -> NonFinitePolicy:
        return model.nonfinite or self.nonfinite


def build_config(data: dict[str, Any], source: str = "configuration") -> ServerConfig:
    try:
        return ServerConfig.model_validate(data)
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        location = ".".join(str(part) for part in first["loc"]) or "top level"
        raise ConfigError(f"{source}: {location}: {first['msg']}") from None


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML (or JSON) serve configuration into a plain dict; relative artifact paths resolve from its folder."""
    import yaml

    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"serve configuration not found: {file}")
    try:
        data = yaml.safe_load(file.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ConfigError(f"{file}: not valid YAML ({' '.join(str(err).split())[:160]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: expected a mapping with a 'models' list")
    for model in data.get("models") or []:
        if isinstance(model, dict) and isinstance(model.get("artifact"), str):
            candidate = file.parent / model["artifact"]
            if not Path(model["artifact"]).is_absolute() and candidate.exists():
                model["artifact"] = str(candidate)
        shadow = model.get("shadow") if isinstance(model, dict) else None
        if isinstance(shadow, dict) and isinstance(shadow.get("reference"), str):
            candidate = file.parent / shadow["reference"]
            if not Path(shadow["reference"]).is_absolute() and candidate.exists():
                shadow["reference"] = str(candidate)
    return data
