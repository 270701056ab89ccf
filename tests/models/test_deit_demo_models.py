"""The trained DeiT-backbone demo models (`ca_digits`, `inline_digits`) shipped with the package."""

from __future__ import annotations

import json

import pytest
import torch

from vitrt.data.digits import LABELS, digits_batch
from vitrt.models import create_model, demo_weights_path, get_spec

DEMOS = ["ca_digits", "inline_digits"]


@pytest.mark.parametrize("name", DEMOS)
def test_shipped_weights_reach_the_recorded_accuracy(name):
    spec = get_spec(name)
    record = json.loads(demo_weights_path(spec).with_suffix(".json").read_text())
    model = create_model(name)  # the shipped weights load by default
    assert model.vitrt_metadata.labels == list(LABELS)
    x, y = digits_batch(model.vitrt_metadata, "test")
    with torch.no_grad():
        predictions = model(torch.from_numpy(x)).argmax(dim=1).numpy()
    accuracy = float((predictions == y).mean())
    assert record["test_size"] == len(y)
    assert record["test_accuracy"] >= 0.90
    assert abs(accuracy - record["test_accuracy"]) <= 0.005


@pytest.mark.parametrize("name", DEMOS)
def test_demo_model_exports_with_a_dynamic_batch(name):
    model = create_model(name)
    size = get_spec(name).default_img_size
    batch = torch.export.Dim("batch", min=1, max=64)
    program = torch.export.export(model, (torch.randn(2, 3, size, size),), dynamic_shapes=({0: batch},), strict=False)
    x = torch.randn(5, 3, size, size)
    with torch.no_grad():
        torch.testing.assert_close(program.module()(x), model(x), atol=1e-5, rtol=0)
