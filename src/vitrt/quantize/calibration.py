"""Calibration and held-out data for post-training quantization.

Three sources, each split into a calibration part (ranges are measured on it) and a disjoint held-out part (the
accuracy budget is checked on it):

* `demo-digits`: the digits training split calibrates, the held-out test split (the one the demo accuracy is
  quoted on) evaluates;
* an ImageFolder directory (`DIR/<class>/*.png` labelled, or images directly in `DIR`): images taken round-robin
  over classes; the first `n` calibrate, the next ones (up to `holdout`) evaluate;
* `random`: seeded standard-normal tensors, unlabelled (only top-1 agreement can be checked; say so in reports).

Calibration batches are produced lazily (a folder is decoded batch by batch), so memory stays bounded by one batch
plus the held-out set, whatever `n` is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vitrt.errors import VitrtError

if TYPE_CHECKING:
    from PIL import Image

    from vitrt.metadata import ModelMetadata

# Modes that convert to 8-bit RGB without losing meaning; 16-bit and float images ("I;16", "I", "F") would be
# clipped to garbage by the conversion, so they are refused instead of silently mis-calibrating.
ACCEPTED_MODES = frozenset({"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr"})
# An image whose shorter side is below this fraction of the model's input is almost certainly the wrong data set.
MIN_SIDE_FRACTION = 1 / 8
DEFAULT_HOLDOUT = 500


class CalibrationError(VitrtError):
    """Calibration data that cannot be used: an empty or unreadable folder, images of the wrong size or mode."""


@dataclass
class CalibrationData:
    source: str  # what the user asked for, in words
    count: int  # number of calibration samples
    holdout_images: np.ndarray  # float32 (N, C, H, W), preprocessed, disjoint from the calibration samples
    holdout_labels: np.ndarray | None  # int64 (N,) when the source is labelled
    holdout_source: str
    _batches: Callable[[int], Iterator[np.ndarray]]
    notes: list[str] = field(default_factory=list)
    _sha256: str | None = field(default=None, repr=False)

    def batches(self, batch_size: int = 16) -> Iterator[np.ndarray]:
        """The calibration samples as float32 (B, C, H, W) batches, produced on demand."""
        return self._batches(batch_size)

    @property
    def sha256(self) -> str:
        """sha256 of the preprocessed float32 calibration tensors, in order (recorded with the INT8 artifact)."""
        if self._sha256 is None:
            import hashlib

            digest = hashlib.sha256()
            for batch in self.batches(64):
                digest.update(np.ascontiguousarray(batch, dtype=np.float32).tobytes())
            self._sha256 = digest.hexdigest()
        return self._sha256

    def subset(self, count: int) -> CalibrationData:
        """The same data with only the first `count` calibration samples (the sensitivity search uses fewer)."""
        count = min(count, self.count)
        parent = self._batches

        def batches(batch_size: int) -> Iterator[np.ndarray]:
            left = count
            for batch in parent(batch_size):
                if left <= 0:
                    return
                yield batch[:left]
                left -= len(batch)

        return CalibrationData(
            self.source, count, self.holdout_images, self.holdout_labels, self.holdout_source, batches, self.notes
        )


def load_calibration(
    spec: str | Path, metadata: ModelMetadata, n: int = 512, *, holdout: int | None = None, seed: int = 0
) -> CalibrationData:
    """Calibration data for a model described by `metadata`. `spec`: "demo-digits", "random" or a directory."""
    if n <= 0:
        raise CalibrationError(f"--n must be positive, got {n}")
    if holdout is not None and holdout <= 0:
        raise CalibrationError(f"the held-out size must be positive, got {holdout}")
    text = str(spec)
    if text == "random":
        return _random(metadata, n, holdout or 128, seed)
    if text == "demo-digits":
        return _digits(metadata, n, holdout)
    directory = Path(text)
    if not directory.exists():
        raise CalibrationError(f"--calibration must be 'demo-digits', 'random' or an image folder; {text!r} is none")
    if not directory.is_dir():
        raise CalibrationError(f"calibration path {directory} is not a directory")
    return _folder(directory, metadata, n, holdout or DEFAULT_HOLDOUT)


def _random(metadata: ModelMetadata, n: int, holdout: int, seed: int) -> CalibrationData:
    shape = metadata.input_size

    def batches(batch_size: int) -> Iterator[np.ndarray]:
        rng = np.random.default_rng(seed)
        for start in range(0, n, batch_size):
            yield rng.standard_normal((min(batch_size, n - start), *shape), dtype=np.float32)

    held = np.random.default_rng(seed + 1).standard_normal((holdout, *shape), dtype=np.float32)
    return CalibrationData(
        f"random normal images (seed {seed})",
        n,
        held,
        None,
        f"random normal images (seed {seed + 1})",
        batches,
        ["random calibration: ranges and the agreement check say nothing about real-data accuracy"],
    )


def _digits(metadata: ModelMetadata, n: int, holdout: int | None) -> CalibrationData:
    from vitrt.data.digits import digits_batch

    train, _ = digits_batch(metadata, "train")
    test, labels = digits_batch(metadata, "test", limit=holdout)
    calib = train[:n]
    notes = [] if n <= len(train) else [f"the digits training split has only {len(train)} images; used all"]

    def batches(batch_size: int) -> Iterator[np.ndarray]:
        for start in range(0, len(calib), batch_size):
            yield calib[start : start + batch_size]

    return CalibrationData(
        "demo digits (training split)",
        len(calib),
        test,
        labels.astype(np.int64),
        "demo digits (held-out test split)",
        batches,
        notes,
    )


def _folder(directory: Path, metadata: ModelMetadata, n: int, holdout: int) -> CalibrationData:
    from vitrt.parity.inputs import _image_files, _round_robin
    from vitrt.preprocess import preprocess_images

    try:
        classes = sorted(d.name for d in directory.iterdir() if d.is_dir() and not d.name.startswith("."))
    except OSError as err:
        raise CalibrationError(f"cannot read calibration folder {directory}: {err.strerror or err}") from None
    if classes:
        if metadata.labels and all(c in metadata.labels for c in classes):
            index = {c: metadata.labels.index(c) for c in classes}
        else:
            index = {c: i for i, c in enumerate(classes)}
        ordered = _round_robin([(index[c], _image_files(directory / c)) for c in classes])
    else:
        ordered = [(-1, path) for path in _image_files(directory)]
    if not ordered:
        raise CalibrationError(f"calibration folder {directory} contains no images")
    calib_files = ordered[:n]
    held_files = ordered[n : n + holdout]
    notes = []
    if not held_files:
        # A folder too small to split: evaluate on the calibration images themselves, and say so.
        held_files = calib_files[:holdout]
        notes.append(f"{directory} has only {len(ordered)} images: the accuracy check reuses calibration images")
    # Validate the first image up front so a wrong data set fails before any quantization work.
    _open_checked(calib_files[0][1], metadata)

    def batches(batch_size: int) -> Iterator[np.ndarray]:
        for start in range(0, len(calib_files), batch_size):
            chunk = calib_files[start : start + batch_size]
            yield preprocess_images([_open_checked(path, metadata) for _, path in chunk], metadata)

    held = preprocess_images([_open_checked(path, metadata) for _, path in held_files], metadata)
    labels = np.asarray([label for label, _ in held_files], dtype=np.int64) if classes else None
    return CalibrationData(
        f"{directory} ({len(calib_files)} images)",
        len(calib_files),
        held,
        labels,
        f"{directory} (disjoint slice of {len(held_files)} images)" if not notes else f"{directory} (reused)",
        batches,
        notes,
    )


def _open_checked(path: Path, metadata: ModelMetadata) -> Image.Image:
    """Decode one calibration image, refusing unreadable files and images of the wrong mode or size."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as probe:
            mode, (width, height) = probe.mode, probe.size
            if mode not in ACCEPTED_MODES:
                raise CalibrationError(
                    f"calibration image {path} has mode {mode}; expected 8-bit greyscale or colour (L, RGB, ...)"
                )
            model_h, model_w = metadata.image_size
            if min(width, height) < min(model_h, model_w) * MIN_SIDE_FRACTION:
                raise CalibrationError(
                    f"calibration image {path} is {width}x{height}, far smaller than the model's "
                    f"{model_w}x{model_h} input: wrong data set?"
                )
            probe.load()
            return probe.convert("RGB")
    except CalibrationError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        reason = getattr(err, "strerror", None) or " ".join(str(err).split())[:120]
        raise CalibrationError(f"calibration image {path} is unreadable ({reason})") from None
