"""`GET /metrics`: Prometheus text exposition of this app's own registry."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from vitrt.serve.dependencies import MetricsDep, require_api_key

router = APIRouter(tags=["metrics"], dependencies=[Depends(require_api_key)])


_TEXT: dict[int | str, dict[str, Any]] = {
    200: {"description": "Prometheus text exposition format", "content": {"text/plain": {"schema": {"type": "string"}}}}
}


@router.get(
    "/metrics",
    summary="Prometheus metrics (nv_inference_* and vitrt_*)",
    response_class=Response,
    responses={**_TEXT, 401: {"description": "Missing or wrong API key"}},
)
async def metrics(server_metrics: MetricsDep) -> Response:
    return Response(generate_latest(server_metrics.registry), media_type=CONTENT_TYPE_LATEST)
