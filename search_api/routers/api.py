"""All routers, mounted in one place."""

from fastapi import APIRouter

from search_api.routers import (
    collections,
    faq,
    health,
    metrics,
    ollama,
    openai,
    rerank,
    search,
    similarity,
    sparse,
    tei,
    ui,
)

api_router = APIRouter()
api_router.include_router(health.router)
api_router.include_router(metrics.router)
api_router.include_router(search.router)
api_router.include_router(collections.router)
api_router.include_router(similarity.router)
api_router.include_router(openai.router)
api_router.include_router(rerank.router)
api_router.include_router(sparse.router)
api_router.include_router(faq.router)
api_router.include_router(tei.router)
api_router.include_router(ollama.router)
api_router.include_router(ui.router)
