"""ApiSettings: everything the service reads from SEMSEARCH_* variables."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from indexer.encoding import BUILTIN_MODELS, alias_name
from indexer.settings import FaqSettings

# More workers than this on a many-core machine cost a model copy each and gain little:
# each worker already spreads a large encode over its share of the cores.
AUTO_WORKERS_MAX = 4


class ApiSettings(FaqSettings):
    """Service settings; `semsearch serve` flags override host, port and data dir.

    Built on the indexer's FAQ settings (and through them storage and encoder runtime) so that
    every SEMSEARCH_* variable keeps its flat name; the services receive these settings, or the
    RuntimeSettings part of them, from the app factory.
    """

    host: str = Field(default="127.0.0.1", description="interface to listen on")
    port: int = Field(default=8000, ge=1, le=65535, description="port to listen on")
    default_collection: str = Field(default="demo", description="collection for GET /search")
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="comma-separated origins allowed by CORS ('*' for any)"
    )
    sparse_models: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="comma-separated SparseEncoder folders or cached hub ids for /v1/sparse-embeddings")
    served_model_names: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description="comma-separated client_name=model pairs: names clients send (e.g. "
                    "text-embedding-3-small=multilingual-e5-small), answered by that model")
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024, description="request body limit")
    max_top_k: int = Field(default=1000, ge=1, description="largest top_k accepted")
    max_queries: int = Field(default=256, ge=1, description="queries per batch search request")
    max_documents: int = Field(default=1000, ge=1, description="documents per upsert request")
    api_key: SecretStr | None = Field(
        default=None, description="if set, every route but the probes needs 'Authorization: Bearer <key>'"
    )
    preload_collections: bool = Field(
        default=True, description="load every collection and its model at startup"
    )
    max_similarity_items: int = Field(
        default=256, ge=1,
        description="sentences per /similarity side (sources, candidates) and /v1/embeddings input",
    )
    faq_max_top_k: int = Field(default=50, ge=1, description="largest top_k of /faq/{name}/match")
    search_mode: Literal["dense", "lexical", "hybrid"] = Field(
        default="hybrid", description="mode of /search when a request names none")
    faq_mode: Literal["dense", "lexical", "hybrid"] = Field(
        default="dense", description="mode of FAQ matching when a request names none")
    hybrid_fusion: Literal["rrf", "alpha"] = Field(
        default="alpha", description="how hybrid mode fuses the dense and lexical rankings")
    hybrid_alpha: float = Field(
        default=0.5, ge=0.0, le=1.0, description="weight of the dense channel in hybrid mode")
    micro_batch: bool = Field(
        default=True,
        description="requests that arrive while the model is busy share its next call "
                    "(a lone request never waits)",
    )
    micro_batch_wait_ms: float = Field(
        default=0.0, ge=0.0, le=1000.0,
        description="extra ms a batch of concurrent requests waits for more (never a lone one)",
    )
    micro_batch_max: int = Field(
        default=64, ge=1, le=4096,
        description="texts per micro-batch; requests this large are encoded at once",
    )
    query_cache_size: int = Field(
        default=4096, ge=0, description="query embeddings kept in an LRU cache (0: off)"
    )
    reranker: str = Field(
        default="ms-marco-MiniLM-L-12-v2",
        description="cross-encoder for rerank and /rerank when a request names none: the "
                    "built-in, or a folder (ONNX model + tokenizer.json, or a CrossEncoder)")
    rerank_top_n: int = Field(
        default=20, ge=1, le=1000,
        description="search hits reordered by the cross-encoder when a request says `rerank: true`")
    # Chosen on SciFact (docs/rerank.md, first 100 train queries, 1,500 abstracts): the
    # cross-encoder alone lost to hybrid; weighted 0.5 was the best of none/rrf/0.2-0.8.
    rerank_fusion: Literal["none", "rrf", "weighted"] = Field(
        default="weighted",
        description="order of reranked hits: cross-encoder alone, or fused with the first stage")
    rerank_weight: float = Field(
        default=0.5, ge=0.0, le=1.0, description="the cross-encoder's share in weighted fusion")
    rerank_text: Literal["document", "passage"] = Field(
        default="document", description="what the cross-encoder reads: the document, or its best "
                                       "passage (chunked collections)")
    max_rerank_documents: int = Field(
        default=1000, ge=1,
        description="documents per /rerank call, and queries x top_n per reranked search")
    workers: int | Literal["auto"] = Field(
        default="auto",
        description=f"server processes (`serve --workers`); auto: one per core, at most "
                    f"{AUTO_WORKERS_MAX}, where forked workers run (1 on Windows and over a "
                    f"milvus-lite .db)")
    ef_search: int | None = Field(
        default=None, ge=1, le=65536,
        description="HNSW efSearch for every search (default: the collection's)")
    nprobe: int | None = Field(
        default=None, ge=1, description="IVF lists probed per search (default: the collection's)")

    @field_validator("workers", mode="plain")
    @classmethod
    def _workers(cls, value: object) -> int | str:
        return parse_workers(value)

    @field_validator("served_model_names", mode="before")
    @classmethod
    def _split_pairs(cls, value: object) -> object:
        if isinstance(value, str):
            return parse_served_names(value)
        return value

    @field_validator("cors_origins", "sparse_models", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value


def parse_workers(value: object) -> int | Literal["auto"]:
    """A worker count from 1 to 64, or "auto" (any case); ValueError names what was given."""
    text = str(value).strip().lower()
    if text == "auto":
        return "auto"
    if text.isdigit() and 1 <= int(text) <= 64:
        return int(text)
    raise ValueError(f"{value!r} is not a count from 1 to 64 or auto")


def parse_served_names(text: str) -> dict[str, str]:
    """`a=model1,b=model2` as {"a": "model1", "b": "model2"}.

    Args:
        text: comma-separated `client_name=model` pairs (blank items are skipped).

    Returns:
        The client names mapped to the models that answer them.

    Raises:
        ValueError: an item has no '=', an empty side, a client name appears twice or is a
            built-in model's name.
    """
    pairs: dict[str, str] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, equals, model = (side.strip() for side in item.partition("="))
        if not equals or not name or not model:
            raise ValueError(f"served model name '{item}' is not client_name=model, e.g. "
                             "text-embedding-3-small=multilingual-e5-small")
        if name in pairs:
            raise ValueError(f"served model name '{name}' is given twice")
        if alias_name(name) in BUILTIN_MODELS:
            raise ValueError(f"served model name '{name}' would hide the built-in model "
                             f"'{alias_name(name)}': choose another name")
        pairs[name] = model
    return pairs


@lru_cache
def get_settings() -> ApiSettings:
    return ApiSettings()
