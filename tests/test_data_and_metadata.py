"""Demo digits data, shared preprocessing and the metadata round trip."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from vitrt.data.digits import digit_to_pil, digits_batch, load_digits_split
from vitrt.metadata import ModelMetadata
from vitrt.preprocess import ImageDecodeError, decode_image, preprocess_images


def test_digits_split_is_fixed_disjoint_and_stratified():
    train_x, train_y = load_digits_split("train")
    test_x, test_y = load_digits_split("test")
    assert len(train_x) + len(test_x) == 1797
    assert set(np.unique(test_y)) == set(range(10))
    again_x, _ = load_digits_split("test")
    assert np.array_equal(test_x, again_x)
    assert test_x.dtype == np.uint8 and test_x.max() == 255


def test_png_of_a_digit_preprocesses_exactly_like_the_dataset():
    meta = ModelMetadata(model="m", family="ca", input_size=(3, 32, 32), mean=(0.5,) * 3, std=(0.5,) * 3, crop_pct=1.0)
    batch, _ = digits_batch(meta, "test", limit=3)
    images, _ = load_digits_split("test")
    buffer = io.BytesIO()
    digit_to_pil(images[1]).save(buffer, format="PNG")
    decoded = decode_image(buffer.getvalue())
    np.testing.assert_array_equal(preprocess_images([decoded], meta)[0], batch[1])
    assert batch.shape == (3, 3, 32, 32) and batch.dtype == np.float32


def test_official_eval_crop_is_a_square_warp_then_centre_crop():
    meta = ModelMetadata(model="m", family="ca", input_size=(3, 224, 224), crop_pct=0.875)
    image = Image.new("RGB", (640, 480), (255, 0, 0))
    out = preprocess_images([image], meta)
    assert out.shape == (1, 3, 224, 224)
    np.testing.assert_allclose(out[0, 0], (1.0 - 0.485) / 0.229, rtol=1e-5)


@pytest.mark.parametrize("payload", [b"", b"not an image", b"\x89PNG\r\n\x1a\n" + b"\x00" * 20])
def test_corrupt_images_are_rejected(payload):
    with pytest.raises(ImageDecodeError):
        decode_image(payload)


def test_oversized_images_are_rejected():
    buffer = io.BytesIO()
    Image.new("L", (300, 300)).save(buffer, format="PNG")
    with pytest.raises(ImageDecodeError, match="exceeds"):
        decode_image(buffer.getvalue(), max_pixels=10_000)


def test_metadata_round_trips_through_onnx_props():
    meta = ModelMetadata(
        model="agent_digits",
        family="agent",
        input_size=(3, 32, 32),
        labels=list("0123456789"),
        op_versions={"VitrtAgentAttention": "1"},
        flavour="portable",
        opset=18,
    )
    props = meta.to_props()
    assert all(k.startswith("vitrt.") and isinstance(v, str) for k, v in props.items())
    assert ModelMetadata.from_props({**props, "other": "x", "vitrt.future_field": "1"}) == meta
