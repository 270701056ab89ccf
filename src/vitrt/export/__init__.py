"""ONNX export: one portable, validated artifact per model.

    >>> from vitrt.export import export_zoo_model
    >>> report = export_zoo_model("agent_digits", "agent_digits.onnx")     # portable: nodes + bodies, validated
    >>> report.op_counts, report.validation.table()

Each efficient-attention op becomes ONE node in domain `vitrt` (op_type = TensorRT plugin name, attributes
`plugin_namespace`, `plugin_version` and the op's own INT/FLOAT attributes) with a model-local function body made
only of standard ONNX ops, so ONNX Runtime runs the same file that TensorRT parses into the vitrt plugins.
Flavours: `portable` (default), `tensorrt` (bodies stripped), `inlined` (bodies inlined), and the
`custom_ops=False` decomposition. Every export is validated against PyTorch before it is written.

Submodules: `custom_ops` (torch.library ops + exporter hooks), `functions` (the bodies), `graph` (post-processing,
flavours, lint), `validate` (parity), `exporter` (the pipeline), `zoo` (model/checkpoint resolution).
Heavy dependencies (torch, onnx, onnxscript, onnxruntime) load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vitrt.export.exporter import ExportReport, export_flavours, export_model
    from vitrt.export.zoo import export_zoo_model, resolve_model

__all__ = ["FLAVOURS", "ExportReport", "export_flavours", "export_model", "export_zoo_model", "resolve_model"]

FLAVOURS = ("portable", "tensorrt", "inlined")

_LAZY = {
    "ExportReport": "vitrt.export.exporter",
    "export_model": "vitrt.export.exporter",
    "export_flavours": "vitrt.export.exporter",
    "export_zoo_model": "vitrt.export.zoo",
    "resolve_model": "vitrt.export.zoo",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'vitrt.export' has no attribute {name!r}")
