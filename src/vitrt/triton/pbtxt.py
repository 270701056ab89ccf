"""A small writer for protobuf text format, the syntax of Triton's `config.pbtxt`.

Configs are built as plain nested Python values and written here, so vitrt needs neither protobuf nor Triton's
generated `model_config_pb2` at run time (the tests parse every written config with that schema).

* `Mapping` -> a message block, `list` of mappings -> a repeated message, `list` of scalars -> `[a, b]`
* `Enum("TYPE_FP32")` -> a bare enum identifier
* `ProtoMap({...})` -> a protobuf `map<>` field, one `{ key: ... value ... }` block per entry
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class Enum(str):
    """An enum value, written without quotes."""


class ProtoMap(dict):  # type: ignore[type-arg]
    """A protobuf map field (string keys; message or scalar values)."""


def to_pbtxt(message: Mapping[str, Any]) -> str:
    """Render a message as protobuf text format with two-space indentation."""
    lines: list[str] = []
    _message_body(message, 0, lines)
    return "\n".join(lines) + "\n"


def _message_body(message: Mapping[str, Any], depth: int, lines: list[str]) -> None:
    for name, value in message.items():
        if value is None:
            continue
        _field(name, value, depth, lines)


def _field(name: str, value: Any, depth: int, lines: list[str]) -> None:
    pad = "  " * depth
    if isinstance(value, ProtoMap):
        for key, item in value.items():
            lines.append(f"{pad}{name} {{")
            lines.append(f"{pad}  key: {_scalar(key)}")
            if isinstance(item, Mapping):
                lines.append(f"{pad}  value {{")
                _message_body(item, depth + 2, lines)
                lines.append(f"{pad}  }}")
            else:
                lines.append(f"{pad}  value: {_scalar(item)}")
            lines.append(f"{pad}}}")
    elif isinstance(value, Mapping):
        lines.append(f"{pad}{name} {{")
        _message_body(value, depth + 1, lines)
        lines.append(f"{pad}}}")
    elif isinstance(value, list | tuple):
        if not value:
            return
        if all(isinstance(item, Mapping) for item in value):
            lines.append(f"{pad}{name} [")
            for index, item in enumerate(value):
                lines.append(f"{pad}  {{")
                _message_body(item, depth + 2, lines)
                lines.append(f"{pad}  }}" + ("," if index < len(value) - 1 else ""))
            lines.append(f"{pad}]")
        else:
            lines.append(f"{pad}{name}: [ " + ", ".join(_scalar(item) for item in value) + " ]")
    else:
        lines.append(f"{pad}{name}: {_scalar(value)}")


def _scalar(value: Any) -> str:
    if isinstance(value, Enum):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return _quote(value)
    raise TypeError(f"cannot write {type(value).__name__} {value!r} as a protobuf scalar")


def _quote(text: str) -> str:
    out = ['"']
    for char in text:
        if char == '"':
            out.append('\\"')
        elif char == "\\":
            out.append("\\\\")
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\{ord(char):03o}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)
