"""The demo data set: scikit-learn's bundled 8x8 handwritten digits, as RGB images.

Every consumer (training, parity, the server tests) goes through the same path: 8x8 grey values 0..16 ->
uint8 PIL image -> the model's preprocessing (`vitrt.preprocess`). A PNG of a test digit therefore produces exactly
the tensor the model was evaluated on.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

    from vitrt.metadata import ModelMetadata

LABELS = tuple(str(i) for i in range(10))
SPLIT_SEED = 0
TEST_FRACTION = 0.25


@cache
def _split_indices() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    labels = load_digits().target
    indices = np.arange(len(labels))
    train, test = train_test_split(indices, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=labels)
    return np.sort(train), np.sort(test)


def load_digits_split(split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (n, 8, 8) in 0..255, labels int64 (n,)) for split "train", "test" or "all"."""
    from sklearn.datasets import load_digits

    data = load_digits()
    images = np.rint(data.images * (255.0 / 16.0)).astype(np.uint8)
    labels = data.target.astype(np.int64)
    if split == "all":
        return images, labels
    train, test = _split_indices()
    if split == "train":
        return images[train], labels[train]
    if split == "test":
        return images[test], labels[test]
    raise ValueError(f"unknown digits split {split!r} (train, test, all)")


def digit_to_pil(image: np.ndarray) -> Image.Image:
    """An 8x8 uint8 digit as an RGB PIL image (what a PNG of it decodes to)."""
    from PIL import Image

    return Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).convert("RGB")


def digits_batch(
    metadata: ModelMetadata, split: str = "test", limit: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Preprocessed float32 (n, 3, H, W) inputs and labels for a model described by `metadata`."""
    from vitrt.preprocess import preprocess_images

    images, labels = load_digits_split(split)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return preprocess_images([digit_to_pil(img) for img in images], metadata), labels
