"""Every `vitrt` node is checked against its op contract when an artifact is loaded, built or served."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

from vitrt.cli import main
from vitrt.ops.validate import NodeSpecError, check_vitrt_nodes

pytest.importorskip("vitrt.export", reason="needs the export extra")
SRC = Path(__file__).resolve().parents[2] / "src"
NODE = "/layers.0/blocks.0/attn/VitrtAgentAttention"


@pytest.fixture(scope="module")
def demo_onnx(tmp_path_factory) -> Path:
    from vitrt.export import export_zoo_model

    path = tmp_path_factory.mktemp("validate") / "agent_digits.onnx"
    export_zoo_model("agent_digits", path)
    return path


def _edited(source: Path, target: Path, edit) -> Path:
    model = onnx.load(source)
    node = next(n for n in model.graph.node if n.name == NODE)
    edit(node)
    onnx.save(model, target)
    return target


def _set(name: str, value):
    def edit(node):
        for attr in node.attribute:
            if attr.name == name:
                if attr.type == onnx.AttributeProto.INT:
                    attr.i = value
                else:
                    attr.f = value

    return edit


def test_a_faithful_export_passes(demo_onnx):
    assert check_vitrt_nodes(onnx.load(demo_onnx), demo_onnx) == 3


def test_changed_num_heads_is_named_on_load(demo_onnx, tmp_path):
    from vitrt.engines import load

    broken = _edited(demo_onnx, tmp_path / "heads.onnx", _set("num_heads", 5))
    with pytest.raises(NodeSpecError) as info:
        load(broken, backend="onnxruntime")
    message = str(info.value)
    assert NODE in message and "num_heads=5" in message and "ShapeInferenceError" not in message


def test_out_of_range_attribute_is_named(demo_onnx, tmp_path):
    broken = _edited(demo_onnx, tmp_path / "scale.onnx", _set("scale", -1.0))
    with pytest.raises(NodeSpecError, match=r"attribute scale=-1.0 is below its minimum"):
        check_vitrt_nodes(onnx.load(broken), broken)


def test_build_dry_run_refuses_a_node_without_attributes(demo_onnx, tmp_path, capsys):
    broken = _edited(demo_onnx, tmp_path / "bare.onnx", lambda node: node.ClearField("attribute"))
    with pytest.raises(SystemExit) as exit_info:
        main(["build", str(broken), "--dry-run"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: ") and NODE in last and "missing required attribute 'num_heads'" in last


def test_serve_refuses_a_broken_node_in_one_line(demo_onnx, tmp_path):
    broken = _edited(demo_onnx, tmp_path / "served.onnx", _set("num_heads", 5))
    result = subprocess.run(
        [sys.executable, "-m", "vitrt", "serve", str(broken), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(SRC)},
    )
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and NODE in last and "num_heads" in last
