"""Settings shared by every entry point (CLI and API), read from SEMSEARCH_* variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from indexer.encoding import DEFAULT_MODEL


class CommonSettings(BaseSettings):
    """Where collections live and how models load; CLI flags override these."""

    model_config = SettingsConfigDict(env_prefix="SEMSEARCH_", extra="ignore")

    data_dir: Path = Field(default=Path("data"), description="folder holding the collections")
    model: str = Field(default=DEFAULT_MODEL, description="model for new collections")
    allow_download: bool = Field(default=False, description="let a hub id be downloaded")
    trust_remote_code: bool = Field(default=False, description="run a model's own code")


class IndexerSettings(CommonSettings):
    """Bulk indexing knobs."""

    batch_size: int = Field(default=64, ge=1, le=4096, description="documents per encode call")
    commit_every: int = Field(default=2048, ge=1, description="documents per committed generation")

