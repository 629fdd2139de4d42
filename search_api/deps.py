"""Dependency providers and their Annotated aliases, defined once for every router."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from search_api.config import ApiSettings
from search_api.services.collections import CollectionService
from search_api.services.container import Services
from search_api.services.documents import DocumentService
from search_api.services.embeddings import EmbeddingService
from search_api.services.faq import FaqMatcher
from search_api.services.reranking import RerankService
from search_api.services.search import Searcher
from search_api.services.similarity import SimilarityService
from search_api.services.sparse import SparseService


def get_app_settings(request: Request) -> ApiSettings:
    # Not app.dependency_overrides: FastAPI re-inspects an override's signature on every
    # request (measured: 7% of a /search request's CPU).
    settings: ApiSettings = request.app.state.settings
    return settings


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def get_searcher(services: Annotated[Services, Depends(get_services)]) -> Searcher:
    return services.searcher


def get_collection_service(services: Annotated[Services, Depends(get_services)]
                           ) -> CollectionService:
    return services.collection_info


def get_document_service(services: Annotated[Services, Depends(get_services)]) -> DocumentService:
    return services.documents


def get_similarity_service(services: Annotated[Services, Depends(get_services)]
                           ) -> SimilarityService:
    return services.similarity


def get_embedding_service(services: Annotated[Services, Depends(get_services)]
                          ) -> EmbeddingService:
    return services.embeddings


def get_faq_matcher(services: Annotated[Services, Depends(get_services)]) -> FaqMatcher:
    return services.faq


def get_rerank_service(services: Annotated[Services, Depends(get_services)]) -> RerankService:
    return services.reranking


def get_sparse_service(services: Annotated[Services, Depends(get_services)]) -> SparseService:
    return services.sparse


ServicesDep = Annotated[Services, Depends(get_services)]
SettingsDep = Annotated[ApiSettings, Depends(get_app_settings)]
CollectionsDep = Annotated[CollectionService, Depends(get_collection_service)]
SearcherDep = Annotated[Searcher, Depends(get_searcher)]
DocumentsDep = Annotated[DocumentService, Depends(get_document_service)]
SimilarityDep = Annotated[SimilarityService, Depends(get_similarity_service)]
EmbeddingsDep = Annotated[EmbeddingService, Depends(get_embedding_service)]
FaqMatcherDep = Annotated[FaqMatcher, Depends(get_faq_matcher)]
SparseDep = Annotated[SparseService, Depends(get_sparse_service)]
RerankDep = Annotated[RerankService, Depends(get_rerank_service)]
