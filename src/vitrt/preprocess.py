"""Image preprocessing shared by the server, parity checks and the demo data.

Follows the official evaluation pipeline of these repos: a *square* resize to S / crop_pct (bicubic by default),
a centre crop to S, scaling to [0, 1] and mean/std normalisation. With crop_pct = 1 the image is resized
straight to S x S.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from vitrt.errors import VitrtError

if TYPE_CHECKING:
    from PIL import Image

    from vitrt.metadata import ModelMetadata

_RESAMPLE = {"nearest": 0, "bilinear": 2, "bicubic": 3, "lanczos": 1, "box": 4, "hamming": 5}


class ImageDecodeError(VitrtError):
    """Bytes that are not a readable image, or an image over the size limit."""


def decode_image(data: bytes, *, max_pixels: int = 40_000_000) -> Image.Image:
    """Decode JPEG/PNG/WebP/... bytes into an RGB image, refusing corrupt or oversized input."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as probe:
            width, height = probe.size
            if width * height > max_pixels:
                raise ImageDecodeError(f"image of {width}x{height} pixels exceeds the limit of {max_pixels} pixels")
            probe.load()
            return probe.convert("RGB")
    except ImageDecodeError:
        raise
    except UnidentifiedImageError:
        raise ImageDecodeError("not a readable image (unknown or unsupported format)") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise ImageDecodeError(f"not a readable image ({' '.join(str(err).split())[:120]})") from None


def resize_and_crop(image: Image.Image, size: tuple[int, int], crop_pct: float, interpolation: str) -> Image.Image:
    """Square-warp resize to size / crop_pct, then centre-crop to `size` (height, width)."""
    height, width = size
    resample = _RESAMPLE.get(interpolation, 3)
    if crop_pct >= 1.0:
        return image.resize((width, height), resample=resample)
    scaled_h, scaled_w = int(height / crop_pct), int(width / crop_pct)
    resized = image.resize((scaled_w, scaled_h), resample=resample)
    top = int(round((scaled_h - height) / 2.0))
    left = int(round((scaled_w - width) / 2.0))
    return resized.crop((left, top, left + width, top + height))


def normalize(image: Image.Image, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """RGB image -> float32 (3, H, W), scaled to [0, 1] then normalised."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32) / np.float32(255.0)
    normalized = (pixels - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(normalized.transpose(2, 0, 1), dtype=np.float32)


def preprocess_images(images: Sequence[Image.Image], metadata: ModelMetadata) -> np.ndarray:
    """A batch of PIL images -> float32 (N, 3, H, W) ready for the model described by `metadata`."""
    size = metadata.image_size
    batch = [
        normalize(resize_and_crop(img, size, metadata.crop_pct, metadata.interpolation), metadata.mean, metadata.std)
        for img in images
    ]
    return np.stack(batch).astype(np.float32, copy=False)
