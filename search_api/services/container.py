"""Services: everything the routes share, created in the app's lifespan."""

from __future__ import annotations

import logging

from indexer.encoding import Encoder
from search_api.config import ApiSettings
from search_api.services.collections import CollectionService
from search_api.services.documents import DocumentService
from search_api.services.embeddings import EmbeddingService
from search_api.services.faq import FaqMatcher
from search_api.services.query_cache import CacheObserver
from search_api.services.registry import CollectionRegistry, EncodeObserver, EncoderRegistry
from search_api.services.reranking import RerankerRegistry, RerankService
from search_api.services.search import Searcher
from search_api.services.similarity import SimilarityService
from search_api.services.sparse import SparseService
from storage import CollectionUnavailable, SemsearchError

logger = logging.getLogger(__name__)


class Services:
    def __init__(self, settings: ApiSettings, encoders: dict[str, Encoder] | None = None,
                 observe_encode: EncodeObserver | None = None,
                 observe_model: EncodeObserver | None = None,
                 observe_cache: CacheObserver | None = None) -> None:
        self.settings = settings
        self.encoders = EncoderRegistry(allow_download=settings.allow_download,
                                        trust_remote_code=settings.trust_remote_code,
                                        preloaded=encoders, observe=observe_encode,
                                        observe_model=observe_model,
                                        micro_batch=settings.micro_batch,
                                        micro_batch_wait_ms=settings.micro_batch_wait_ms,
                                        micro_batch_max=settings.micro_batch_max,
                                        query_cache_size=settings.query_cache_size,
                                        observe_cache=observe_cache,
                                        runtime=settings)
        self.collections = CollectionRegistry.from_settings(settings)
        self.reranking = RerankService(settings, RerankerRegistry(settings))
        self.searcher = Searcher(settings, self.collections, self.encoders, self.reranking)
        self.documents = DocumentService(settings, self.collections, self.encoders)
        self.collection_info = CollectionService(self.collections)
        self.similarity = SimilarityService(settings, self.collections, self.encoders)
        self.embeddings = EmbeddingService(settings, self.collections, self.encoders)
        self.faq = FaqMatcher(settings, self.collections, self.encoders)
        self.sparse = SparseService(settings, self.collections, settings.sparse_models)
        self.load_errors: dict[str, str] = {}
        self.ready = False

    def preload(self) -> None:
        """Open every collection and load its model, so the first request is not slow."""
        if self.settings.preload_collections:
            for name in self.collections.names():
                try:
                    collection = self.collections.get(name)
                    self.encoders.get(collection.model.name)
                except CollectionUnavailable as exc:  # the registry reports it until it is restored
                    logger.error("collection %s not loaded: %s", name, exc.message)
                except SemsearchError as exc:
                    logger.error("collection %s not loaded: %s", name, exc.message)
                    self.load_errors[name] = exc.message
            self._preload_served_models()
            self.encoders.wait_for_warm_up()  # ready means warm: no request pays for a load
        self.ready = True

    def _preload_served_models(self) -> None:
        """Load the models served names point at; a wrong one makes /readyz say so."""
        for client_name, model in self.settings.served_model_names.items():
            try:
                self.encoders.get(model)
            except SemsearchError as exc:
                logger.error("served model name %s not loaded: %s", client_name, exc.message)
                self.load_errors[f"served model name {client_name}"] = exc.message

    def collection_sizes(self) -> dict[str, tuple[int, int]]:
        """{name: (documents, generation)} of the loaded collections, for /metrics."""
        return self.collections.sizes()

    def close(self) -> None:
        self.encoders.close()
        self.collections.close()
