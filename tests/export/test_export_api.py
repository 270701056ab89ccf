"""`vitrt.export.export_model` on small modules calling `vitrt.ops`: structure of every flavour, validation, errors."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from export_toys import (
    OP_DIRS,
    OpBlock,
    TinyStack,
    assert_flavour_structure,
    frozen_batch_module,
    run_file,
    vitrt_nodes,
)

from vitrt.errors import ExportError, ValidationError
from vitrt.export import export_flavours, export_model
from vitrt.metadata import ModelMetadata
from vitrt.ops.spec import load_op_specs, op_spec

ALL_FLAVOURS = ("portable", "tensorrt", "inlined")


@pytest.fixture(scope="module")
def stack_export(tmp_path_factory):
    """TinyStack (all five ops, cls-token Agent/InLine) exported once with the default (TorchScript) exporter."""
    torch.manual_seed(0)
    model = TinyStack()
    out = tmp_path_factory.mktemp("stack")
    files = {flavour: out / f"stack_{flavour}.onnx" for flavour in ALL_FLAVOURS}
    reports = export_flavours(model, files, input_size=(3, 56, 56))
    return model, files, reports


def test_stack_exports_one_node_per_op_in_every_flavour(stack_export):
    _, files, reports = stack_export
    ops = {spec.name: 1 for spec in load_op_specs().values()}
    assert_flavour_structure(files, ops)
    assert reports["portable"].op_counts == ops and reports["tensorrt"].op_counts == ops
    assert reports["inlined"].op_counts == {}
    assert reports["portable"].exporter == "torchscript"


def test_stack_validation_covers_two_batch_sizes_and_files_run_from_disk(stack_export):
    model, files, reports = stack_export
    for flavour in ("portable", "inlined"):
        validation = reports[flavour].validation
        assert validation.passed and [c.batch for c in validation.comparisons] == [1, 8]
        assert max(c.max_abs for c in validation.comparisons) <= 1e-5
        assert "onnx.checker full check" in validation.checks
    assert "tensorrt flavour" in reports["tensorrt"].validation.note
    x = torch.randn(5, 3, 56, 56, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        expected = model(x).numpy()
    for flavour in ("portable", "inlined"):
        (got,) = run_file(files[flavour], x.numpy())
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-4)


def test_stack_metadata_and_dynamic_batch_axis(stack_export):
    _, files, reports = stack_export
    model = onnx.load(files["tensorrt"])
    props = {p.key: p.value for p in model.metadata_props}
    meta = ModelMetadata.from_props(props)
    assert meta.flavour == "tensorrt" and meta.opset == 18 and meta.batch == "dynamic"
    assert meta.input_size == (3, 56, 56) and meta.input_name == "input" and meta.output_name == "logits"
    assert meta.op_versions == {spec.name: "1" for spec in load_op_specs().values()}
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert model.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    report = reports["portable"].to_dict()
    assert json.loads(json.dumps(report))["validation"]["passed"] is True
    assert {"trace", "postprocess", "validate", "total"} <= set(report["timings"])


OP_CASES = [
    ("circulant_attention", "deit_t_224"),
    ("focused_linear_attention", "odd_13x17"),
    ("agent_attention", "deit_t_cls"),
    ("agent_attention", "odd_13x17"),
    ("inline_attention", "deit_t_cls"),
    ("inline_attention", "odd_13x17"),
    ("mlla_linear_attention", "odd_13x17"),
]


@pytest.mark.parametrize(("op", "config_name"), OP_CASES, ids=[f"{o}-{c}" for o, c in OP_CASES])
def test_single_op_modules_export_within_the_op_budget(op, config_name, tmp_path):
    spec = op_spec(op)
    config = next(c for c in spec.test_configs if c["name"] == config_name)
    torch.manual_seed(0)
    module = OpBlock(
        op,
        config["H"],
        config["W"],
        config["C"],
        config.get("attrs"),
        prefix=config.get("prefix", 0),
        agents=config.get("a", 49),
    )
    files = {flavour: tmp_path / f"{flavour}.onnx" for flavour in ALL_FLAVOURS}
    atol, _ = spec.tolerance("float32")
    reports = export_flavours(module, files, input_size=(config["C"], config["H"], config["W"]), budget=atol, opset=17)
    assert_flavour_structure(files, {spec.name: 1})
    assert all(r.validation.passed for r in reports.values())
    assert onnx.load(files["portable"]).opset_import[0].version == 17


def test_dynamo_exporter_at_opset_23_keeps_single_nodes_and_bodies(tmp_path):
    """The dynamo exporter's optimizer inlines functions: vitrt emits bare nodes and attaches bodies afterwards."""
    torch.manual_seed(0)
    files = {flavour: tmp_path / f"{flavour}.onnx" for flavour in ALL_FLAVOURS}
    reports = export_flavours(TinyStack(), files, input_size=(3, 56, 56), opset=23)
    assert reports["portable"].exporter == "dynamo"
    assert_flavour_structure(files, {spec.name: 1 for spec in load_op_specs().values()})
    assert all(r.validation.passed for r in reports.values())
    assert {o.domain: o.version for o in onnx.load(files["portable"]).opset_import}[""] == 23


