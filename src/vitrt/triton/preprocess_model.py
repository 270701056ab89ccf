"""Triton Python-backend model: encoded images (TYPE_STRING) -> normalised pixels for a vitrt classifier.

`vitrt triton-repo --with-preprocessing` copies this file to `<model>_preprocess/1/model.py`. It runs inside
Triton's Python backend, where vitrt is not installed, so it depends only on numpy and Pillow and repeats the
steps of `vitrt.preprocess` (decode to RGB, square resize to size / crop_pct, centre crop, scale to [0, 1],
mean/std normalisation, HWC -> CHW); vitrt's tests check that both give identical arrays. The settings come from
the `preprocess` parameter of the model's config.pbtxt (JSON written from the artifact's `ModelMetadata`).
Like the vitrt runtime model, it first puts the `vitrt triton-env` environment (`python_env.txt` beside it, else
$VITRT_TRITON_ENV) on `sys.path`, since Triton's stub ignores `PYTHONPATH`.
"""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path
from typing import Any


def _use_environment(model_dir: Path) -> None:
    pointer = model_dir / "python_env.txt"
    root = pointer.read_text(encoding="utf-8").strip() if pointer.is_file() else os.environ.get("VITRT_TRITON_ENV")
    if root:
        packages = Path(root) / "site-packages"
        path = str(packages if packages.is_dir() else Path(root))
        if path not in sys.path:
            sys.path.insert(0, path)


_use_environment(Path(__file__).resolve().parent)

import numpy as np  # noqa: E402  (after the environment is on sys.path)

# Pillow resampling filter numbers, as `vitrt.preprocess` uses them.
RESAMPLE = {"nearest": 0, "bilinear": 2, "bicubic": 3, "lanczos": 1, "box": 4, "hamming": 5}


class PreprocessError(ValueError):
    """An input that is not a readable image."""


def preprocess_one(data: bytes, settings: dict[str, Any]) -> np.ndarray:
    """Encoded image bytes -> float32 (3, H, W)."""
    from PIL import Image, UnidentifiedImageError

    height, width = settings["size"]
    try:
        with Image.open(io.BytesIO(data)) as probe:
            if probe.size[0] * probe.size[1] > settings["max_pixels"]:
                raise PreprocessError(f"image of {probe.size[0]}x{probe.size[1]} pixels exceeds the limit")
            probe.load()
            image = probe.convert("RGB")
    except PreprocessError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise PreprocessError(f"not a readable image ({' '.join(str(err).split())[:120]})") from None
    resample = RESAMPLE.get(settings["interpolation"], 3)
    crop_pct = settings["crop_pct"]
    if crop_pct >= 1.0:
        image = image.resize((width, height), resample=resample)
    else:
        scaled_h, scaled_w = int(height / crop_pct), int(width / crop_pct)
        image = image.resize((scaled_w, scaled_h), resample=resample)
        top = int(round((scaled_h - height) / 2.0))
        left = int(round((scaled_w - width) / 2.0))
        image = image.crop((left, top, left + width, top + height))
    scaled = np.asarray(image, dtype=np.float32) / 255.0
    mean = np.asarray(settings["mean"], dtype=np.float32)
    std = np.asarray(settings["std"], dtype=np.float32)
    return np.ascontiguousarray(((scaled - mean) / std).transpose(2, 0, 1))


def parse_settings(model_config: dict[str, Any]) -> dict[str, Any]:
    """The preprocessing settings stored in the model config's `preprocess` parameter."""
    raw = model_config.get("parameters", {}).get("preprocess", {}).get("string_value")
    if not raw:
        raise ValueError("config.pbtxt has no 'preprocess' parameter")
    settings = json.loads(raw)
    settings["size"] = tuple(int(v) for v in settings["size"])
    settings.setdefault("max_pixels", 40_000_000)
    return settings


class TritonPythonModel:
    """The Python-backend entry points: `initialize` once, `execute` per batch of requests."""

    def initialize(self, args: dict[str, str]) -> None:
        import triton_python_backend_utils as pb_utils

        try:
            import PIL  # noqa: F401
        except ImportError:
            raise pb_utils.TritonModelException(
                "Pillow is not installed in this Triton image; build vitrt's docker/Dockerfile.triton, which adds it"
            ) from None
        self.pb_utils = pb_utils
        config = json.loads(args["model_config"])
        self.settings = parse_settings(config)
        self.input_name = config["input"][0]["name"]
        output = config["output"][0]
        self.output_name = output["name"]
        self.output_dtype = pb_utils.triton_string_to_numpy(output["data_type"])

    def execute(self, requests: list[Any]) -> list[Any]:
        pb_utils = self.pb_utils
        responses = []
        for request in requests:
            encoded = pb_utils.get_input_tensor_by_name(request, self.input_name).as_numpy()
            try:
                pixels = np.stack([preprocess_one(_as_bytes(item), self.settings) for item in encoded.reshape(-1)])
            except PreprocessError as err:
                responses.append(pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(str(err))))
                continue
            tensor = pb_utils.Tensor(self.output_name, pixels.astype(self.output_dtype, copy=False))
            responses.append(pb_utils.InferenceResponse(output_tensors=[tensor]))
        return responses


def _as_bytes(item: Any) -> bytes:
    # TYPE_STRING tensors arrive as numpy object arrays of bytes (or str for JSON-sent text).
    return item if isinstance(item, bytes) else str(item).encode("latin-1")
