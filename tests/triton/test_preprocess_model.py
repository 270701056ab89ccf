"""The Python-backend preprocessing model gives exactly what vitrt.preprocess gives."""

from __future__ import annotations

import io
import json
import sys
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vitrt.metadata import ModelMetadata
from vitrt.preprocess import decode_image, preprocess_images
from vitrt.triton import RepositoryOptions, build_repository
from vitrt.triton.preprocess_model import PreprocessError, TritonPythonModel, parse_settings, preprocess_one


def _encoded(width: int, height: int, fmt: str, seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).convert("L" if fmt == "PNG-L" else "RGB").save(buffer, format=fmt.split("-")[0])
    return buffer.getvalue()


@pytest.mark.parametrize(("crop_pct", "interpolation"), [(0.875, "bicubic"), (1.0, "bilinear"), (0.9, "nearest")])
def test_matches_vitrt_preprocess(
    digits_metadata: Callable[..., ModelMetadata], crop_pct: float, interpolation: str
) -> None:
    metadata = digits_metadata(size=24, crop_pct=crop_pct, interpolation=interpolation)
    settings = {
        "size": metadata.image_size,
        "crop_pct": crop_pct,
        "interpolation": interpolation,
        "mean": list(metadata.mean),
        "std": list(metadata.std),
        "max_pixels": 40_000_000,
    }
    for index, (width, height, fmt) in enumerate([(40, 30, "PNG"), (17, 50, "JPEG"), (24, 24, "PNG-L")]):
        data = _encoded(width, height, fmt, index)
        expected = preprocess_images([decode_image(data)], metadata)[0]
        np.testing.assert_array_equal(preprocess_one(data, settings), expected)
    with pytest.raises(PreprocessError, match="not a readable image"):
        preprocess_one(b"GIF89a truncated", settings)


def test_execute_with_the_written_config(
    tmp_path: Path,
    write_engine: Callable,
    digits_metadata: Callable[..., ModelMetadata],
    parse_config: Callable,
    monkeypatch: pytest.MonkeyPatch,
    stand_in_pb_utils: types.ModuleType,
) -> None:
    from google.protobuf import json_format

    metadata = digits_metadata()
    manifest = write_engine(metadata=metadata, ngc_release="25.01", dtype="float16")
    build_repository([manifest], tmp_path / "repo", RepositoryOptions(with_preprocessing=True))
    config_path = tmp_path / "repo" / "tiny_digits_preprocess" / "config.pbtxt"
    # Triton hands the model its config as JSON in protobuf's JSON mapping.
    config = json_format.MessageToDict(parse_config(config_path), preserving_proto_field_name=True)
    assert parse_settings(config)["size"] == (32, 32)

    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", stand_in_pb_utils)
    model = TritonPythonModel()
    model.initialize({"model_config": json.dumps(config)})
    images = [_encoded(45, 38, "PNG", 1), _encoded(32, 32, "JPEG", 2)]
    good = {"IMAGE": np.array([[images[0]], [images[1]]], dtype=object)}
    bad = {"IMAGE": np.array([[b"not an image"]], dtype=object)}
    first, second = model.execute([good, bad])
    pixels = first.output_tensors[0].array
    assert first.output_tensors[0].name == "PIXELS" and pixels.dtype == np.float16 and pixels.shape == (2, 3, 32, 32)
    expected = preprocess_images([decode_image(data) for data in images], metadata).astype(np.float16)
    np.testing.assert_array_equal(pixels, expected)
    assert second.output_tensors == [] and "not a readable image" in second.error
