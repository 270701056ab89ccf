"""Shadow parity endpoints: the window's figures (with a bounded long-poll) and the operator's reset."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from starlette.concurrency import run_in_threadpool

from vitrt.serve.dependencies import ModelDep, require_api_key
from vitrt.serve.errors import InvalidRequestError
from vitrt.serve.model import ServedModel
from vitrt.serve.schemas import ErrorResponse
from vitrt.serve.shadow import ShadowMonitor

MAX_WAIT_S = 60.0

router = APIRouter(
    tags=["shadow parity"],
    dependencies=[Depends(require_api_key)],
    responses={code: {"model": ErrorResponse} for code in (400, 401, 404)},
)


def _shadow_of(model: ServedModel) -> ShadowMonitor:
    if model.shadow is None:
        raise InvalidRequestError(
            f"model {model.name!r} has no shadow parity; start the server with --shadow REFERENCE (or 'shadow:' "
            "in the model's YAML entry)"
        )
    return model.shadow


@router.get("/v2/models/{model_name}/parity", summary="Shadow parity over the sliding window")
async def parity(
    model: ModelDep,
    wait_for: Annotated[
        int | None,
        Query(ge=0, description="long-poll: answer once this many samples have been processed (compared + errors)"),
    ] = None,
    timeout_s: Annotated[
        float, Query(gt=0, le=MAX_WAIT_S, description="longest the long-poll waits before answering anyway")
    ] = 10.0,
) -> dict[str, Any]:
    shadow = _shadow_of(model)
    reached = True
    if wait_for is not None:
        reached = await run_in_threadpool(shadow.wait_for, wait_for, timeout_s)
    summary = shadow.summary()
    summary["model_ready"] = model.ready
    if wait_for is not None:
        summary["wait"] = {"wait_for": wait_for, "reached": reached}
    return summary


@router.post("/v2/models/{model_name}/parity/reset", summary="Clear the window and a latched breach")
async def parity_reset(model: ModelDep) -> dict[str, Any]:
    shadow = _shadow_of(model)
    shadow.reset()
    summary = shadow.summary()
    summary["model_ready"] = model.ready
    return summary
