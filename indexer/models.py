"""Plain data passed between the indexer's stages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, kw_only=True)
class SourceDocument:
    """One row read from a corpus file; `line` is where it starts (1-based), for error messages."""

    doc_id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    line: int = 0


@dataclass(kw_only=True)
class IndexStats:
    """Summary of one `semsearch index` run."""

    read: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    truncated: int = 0
    passages: int = 0  # passages encoded (chunked collections)
    stored_passages: int | None = None  # passages in the collection after the run (if chunked)
    seconds: float = 0.0

    def summary(self) -> str:
        rate = self.read / self.seconds if self.seconds > 0 else 0.0
        return (
            f"added {self.added}, updated {self.updated}, unchanged {self.unchanged}, "
            f"truncated {self.truncated}, {self.seconds:.1f} s ({rate:.0f} docs/s)"
            + (f", {self.passages} passages encoded" if self.passages else "")
        )
