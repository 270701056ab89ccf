"""The trained Swin-backbone and MLLA demo models: shipped weights and dynamic-batch export tracing."""

from __future__ import annotations

import json

import pytest
import torch

from vitrt.data.digits import LABELS, digits_batch
from vitrt.models import create_model, demo_weights_path, get_spec

DEMOS = ["agent_digits"]


@pytest.mark.parametrize("name", DEMOS)
def test_shipped_weights_reach_the_recorded_accuracy(name):
    spec = get_spec(name)
    assert spec.labels == LABELS and spec.crop_pct == 1.0 and spec.default_img_size == 32
    model = create_model(name)  # trained weights by default
    record = json.loads(demo_weights_path(spec).with_suffix(".json").read_text())
    x, y = (torch.from_numpy(a) for a in digits_batch(model.vitrt_metadata, "test"))
    with torch.no_grad():
        accuracy = float((model(x).argmax(dim=1) == y).float().mean())
    assert record["model"] == name and record["test_size"] == len(y)
    assert abs(accuracy - record["test_accuracy"]) <= 0.005
    assert accuracy >= 0.95


@pytest.mark.parametrize("name", DEMOS)
def test_export_trace_keeps_the_batch_dynamic(name):
    """torch.export with a symbolic batch: the traced graph must be right for batch sizes other than the example's."""
    model = create_model(name)
    x, _ = digits_batch(model.vitrt_metadata, "test", limit=5)
    x = torch.from_numpy(x)
    batch = torch.export.Dim("batch", min=1, max=64)
    program = torch.export.export(model, (x[:2],), dynamic_shapes=({0: batch},), strict=False)
    traced = program.module()
    with torch.no_grad():
        for size in (1, 5):
            torch.testing.assert_close(traced(x[:size]), model(x[:size]), atol=1e-5, rtol=0)
