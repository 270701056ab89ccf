"""OpenVINO INT8 through NNCF post-training quantization.

The portable ONNX file is inlined (OpenVINO's ONNX frontend does not read model-local functions), converted with
`openvino.convert_model`, and quantized with `nncf.quantize(model_type=TRANSFORMER)`:

* every node that came from a vitrt attention body is in the ignored scope (the fragile steps stay float);
* SmoothQuant is off: on these Swin/PVT-style models it moves activation outliers into weights and costs accuracy
  (measured here: agent_digits 99.3 % -> 34 % with it, 99.3 % without; NNCF's own table shows Swin-B losing 1.7 pt);
* nodes the user or the sensitivity search keeps float are ignored by name.

The result is saved as OpenVINO IR (`.xml` + `.bin`) with the vitrt export metadata and the quantization record in
its `rt_info` (`vitrt_metadata` / `vitrt_quantization`, JSON strings).
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vitrt.quantize.base import Target, Tick, require

if TYPE_CHECKING:
    import onnx

    from vitrt.quantize.calibration import CalibrationData

METADATA_RT_KEY = "vitrt_metadata"
QUANTIZATION_RT_KEY = "vitrt_quantization"


class OpenVinoTarget(Target):
    name = "openvino"
    suffix = ".xml"
    library = "nncf + openvino"
    method = "NNCF post-training quantization (transformer preset, SmoothQuant off, attention bodies ignored)"

    def check_available(self) -> None:
        require("openvino", "openvino", "openvino")
        require("nncf", "nncf", "nncf")

    def quantize(
        self, model: onnx.ModelProto, source: Path, out: Path, data: CalibrationData, exclude: set[str], tick: Tick
    ) -> None:
        import logging

        import nncf
        import openvino as ov
        from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, AdvancedSmoothQuantParameters

        from vitrt.onnx_passes import inline_functions

        inlined, origin = inline_functions(model)
        converted = ov.convert_model(io.BytesIO(inlined.SerializeToString()))
        calls = sorted(set(origin.values()))
        patterns = [f"^{re.escape(call)}/" for call in calls]
        names = sorted(exclude)

        class Samples:
            """Re-iterable single-image samples (NNCF iterates the data set once per statistics pass)."""

            def __iter__(self) -> Iterator[np.ndarray]:
                for batch in data.batches(1):
                    yield batch
                    tick(len(batch))

        logging.getLogger("nncf").setLevel(logging.WARNING)
        quantized = nncf.quantize(
            converted,
            nncf.Dataset(Samples()),
            model_type=nncf.ModelType.TRANSFORMER,
            subset_size=data.count,
            ignored_scope=nncf.IgnoredScope(names=names, patterns=patterns, validate=False),
            advanced_parameters=AdvancedQuantizationParameters(
                smooth_quant_alphas=AdvancedSmoothQuantParameters(matmul=-1)
            ),
        )
        props = {p.key: p.value for p in model.metadata_props}
        quantized.set_rt_info(json.dumps(props), [METADATA_RT_KEY])
        ov.save_model(quantized, str(out), compress_to_fp16=False)

    def runner(self, path: Path) -> Callable[[np.ndarray], np.ndarray]:
        import openvino as ov

        compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        request = compiled.create_infer_request()

        def run(images: np.ndarray) -> np.ndarray:
            return np.asarray(request.infer([images])[0]).copy()

        return run

    def artifact_files(self, path: Path) -> list[Path]:
        return [path, path.with_suffix(".bin")]

    def record(self, path: Path, info: dict[str, Any]) -> None:
        import openvino as ov

        core = ov.Core()
        model = core.read_model(str(path))
        model.set_rt_info(json.dumps(info), [QUANTIZATION_RT_KEY])
        tmp = path.with_name(path.stem + ".tmp.xml")
        ov.save_model(model, str(tmp), compress_to_fp16=False)
        del model
        tmp.replace(path)
        tmp.with_suffix(".bin").replace(path.with_suffix(".bin"))


def fake_quantize_count(path: Path) -> int:
    """FakeQuantize ops in a saved OpenVINO model (how many tensors run in INT8)."""
    import openvino as ov

    model = ov.Core().read_model(str(path))
    return sum(1 for op in model.get_ops() if op.get_type_name() == "FakeQuantize")


def fake_quantize_inside_attention(path: Path) -> list[str]:
    """FakeQuantize ops that feed an op of a vitrt attention body (must be empty: the bodies stay float)."""
    import openvino as ov

    model = ov.Core().read_model(str(path))
    inside = re.compile(r"/Vitrt\w+Attention/")
    found = []
    for op in model.get_ops():
        if op.get_type_name() != "FakeQuantize":
            continue
        consumers = [t.get_node().get_friendly_name() for t in op.output(0).get_target_inputs()]
        if any(inside.search(name) for name in consumers):
            found.append(op.get_friendly_name())
    return found
