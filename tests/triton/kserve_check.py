"""Check KServe manifests field by field against the kserve SDK: `python kserve_check.py FILE.yaml ...`.

The SDK's model classes (`kserve.models`, and the Kubernetes ones they refer to) name every field a resource may
have and its type; each manifest is rebuilt from them, so an unknown or misspelt field, a wrong type or a missing
required field is reported (exit status 1, one line per file on stderr). Run in its own process by
test_kserve.py: kserve's gRPC modules cannot share a process with tritonclient's.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import kserve.models as kserve_models
import kubernetes.client.models as kubernetes_models
import yaml

_LIST = re.compile(r"^[Ll]ist\[(.+)\]$")
_DICT = re.compile(r"^(?:dict\(str, (.+)\)|Dict\[str, (.+)\])$")
_PRIMITIVES: dict[str, tuple[type, ...]] = {"str": (str,), "int": (int,), "bool": (bool,), "float": (int, float)}


def build(data: Any, type_name: str, where: str = "") -> Any:
    """`data` as an instance of the SDK type `type_name`; AssertionError naming the field that does not fit."""
    if type_name == "object":  # int-or-string fields such as a probe's port
        return data
    if match := _LIST.match(type_name):
        assert isinstance(data, list), f"{where}: expected a list, got {data!r}"
        return [build(item, match.group(1), f"{where}[{i}]") for i, item in enumerate(data)]
    if match := _DICT.match(type_name):
        assert isinstance(data, dict), f"{where}: expected a mapping, got {data!r}"
        value_type = match.group(1) or match.group(2)
        return {key: build(value, value_type, f"{where}.{key}") for key, value in data.items()}
    if type_name in _PRIMITIVES:
        assert isinstance(data, _PRIMITIVES[type_name]), f"{where}: expected {type_name}, got {data!r}"
        return data
    klass = getattr(kserve_models, type_name, None) or getattr(kubernetes_models, type_name)
    assert isinstance(data, dict), f"{where}: expected a {type_name} mapping, got {data!r}"
    by_key = {key: attr for attr, key in klass.attribute_map.items()}
    unknown = sorted(set(data) - set(by_key))
    assert not unknown, f"{where or type_name}: {type_name} has no field(s) {unknown}"
    kwargs = {
        by_key[key]: build(value, klass.openapi_types[by_key[key]], f"{where}.{key}") for key, value in data.items()
    }
    return klass(**kwargs)  # the SDK's own checks: required fields, enumerations


def main(paths: list[str]) -> int:
    failed = 0
    for path in paths:
        try:
            build(yaml.safe_load(Path(path).read_text(encoding="utf-8")), "V1beta1InferenceService", Path(path).name)
        except (AssertionError, ValueError, TypeError) as err:
            print(f"{path}: {err}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
