"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from search_api.deps import ServicesDep
from search_api.schemas.core import Health, Readiness

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
@router.get("/health", response_model=Health, include_in_schema=False)
def healthz() -> Health:
    """The process is up."""
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
def readyz(services: ServicesDep) -> Readiness | JSONResponse:
    """Models and collections are loaded and sound (503 with the reasons otherwise)."""
    errors = {**services.load_errors, **services.collections.unavailable()}
    ready = services.ready and not errors
    body = Readiness(status="ready" if ready else "not_ready", models=services.encoders.loaded(),
                     collections=services.collections.loaded(), errors=errors)
    return body if ready else JSONResponse(status_code=503, content=body.model_dump())
