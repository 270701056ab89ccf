"""Parity between a PyTorch model and its deployed artifacts (`vitrt parity`).

>>> from vitrt.parity import run_parity
>>> report = run_parity("agent_digits", "agent_digits.onnx", inputs="demo-digits", report="out/agent")
>>> report.passed, report.comparisons[0].max_abs
"""

from vitrt.parity.blocks import BlockComparison, PerBlockReport, find_blocks
from vitrt.parity.budgets import DEFAULT_BUDGETS, MODEL_BUDGETS, Budget, budget_for, default_budget
from vitrt.parity.metrics import OutputComparison
from vitrt.parity.report import BackendSummary, ParityReport
from vitrt.parity.runner import run_parity

__all__ = [
    "DEFAULT_BUDGETS",
    "MODEL_BUDGETS",
    "BackendSummary",
    "BlockComparison",
    "Budget",
    "OutputComparison",
    "ParityReport",
    "PerBlockReport",
    "budget_for",
    "default_budget",
    "find_blocks",
    "run_parity",
]
