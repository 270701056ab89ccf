"""ONNX Runtime static QDQ (the CPU default) and its TensorRT explicit-quantization variant.

Both use `onnxruntime.quantization.quantize_static` (MinMax calibration, QDQ format) on the linear layers only
(MatMul/Gemm/Conv with constant weights, named explicitly; softmax attention's activation matmuls stay float):
per-channel INT8 weights, per-tensor INT8 activations. MinMax reduces each calibrated tensor to its min and max
inside the calibration graph, so memory does not grow with the number of images. vitrt attention nodes are not
quantizable op types; after quantization any attention input that a shared Q/DQ pair would feed is rewired to the
float tensor (`graph.keep_vitrt_inputs_float`).

The TensorRT flavour differs where TensorRT's explicit quantization needs it: symmetric activations (zero point
0), no bias quantization (TensorRT fuses the float bias into the INT8 GEMM), Q/DQ only on the inputs of weighted
ops (TensorRT fuses DQ -> MatMul/Conv -> and propagates the following Q). TensorRT's parser then imports the file
with the vitrt plugins for the attention nodes, whose I/O stays FP16/FP32.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vitrt.quantize.base import Target, Tick, counted, require, set_onnx_record
from vitrt.quantize.graph import WEIGHTED_OPS, keep_vitrt_inputs_float, quantizable_nodes

if TYPE_CHECKING:
    import onnx

    from vitrt.quantize.calibration import CalibrationData

CALIBRATION_BATCH = 16


class OnnxRuntimeTarget(Target):
    name = "onnxruntime"
    suffix = ".onnx"
    library = "onnxruntime.quantization"
    method = "static QDQ (quantize_static, MinMax), per-channel INT8 weights, per-tensor INT8 activations"
    symmetric_activations = False
    extra: dict[str, Any] = {}

    def check_available(self) -> None:
        require("onnxruntime.quantization", "onnxruntime", "onnxruntime")

    def quantize(
        self, model: onnx.ModelProto, source: Path, out: Path, data: CalibrationData, exclude: set[str], tick: Tick
    ) -> None:
        import onnx
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

        input_name = model.graph.input[0].name
        # Only the linear layers (constant weights): op_types_to_quantize alone would also take the
        # activation-by-activation MatMuls of softmax attention (Q @ K^T, P @ V) and weights computed at run time.
        chosen = [node.name for node in quantizable_nodes(model) if node.name not in exclude]
        if not chosen:  # everything kept float (the end of a sensitivity search): the float graph itself
            onnx.save(model, str(out))
            return

        class Reader(CalibrationDataReader):  # type: ignore[misc]
            def __init__(self) -> None:
                self.batches = counted(data.batches(CALIBRATION_BATCH), tick)

            def get_next(self) -> dict[str, np.ndarray] | None:
                batch = next(self.batches, None)
                return None if batch is None else {input_name: batch}

        options = {
            "ActivationSymmetric": self.symmetric_activations,
            "WeightSymmetric": True,
            **self.extra,
        }
        with tempfile.TemporaryDirectory(prefix="vitrt-ortq-") as tmp:
            raw = Path(tmp) / "qdq.onnx"
            quantize_static(
                str(source),
                str(raw),
                Reader(),
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                per_channel=True,
                op_types_to_quantize=list(WEIGHTED_OPS),
                nodes_to_quantize=chosen,
                nodes_to_exclude=sorted(exclude),
                extra_options=options,
            )
            quantized = onnx.load(str(raw))
            keep_vitrt_inputs_float(quantized)
            # quantize_static keeps metadata_props; keep the source's doc string and producer too.
            quantized.doc_string = model.doc_string
            onnx.save(quantized, str(out))

    def runner(self, path: Path) -> Callable[[np.ndarray], np.ndarray]:
        from vitrt.engines.onnxruntime import OnnxRuntimeBackend

        backend = OnnxRuntimeBackend(path)
        return backend.infer

    def record(self, path: Path, info: dict[str, Any]) -> None:
        import onnx

        model = onnx.load(str(path))
        set_onnx_record(model, info)
        tmp = path.with_name(path.name + ".tmp")
        onnx.save(model, str(tmp))
        shutil.move(tmp, path)


class TensorRTTarget(OnnxRuntimeTarget):
    name = "tensorrt"
    library = "onnxruntime.quantization (TensorRT explicit-quantization settings)"
    method = (
        "explicit-quantization QDQ (quantize_static, MinMax), per-channel symmetric INT8 weights, per-tensor "
        "symmetric INT8 activations, float bias"
    )
    symmetric_activations = True
    extra = {
        "QuantizeBias": False,
        "OpTypesToExcludeOutputQuantization": list(WEIGHTED_OPS),
        "DedicatedQDQPair": False,
    }