@pytest.mark.slow
def test_an_opset_the_exporter_cannot_produce_is_an_error(tmp_path):
    """The dynamo exporter builds opset 18 and down-converts; where the converter fails it would keep opset 18."""
    module = OpBlock("inline_attention", 7, 7, 16, {"num_heads": 2}, prefix=1)
    with pytest.raises(ExportError, match="produced opset 18 instead of 17"):
        export_model(module, tmp_path / "m.onnx", input_size=(16, 7, 7), exporter="dynamo", opset=17)


def test_multi_output_wrapper_validates_every_output(tmp_path):
    torch.manual_seed(0)
    names = ["logits", "ca", "flatten", "mlla", "agent", "inline"]
    report = export_model(
        TinyStack(per_block=True),
        tmp_path / "m.onnx",
        input_size=(3, 56, 56),
        output_names=names,
        budget={"logits": 1e-4, "agent": 1e-4},
    )
    assert [o.name for o in onnx.load(tmp_path / "m.onnx").graph.output] == names
    assert sorted({(c.output, c.batch) for c in report.validation.comparisons}) == sorted(
        (n, b) for n in names for b in (1, 8)
    )


def test_no_custom_ops_export_is_plain_onnx_without_dft(tmp_path):
    torch.manual_seed(0)
    model = TinyStack()
    report = export_model(model, tmp_path / "plain.onnx", input_size=(3, 56, 56), custom_ops=False)
    exported = onnx.load(tmp_path / "plain.onnx")
    assert report.flavour == "no-custom-ops" and report.op_counts == {}
    assert vitrt_nodes(exported) == [] and not exported.functions
    assert "DFT" not in {n.op_type for n in exported.graph.node}
    assert report.validation.passed
    with pytest.raises(ExportError, match="no vitrt nodes"):
        export_model(model, tmp_path / "x.onnx", input_size=(3, 56, 56), custom_ops=False, flavour="tensorrt")


def test_fp16_safe_bodies_are_fp32_equivalent(tmp_path, stack_export):
    model, files, _ = stack_export
    report = export_model(model, tmp_path / "safe.onnx", input_size=(3, 56, 56), fp16_safe=True)
    assert report.validation.passed and max(c.max_abs for c in report.validation.comparisons) <= 1e-5
    safe = onnx.load(tmp_path / "safe.onnx")
    body = {f.name: f for f in safe.functions}["VitrtFocusedLinearAttention"]
    assert "ReduceMax" in {n.op_type for n in body.node}
    x = np.random.default_rng(0).standard_normal((3, 3, 56, 56)).astype(np.float32)
    np.testing.assert_allclose(run_file(tmp_path / "safe.onnx", x)[0], run_file(files["portable"], x)[0], atol=1e-5)


