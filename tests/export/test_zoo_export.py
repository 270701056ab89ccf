"""Every zoo model exports, validates and keeps one vitrt node per attention op; the trained demo models keep their
held-out digits accuracy in ONNX Runtime.

Parametrised over `vitrt.models.list_models()`, so models are picked up as they are registered. `_t` variants and
the `*_digits` demo models run in the default suite, larger variants carry `slow`. Each model is exported once per
session (portable, with tensorrt and inlined derived from the same trace) and the tests share that export.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
from export_toys import FLAVOURS, assert_flavour_structure, count_op_calls

from vitrt.export import export_flavours
from vitrt.export.zoo import resolve_model
from vitrt.models import list_models

DEMO_MODELS = list_models(with_weights=True)


def _default_suite(name: str) -> bool:
    return name.endswith("_t") or name in DEMO_MODELS


ZOO = [pytest.param(name, marks=() if _default_suite(name) else pytest.mark.slow) for name in list_models()]


@pytest.fixture(scope="session")
def zoo_export(tmp_path_factory):
    cache: dict[str, tuple] = {}

    def get(name: str):
        if name not in cache:
            torch.manual_seed(0)
            model, notes = resolve_model(name)
            out = tmp_path_factory.mktemp(name)
            files = {flavour: out / f"{name}.{flavour}.onnx" for flavour in FLAVOURS}
            cache[name] = (model, files, export_flavours(model, files), notes)
        return cache[name]

    return get


@pytest.mark.parametrize("name", ZOO)
def test_zoo_model_exports_and_validates_at_batch_1_and_8(name, zoo_export):
    _, _, reports, notes = zoo_export(name)
    for flavour in ("portable", "inlined"):
        validation = reports[flavour].validation
        assert validation.passed, validation.table()
        assert sorted({c.batch for c in validation.comparisons}) == [1, 8]
        assert all(c.max_abs <= 1e-4 for c in validation.comparisons), validation.table()
    assert (name in DEMO_MODELS) != any("RANDOM weights" in note for note in notes)


@pytest.mark.parametrize("name", ZOO)
def test_every_attention_op_is_one_vitrt_node_with_a_body(name, zoo_export):
    model, files, reports, _ = zoo_export(name)
    x = torch.randn((1, *model.vitrt_metadata.input_size), generator=torch.Generator().manual_seed(0))
    expected = count_op_calls(model, x)
    assert expected, f"{name} calls no vitrt op"
    assert reports["portable"].op_counts == expected
    assert_flavour_structure(files, expected)


@pytest.mark.parametrize("name", DEMO_MODELS)
def test_demo_model_digits_accuracy_is_the_same_in_onnx_runtime(name, zoo_export):
    from vitrt.data.digits import digits_batch

    model, files, _, _ = zoo_export(name)
    images, labels = digits_batch(model.vitrt_metadata, "test")
    with torch.no_grad():
        torch_pred = np.concatenate([model(torch.from_numpy(c)).argmax(1).numpy() for c in np.array_split(images, 8)])
    for flavour in ("portable", "inlined"):
        session = ort.InferenceSession(str(files[flavour]), providers=["CPUExecutionProvider"])
        input_name = session.get_inputs()[0].name
        ort_pred = np.concatenate([session.run(None, {input_name: c})[0].argmax(1) for c in np.array_split(images, 8)])
        assert (ort_pred == labels).mean() == (torch_pred == labels).mean()
        assert (ort_pred == torch_pred).all()
    assert (torch_pred == labels).mean() > 0.5  # the trained weights, not a random init


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in list_models() if _default_suite(n)])
def test_zoo_model_exports_with_the_dynamo_exporter(name, tmp_path):
    torch.manual_seed(0)
    model, _ = resolve_model(name)
    files = {"portable": tmp_path / "p.onnx", "inlined": tmp_path / "i.onnx"}
    reports = export_flavours(model, files, exporter="dynamo")
    assert all(r.validation.passed for r in reports.values())
    x = torch.randn((1, *model.vitrt_metadata.input_size), generator=torch.Generator().manual_seed(0))
    assert reports["portable"].op_counts == count_op_calls(model, x)
