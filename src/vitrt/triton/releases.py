"""Which Triton container can serve an artifact: documented facts only, no guesses.

A TensorRT plan loads only in the TensorRT version that built it, down to the build number: Triton logs "The engine
plan file is not compatible with this version of TensorRT, expecting library version 8.6.1.2 got 8.6.1.6, please
rebuild" (triton-inference-server/server#5975, #5812, #317). NVIDIA's documented way to get a matching pair is to
build inside the NGC TensorRT container of the same release as the Triton container ("if you are using the 24.12
version of Triton, use the 24.12 version of the TensorRT container", server docs/user_guide/custom_operations.md);
Triton's own QA builds its plans in `nvcr.io/nvidia/tensorrt:$TRITON_VERSION-py3`
(server qa/common/gen_qa_model_repository). vitrt therefore resolves the image in this order:

1. the NGC release recorded in the engine manifest (`ngc_release`, set when the engine was built inside an NGC
   TensorRT container such as vitrt's `docker/Dockerfile.gpu`) -> `tritonserver:<release>-py3`;
2. a `-py3` release whose TensorRT version is documented below and equals the manifest's;
3. otherwise it refuses and says how to get a matching pair.

The `-trtllm-python-py3` images list their TensorRT versions in Triton's compatibility matrix, but they replace the
base image's TensorRT with TensorRT-LLM's (tensorrtllm_backend dockerfile/Dockerfile.triton.trt_llm_backend purges
`libnvinfer*`) and are "a container exclusively with TensorRT-LLM" (server#6708), so they are not offered for plans.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vitrt.errors import VitrtError

REGISTRY = "nvcr.io/nvidia/tritonserver"
COMPATIBILITY_MATRIX = "https://github.com/triton-inference-server/server/blob/main/docs/introduction/compatibility.md"
CUSTOM_OPERATIONS = "https://github.com/triton-inference-server/server/blob/main/docs/user_guide/custom_operations.md"

# ONNX Runtime in each Triton release (compatibility.md, "ONNX Runtime Versions").
ONNXRUNTIME_IN_TRITON: dict[str, str] = {
    "26.08": "1.28.0",
    "26.07": "1.27.0",
    "26.06": "1.24.4",
    "26.05": "1.24.4",
    "26.04": "1.24.4",
    "26.03": "1.24.2",
    "26.02": "1.24.1",
    "26.01": "1.23.2",
    "25.12": "1.23.2",
    "25.11": "1.23.2",
    "25.10": "1.23.1",
    "25.09": "1.23.0",
    "25.08": "1.23.0",
    "25.07": "1.22.0",
    "25.06": "1.22.0",
    "25.05": "1.22.0",
    "25.04": "1.21.0",
    "25.03": "1.21.0",
    "25.02": "1.20.1",
    "25.01": "1.20.1",
    "24.12": "1.20.1",
    "24.11": "1.19.2",
    "24.10": "1.19.2",
    "24.09": "1.19.2",
    "24.08": "1.18.1",
    "24.07": "1.18.1",
    "24.06": "1.18.0",
    "24.05": "1.18.0",
    "24.04": "1.17.3",
}


@dataclass(frozen=True)
class TensorRTFact:
    tensorrt: str
    source: str


# TensorRT inside `tritonserver:<release>-py3`, each from a maintainer's container output or the release's own
# error message. Releases missing here are not guessed.
TENSORRT_IN_TRITON_PY3: dict[str, TensorRTFact] = {
    "23.04": TensorRTFact("8.6.1.2", "https://github.com/triton-inference-server/server/issues/5812"),
    "23.05": TensorRTFact("8.6.1.2", "https://github.com/triton-inference-server/server/issues/5975"),
    "24.02": TensorRTFact("8.6.3", "https://github.com/triton-inference-server/server/issues/6959"),
}

_RELEASE = re.compile(r"^\d{2}\.\d{2}$")


@dataclass(frozen=True)
class TritonImage:
    release: str
    reason: str
    tensorrt: str | None = None
    onnxruntime: str | None = None

    @property
    def image(self) -> str:
        return f"{REGISTRY}:{self.release}-py3"


class NoMatchingReleaseError(VitrtError):
    """No Triton release is known to carry the TensorRT version that built a plan."""


def check_release(release: str) -> str:
    if not _RELEASE.match(release):
        raise VitrtError(f"Triton release must look like YY.MM (e.g. 25.01), got {release!r}")
    return release


def newest_release() -> str:
    return max(ONNXRUNTIME_IN_TRITON, key=_release_key)


def _release_key(release: str) -> tuple[int, int]:
    year, month = release.split(".")
    return int(year), int(month)


def versions_match(documented: str, built: str) -> bool:
    """True when every component both versions state is equal ("8.6.3" matches "8.6.3.1", not "8.6.1")."""
    a, b = documented.split("+")[0].split("."), built.split("+")[0].split(".")
    return all(x == y for x, y in zip(a, b, strict=False))


def _at_least(version: str, floor: str) -> bool:
    def key(v: str) -> list[int]:
        return [int(p) for p in v.split("+")[0].split(".") if p.isdigit()]

    return key(version) >= key(floor)


def image_for_onnx(requested: str | None = None) -> TritonImage:
    """The image for an ONNX Runtime repository: the requested release, else the newest documented one."""
    release = check_release(requested) if requested else newest_release()
    ort = ONNXRUNTIME_IN_TRITON.get(release)
    reason = (
        f"Triton {release} ships ONNX Runtime {ort} ({COMPATIBILITY_MATRIX})"
        if ort
        else f"Triton {release} as requested (its ONNX Runtime version is not in vitrt's table)"
    )
    return TritonImage(release=release, reason=reason, onnxruntime=ort)


def image_for_plan(
    tensorrt_version: str | None,
    *,
    ngc_release: str | None = None,
    requested: str | None = None,
    version_compatible: bool = False,
) -> TritonImage:
    """The Triton image whose TensorRT can deserialize a plan built with `tensorrt_version`."""
    if tensorrt_version is None:
        raise NoMatchingReleaseError(
            "the engine manifest does not record the TensorRT version that built the plan, so no Triton image can "
            "be chosen; rebuild the engine with `vitrt build`"
        )
    release = check_release(requested) if requested else (check_release(ngc_release) if ngc_release else None)
    if release is not None:
        fact = TENSORRT_IN_TRITON_PY3.get(release)
        if fact is not None and not _compatible(fact.tensorrt, tensorrt_version, version_compatible):
            raise NoMatchingReleaseError(
                f"Triton {release} carries TensorRT {fact.tensorrt} ({fact.source}) but the plan was built with "
                f"TensorRT {tensorrt_version}; rebuild the engine inside nvcr.io/nvidia/tensorrt:{release}-py3"
            )
        origin = "as requested" if requested else "the NGC release the engine was built in"
        reason = (
            f"Triton {release} is {origin}; the same-release TensorRT and Triton containers carry the same "
            f"TensorRT ({CUSTOM_OPERATIONS})"
        )
        if fact is not None:
            reason = f"Triton {release} carries TensorRT {fact.tensorrt} ({fact.source})"
        return TritonImage(
            release=release,
            reason=reason,
            tensorrt=fact.tensorrt if fact else None,
            onnxruntime=ONNXRUNTIME_IN_TRITON.get(release),
        )
    matches = sorted(
        (r for r, f in TENSORRT_IN_TRITON_PY3.items() if _compatible(f.tensorrt, tensorrt_version, version_compatible)),
        key=_release_key,
    )
    if not matches:
        known = ", ".join(f"{r}: {f.tensorrt}" for r, f in sorted(TENSORRT_IN_TRITON_PY3.items(), key=lambda x: x[0]))
        raise NoMatchingReleaseError(
            f"no Triton release in vitrt's table is documented with TensorRT {tensorrt_version} (known -py3 "
            f"releases: {known}) and the manifest records no NGC release; Triton loads a plan only with the exact "
            "TensorRT that built it. Build the engine inside nvcr.io/nvidia/tensorrt:<YY.MM>-py3 (docker/"
            "Dockerfile.gpu records the release) and serve it with tritonserver:<YY.MM>-py3, or pass "
            "--triton-release YY.MM once you have checked that release's TensorRT version"
        )
    release = matches[-1]  # the newest release that can load the plan
    fact = TENSORRT_IN_TRITON_PY3[release]
    return TritonImage(
        release=release,
        reason=f"Triton {release} carries TensorRT {fact.tensorrt} ({fact.source})",
        tensorrt=fact.tensorrt,
        onnxruntime=ONNXRUNTIME_IN_TRITON.get(release),
    )


def _compatible(documented: str, built: str, version_compatible: bool) -> bool:
    if versions_match(documented, built):
        return True
    # Version-compatible plans (TensorRT >= 8.6) also run on later TensorRT releases of the same major version.
    same_major = documented.split(".")[0] == built.split(".")[0]
    return version_compatible and same_major and _at_least(documented, built)
