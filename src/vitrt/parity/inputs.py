"""Parity inputs: seeded random tensors, the demo digits, or an ImageFolder-style directory of labelled images."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vitrt.errors import VitrtError
from vitrt.metadata import ModelMetadata

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".ppm"})


@dataclass
class ParityInputs:
    images: np.ndarray  # float32 (N, C, H, W), preprocessed
    labels: np.ndarray | None  # int64 (N,) when the source is labelled
    source: str  # "random (seed 0)", "demo-digits (test split)", a directory
    notes: list[str] = field(default_factory=list)


def load_inputs(spec: str | Path, metadata: ModelMetadata, n: int | None, seed: int = 0) -> ParityInputs:
    """`spec`: "random", "demo-digits" or a directory. `n`: how many samples (None = all, random needs it)."""
    if n is not None and n <= 0:
        raise VitrtError(f"--n must be positive, got {n}")
    text = str(spec)
    if text == "random":
        count = 64 if n is None else n
        rng = np.random.default_rng(seed)
        images = rng.standard_normal((count, *metadata.input_size), dtype=np.float32)
        return ParityInputs(images, None, f"random normal (seed {seed})")
    if text == "demo-digits":
        from vitrt.data.digits import digits_batch

        images, labels = digits_batch(metadata, "test", limit=n)
        return ParityInputs(images, labels.astype(np.int64), "demo digits (held-out test split)")
    directory = Path(text)
    if not directory.is_dir():
        raise VitrtError(f"--inputs must be 'random', 'demo-digits' or a directory; {text!r} is none of these")
    from vitrt.parity.replay import INDEX_NAME, kept_images

    if (directory / INDEX_NAME).is_file():  # a shadow keep folder (vitrt serve --shadow-keep)
        images, source = kept_images(directory, n)
        return ParityInputs(images, None, source)
    return load_image_folder(directory, metadata, n)


def load_image_folder(directory: Path, metadata: ModelMetadata, n: int | None) -> ParityInputs:
    """Images under `directory/<class>/...` (labelled) or directly in `directory` (unlabelled).

    Class folders map to the model's labels by name when every folder name is one of them, else by sorted order
    (torchvision ImageFolder's convention). Samples are taken round-robin over classes so a small `n` still covers
    every class. Unreadable files are skipped and counted in the notes.
    """
    from vitrt.preprocess import ImageDecodeError, decode_image, preprocess_images

    classes = sorted(d.name for d in directory.iterdir() if d.is_dir() and not d.name.startswith("."))
    notes = []
    if classes:
        if metadata.labels and all(c in metadata.labels for c in classes):
            index = {c: metadata.labels.index(c) for c in classes}
        else:
            if len(classes) > metadata.num_classes:
                raise VitrtError(
                    f"{directory} has {len(classes)} class folders but the model has {metadata.num_classes} classes"
                )
            index = {c: i for i, c in enumerate(classes)}
            if metadata.labels:
                notes.append("class folders do not match the model's labels; mapped by sorted folder order")
        per_class = [(index[c], _image_files(directory / c)) for c in classes]
    else:
        per_class = [(-1, _image_files(directory))]
    ordered = _round_robin(per_class)
    if n is not None:
        ordered = ordered[:n]
    images, labels, skipped = [], [], 0
    for label, path in ordered:
        try:
            images.append(decode_image(path.read_bytes()))
        except (ImageDecodeError, OSError) as err:
            skipped += 1
            log.warning("skipping %s: %s", path, err)
            continue
        labels.append(label)
    if skipped:
        notes.append(f"skipped {skipped} unreadable file(s)")
    if not images:
        raise VitrtError(f"no readable images under {directory}")
    batch = preprocess_images(images, metadata)
    label_array = np.asarray(labels, dtype=np.int64) if classes else None
    return ParityInputs(batch, label_array, str(directory), notes)


def _image_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _round_robin(per_class: list[tuple[int, list[Path]]]) -> list[tuple[int, Path]]:
    ordered = []
    depth = max((len(files) for _, files in per_class), default=0)
    for i in range(depth):
        for label, files in per_class:
            if i < len(files):
                ordered.append((label, files[i]))
    return ordered
