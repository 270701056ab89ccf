"""The generated creator field header against the YAML contracts, and the plugin sources against the header."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml
from host_build import spec_generator

from vitrt.ops.spec import load_op_specs
from vitrt.plugins.paths import default_build_dir, source_dir

SOURCE = source_dir()


def _parse(header: str) -> dict[str, dict]:
    """Op namespace -> name/version/namespace/inputs/enum/fields, read back from the generated C++."""
    ops = {}
    for block in re.finditer(r"// \w+: (\w+)/\1\.yaml\nnamespace \1\n\{\n(.*?)\n\} // namespace \1", header, re.S):
        body = block.group(2)
        fields = []
        for row in re.finditer(
            r'\{"(\w+)", FieldType::(kInt|kFloat), (true|false), ([-\d.e+]+), (true|false), ([-\d.e+]+), '
            r"(true|false), ([-\d.e+]+), (\d+), \{([\d, -]*)\}\}",
            body,
        ):
            name, kind, req, default, has_min, lo, has_max, hi, count, options = row.groups()
            fields.append(
                {
                    "name": name,
                    "type": "int" if kind == "kInt" else "float",
                    "required": req == "true",
                    "default": float(default),
                    "min": float(lo) if has_min == "true" else None,
                    "max": float(hi) if has_max == "true" else None,
                    "options": tuple(int(o) for o in options.split(",") if o.strip()) or None,
                    "count": int(count),
                }
            )
        enum = re.search(r"enum Field : int32_t\n\{\n(.*?)\n\};", body, re.S).group(1)
        ops[block.group(1)] = {
            "name": re.search(r'kName\[\] = "(\w+)"', body).group(1),
            "version": re.search(r'kVersion\[\] = "(\w+)"', body).group(1),
            "namespace": re.search(r'kNamespace\[\] = "(\w+)"', body).group(1),
            "inputs": re.findall(r'"(\w+)"', re.search(r"kInputs\[\] = \{(.*?)\};", body).group(1)),
            "enum": re.findall(r"(k\w+) = (\d+)", enum),
            "fields": fields,
        }
    return ops


def test_generated_header_matches_every_contract():
    generated = _parse(spec_generator(SOURCE).render(SOURCE))
    specs = load_op_specs()
    assert {op["name"] for op in generated.values()} == set(specs)
    for directory, op in generated.items():
        spec = specs[op["name"]]
        assert spec.directory == directory
        assert (op["version"], op["namespace"]) == (spec.plugin_version, spec.plugin_namespace)
        assert op["inputs"] == spec.input_names
        assert [f["name"] for f in op["fields"]] == spec.attribute_names
        for field, attr in zip(op["fields"], spec.attributes, strict=True):
            assert field["type"] == attr.type
            assert field["required"] == attr.required
            assert field["min"] == attr.min and field["max"] == attr.max
            assert field["options"] == attr.options
            assert field["count"] == len(attr.options or ())
            if not attr.required:
                assert field["default"] == float(attr.default)
        names = [name for name, _ in op["enum"]]
        assert names[-1] == "kNumFields" and int(op["enum"][-1][1]) == len(spec.attributes)
        assert names[:-1] == ["k" + "".join(p.capitalize() for p in a.split("_")) for a in spec.attribute_names]


def test_plugin_sources_use_every_field_and_register_their_creator():
    generated = _parse(spec_generator(SOURCE).render(SOURCE))
    for directory, op in generated.items():
        source = (SOURCE / directory / f"{directory}_plugin.cpp").read_text()
        assert f"namespace op = spec::{directory};" in source
        for enum_name, _ in op["enum"][:-1]:
            assert f"op::{enum_name}" in source, f"{directory}_plugin.cpp never reads {enum_name}"
        # The creator is registered with this op's spec.
        assert re.search(r"VITRT_REGISTER_TENSORRT_PLUGIN\(\w+Plugin, op::kSpec\);", source)


def test_built_header_is_current(kernel_build):
    built = kernel_build / "generated" / "vitrt_op_specs.h"
    assert built.read_text() == spec_generator(SOURCE).render(SOURCE)


def test_generator_rejects_attributes_without_a_field_type(tmp_path):
    op = tmp_path / "circulant_attention"
    shutil.copytree(SOURCE / "circulant_attention", op)
    raw = yaml.safe_load((op / "circulant_attention.yaml").read_text())
    raw["attributes"]["mode"] = {"type": "string", "required": False, "default": "a"}
    (op / "circulant_attention.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ValueError, match="only int and float map to fields"):
        spec_generator(SOURCE).render(tmp_path)


def test_default_build_dir_is_inside_the_checkout(monkeypatch):
    monkeypatch.delenv("VITRT_PLUGIN_DIR", raising=False)
    assert default_build_dir() == Path(SOURCE).parent / "build" / "plugins"
