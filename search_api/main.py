"""App factory: `uvicorn search_api.main:create_app --factory`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.concurrency import run_in_threadpool

from indexer.encoding import Encoder
from search_api.config import ApiSettings, get_settings
from search_api.errors import register_error_handlers
from search_api.metrics import Metrics, MetricsMiddleware
from search_api.middleware import BodySizeLimit
from search_api.openapi import install_openapi
from search_api.routers.api import api_router
from search_api.security import ApiKeyMiddleware
from search_api.services.container import Services


def _version() -> str:
    try:
        return version("semsearch")
    except PackageNotFoundError:
        return "0+unknown"


def create_app(settings: ApiSettings | None = None, *,
               encoders: dict[str, Encoder] | None = None) -> FastAPI:
    """Build the service; models and collections load in the lifespan, not here.

    Args:
        settings: service settings (default: from SEMSEARCH_* variables).
        encoders: already-loaded models by canonical name, to share instead of reloading.

    Returns:
        The FastAPI application.
    """
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        metrics = app.state.metrics
        services = Services(settings, encoders, observe_encode=metrics.observe_encode,
                            observe_model=metrics.observe_model,
                            observe_cache=metrics.observe_query_cache)
        app.state.services = services
        await run_in_threadpool(services.preload)
        try:
            yield
        finally:
            services.close()

    app = FastAPI(title="semsearch", version=_version(), lifespan=lifespan,
                  description="Semantic search over FAISS + SQLite collections.")
    app.state.settings = settings
    app.state.metrics = Metrics()
    app.state.metrics.watch_collections(lambda: _collection_sizes(app))
    app.state.metrics.watch_health(lambda: _collection_health(app))
    _add_middleware(app, settings)
    register_error_handlers(app)
    app.include_router(api_router)
    install_openapi(app, settings)
    return app


def _collection_sizes(app: FastAPI) -> dict[str, tuple[int, int]]:
    services: Services | None = getattr(app.state, "services", None)
    return services.collection_sizes() if services is not None else {}


def _collection_health(app: FastAPI) -> dict[str, tuple[bool, int]]:
    services: Services | None = getattr(app.state, "services", None)
    return services.collections.health() if services is not None else {}


def _add_middleware(app: FastAPI, settings: ApiSettings) -> None:
    """Innermost first: the body limit, then the API key, metrics, and CORS outermost, so that
    401s and 413s are counted and carry CORS headers."""
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    if settings.api_key is not None and settings.api_key.get_secret_value():
        app.add_middleware(ApiKeyMiddleware, api_key=settings.api_key.get_secret_value())
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins,
                           allow_methods=["*"], allow_headers=["*"])
