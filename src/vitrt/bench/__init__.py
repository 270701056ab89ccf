"""`vitrt bench`: every backend x precision x batch x resolution of a model, measured side by side, each row
with its parity against PyTorch fp32, plots of cost against resolution, and a recommendation.

>>> from vitrt.bench import run_bench
>>> result = run_bench("agent_digits", backends="torch,onnxruntime", batch="1,8", inputs="demo-digits", out="out")
>>> result.recommendation["throughput"]["command"]
"""

from vitrt.bench.grid import PRECISIONS, BenchInputError, Config, known_backends
from vitrt.bench.report import SCHEMA, BenchResult, Row, load_result
from vitrt.bench.runner import run_bench

__all__ = [
    "PRECISIONS",
    "SCHEMA",
    "BenchInputError",
    "BenchResult",
    "Config",
    "Row",
    "known_backends",
    "load_result",
    "run_bench",
]
