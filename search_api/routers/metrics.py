"""GET /metrics in the Prometheus text format."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

router = APIRouter(tags=["health"])


@router.get("/metrics", response_class=Response)
def metrics(request: Request) -> Response:
    """Request counts and latencies per route, encode batch sizes, collection sizes."""
    return Response(request.app.state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