def test_fixed_batch_export(tmp_path):
    torch.manual_seed(0)
    report = export_model(
        OpBlock("circulant_attention", 7, 7, 16), tmp_path / "b3.onnx", input_size=(16, 7, 7), batch=3
    )
    model = onnx.load(tmp_path / "b3.onnx")
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 3
    assert [c.batch for c in report.validation.comparisons] == [3]
    assert report.metadata.batch == "3"


def test_frozen_batch_is_caught_and_nothing_is_written(tmp_path):
    target = tmp_path / "frozen.onnx"
    with pytest.raises(ValidationError, match="batch 1"):
        export_model(frozen_batch_module(), target, input_size=(16, 4, 4))
    assert not target.exists()
    assert (tmp_path / "frozen.rejected.onnx").exists()


def test_budget_violation_raises_with_the_table(tmp_path):
    torch.manual_seed(0)
    target = tmp_path / "tight.onnx"
    with pytest.raises(ValidationError) as info:
        export_model(TinyStack(), target, input_size=(3, 56, 56), budget=1e-12)
    message = str(info.value)
    assert "max abs" in message and "FAIL" in message and "budget" in message
    assert not target.exists() and (tmp_path / "tight.rejected.onnx").exists()


def test_skip_validation_writes_without_a_report(tmp_path):
    report = export_model(
        OpBlock("agent_attention", 7, 7, 16, {"num_heads": 2}),
        tmp_path / "s.onnx",
        input_size=(16, 7, 7),
        validate=False,
    )
    assert report.validation is None and (tmp_path / "s.onnx").exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"opset": 16}, "opset 16 is not supported"),
        ({"opset": 24}, "opset 24 is not supported"),
        ({"batch": 0}, "batch must be"),
        ({"batch": "seven"}, "batch must be"),
        ({"flavour": "tflite"}, "unknown flavour"),
        ({"exporter": "jit"}, "unknown exporter"),
        ({"exporter": "torchscript", "opset": 21}, "up to 20"),
        ({"input_size": (3, 0, 7)}, "input_size must be positive"),
        ({"input_size": (16, 9, 9)}, "cannot run on an input of size"),
        ({"output_names": ["a", "b"]}, "output_names must be 1"),
        ({"budget": {"nope": 1.0}}, "unknown outputs"),
        ({"metadata": {"model": "x"}}, "ModelMetadata"),
        ({"validation_batch_sizes": [0]}, "must be positive"),
        ({"batch": 3, "validation_batch_sizes": [4]}, "only be validated at batch 3"),
    ],
)
def test_bad_arguments_raise_one_line_errors(tmp_path, kwargs, message):
    module = OpBlock("circulant_attention", 7, 7, 16)
    kwargs = {"input_size": (16, 7, 7), **kwargs}
    with pytest.raises(ExportError, match=message) as info:
        export_model(module, tmp_path / "m.onnx", **kwargs)
    assert "\n" not in str(info.value)


def test_unwritable_destinations(tmp_path):
    module = OpBlock("circulant_attention", 7, 7, 16)
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(ExportError, match="cannot create the output directory"):
        export_model(module, blocker / "m.onnx", input_size=(16, 7, 7))
    with pytest.raises(ExportError, match="is a directory"):
        export_model(module, tmp_path, input_size=(16, 7, 7))
    with pytest.raises(ExportError, match="input_size is required"):
        export_model(module, tmp_path / "m.onnx")


def test_op_modules_cover_every_op():
    assert set(OP_DIRS) == {spec.directory for spec in load_op_specs().values()}


def test_structure_check_rejects_inconsistent_shapes():
    from onnx import TensorProto, helper

    from vitrt.export.validate import check_structure

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [5, 7])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    with pytest.raises(ValidationError, match="Inferred shape and existing shape differ"):
        check_structure(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]))
