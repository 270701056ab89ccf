"""Triton Python-backend model that runs a vitrt artifact with vitrt's own runtime backends.

`vitrt triton-repo ARTIFACT --runtime vitrt` copies this file to `<model>/<version>/model.py`, next to the
artifact (`model.onnx`, or `model.plan` + `model.plan.json`). Triton's Python backend runs it in its stub process,
whose embedded interpreter ignores `PYTHONPATH`, and it imports its own `triton_python_backend_utils` (which
needs numpy) right after this module; so on import this module puts the environment `vitrt triton-env` built
(numpy < 2, the runtime, vitrt's runtime modules) first on `sys.path` itself. Where that environment is:

1. the path in `python_env.txt` beside this file (written by `vitrt triton-repo --python-env DIR`);
2. else the `VITRT_TRITON_ENV` environment variable of the `tritonserver` process;
3. else nothing is added (an image that installed vitrt and its runtime into Triton's own Python).

Settings come from the `vitrt` parameter of config.pbtxt (JSON): `backend` (onnxruntime | openvino | tensorrt),
`artifact` (the file in the version directory), `options` (keyword arguments for the backend loader). Triton's
dynamic batcher hands `execute` several requests at once; they run as one batch and the outputs are split back.
This module must not import vitrt or numpy at import time (neither is importable before `initialize` runs).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ENV_VARIABLE = "VITRT_TRITON_ENV"
ENV_POINTER = "python_env.txt"
# Relative to an environment directory: where `vitrt triton-env` installs the packages.
ENV_PACKAGES = "site-packages"


def environment_paths(model_dir: Path) -> list[str]:
    """The directories to put first on sys.path: from `python_env.txt` in `model_dir`, else $VITRT_TRITON_ENV."""
    pointer = model_dir / ENV_POINTER
    root = pointer.read_text(encoding="utf-8").strip() if pointer.is_file() else os.environ.get(ENV_VARIABLE, "")
    if not root:
        return []
    packages = Path(root) / ENV_PACKAGES
    return [str(packages if packages.is_dir() else Path(root))]


def use_environment(model_dir: Path) -> None:
    for path in reversed(environment_paths(model_dir)):
        if path not in sys.path:
            sys.path.insert(0, path)


use_environment(Path(__file__).resolve().parent)


def split_rows(total: int, sizes: list[int]) -> list[tuple[int, int]]:
    """(start, stop) row ranges of consecutive requests of `sizes` rows in a batch of `total` rows."""
    if sum(sizes) != total:
        raise ValueError(f"batch of {total} rows does not match request sizes {sizes}")
    ranges, start = [], 0
    for size in sizes:
        ranges.append((start, start + size))
        start += size
    return ranges


class TritonPythonModel:
    """Triton entry points: `initialize` once per instance, `execute` per batch of requests, `finalize`."""

    def initialize(self, args: dict[str, str]) -> None:
        import triton_python_backend_utils as pb_utils

        self.pb_utils = pb_utils
        config = json.loads(args["model_config"])
        raw = config.get("parameters", {}).get("vitrt", {}).get("string_value")
        if not raw:
            raise pb_utils.TritonModelException(
                "config.pbtxt has no 'vitrt' parameter; write it with vitrt triton-repo"
            )
        settings = json.loads(raw)
        try:
            import numpy as np
        except ImportError:
            raise pb_utils.TritonModelException(
                "numpy is not importable in Triton's Python backend; build an environment with `vitrt triton-env` "
                f"and pass it with vitrt triton-repo --python-env or $"
                f"{ENV_VARIABLE}"
            ) from None
        if int(np.__version__.split(".")[0]) >= 2:
            raise pb_utils.TritonModelException(
                f"numpy {np.__version__} is on Triton's Python path, but the backend stub's tensor bridge needs "
                "numpy < 2 (outputs would come back empty); use an environment built by `vitrt triton-env`"
            )
        try:
            from vitrt.engines import load
        except ImportError as err:
            raise pb_utils.TritonModelException(
                f"vitrt is not importable in Triton's Python backend ({err}); build an environment with "
                f"`vitrt triton-env` and pass it with vitrt triton-repo --python-env or $"
                f"{ENV_VARIABLE}"
            ) from None
        self.np = np
        version_dir = Path(args["model_repository"]) / args["model_version"]
        artifact = version_dir / settings["artifact"]
        options = dict(settings.get("options") or {})
        backend_name = settings["backend"]
        if args.get("model_instance_kind") == "GPU":
            device = int(args.get("model_instance_device_id", "0"))
            if backend_name == "tensorrt":
                options.setdefault("device", device)
            elif backend_name == "onnxruntime":
                options.setdefault(
                    "providers", [("CUDAExecutionProvider", {"device_id": device}), "CPUExecutionProvider"]
                )
        try:
            self.backend = load(artifact, backend=backend_name, **options)
        except Exception as err:  # the stub reports this text as the model's load failure
            raise pb_utils.TritonModelException(f"vitrt could not load {artifact.name}: {err}") from None
        self.input_names = [t.name for t in self.backend.inputs]
        self.outputs = [(o["name"], pb_utils.triton_string_to_numpy(o["data_type"])) for o in config["output"]]
        self.batched = int(config.get("max_batch_size", 0)) > 0
        warmup = int(settings.get("warmup", 0))
        if warmup:
            self.backend.warmup(iterations=warmup)

    def execute(self, requests: list[Any]) -> list[Any]:
        pb_utils, np = self.pb_utils, self.np
        feeds_per_request = []
        for request in requests:
            feeds = {}
            for name in self.input_names:
                tensor = pb_utils.get_input_tensor_by_name(request, name)
                feeds[name] = tensor.as_numpy()
            feeds_per_request.append(feeds)
        if not self.batched:
            return [self._run(feeds, [None])[0] for feeds in feeds_per_request]
        sizes = [int(next(iter(feeds.values())).shape[0]) for feeds in feeds_per_request]
        if len(requests) == 1:
            batch = feeds_per_request[0]
        else:
            batch = {name: np.concatenate([f[name] for f in feeds_per_request]) for name in self.input_names}
        return self._run(batch, split_rows(sum(sizes), sizes))

    def _run(self, feeds: dict[str, Any], ranges: Sequence[tuple[int, int] | None]) -> list[Any]:
        pb_utils, np = self.pb_utils, self.np
        try:
            results = self.backend.run(feeds, [name for name, _ in self.outputs])
        except Exception as err:
            error = pb_utils.TritonError(f"inference failed: {' '.join(str(err).split())[:300]}")
            return [pb_utils.InferenceResponse(output_tensors=[], error=error) for _ in ranges]
        responses = []
        for rows in ranges:
            tensors = []
            for name, dtype in self.outputs:
                value = results[name] if rows is None else results[name][rows[0] : rows[1]]
                tensors.append(pb_utils.Tensor(name, np.ascontiguousarray(value, dtype=dtype)))
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
        return responses

    def finalize(self) -> None:
        backend = getattr(self, "backend", None)
        if backend is not None:
            backend.close()
