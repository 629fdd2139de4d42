"""FAQ settings: what marks a collection as an FAQ and keeps its threshold (both backends).

On FAISS it is the `faq.json` beside the collection (storage.faiss.collection); on Milvus a row
of the `semsearch_faq` collection (storage.milvus.faq). Why, on FAISS, a file next to the
collection rather than a row in its SQLite `meta` table: the
threshold changes on its own (`faq calibrate`) without any document changing, and a
commit of the collection is the only way its database changes (each commit is a new
generation that rewrites the FAISS index). A small JSON file in the collection folder,
replaced atomically with os.replace, lives and dies with the collection (deleting the
folder deletes it) and never touches the vectors. `faq import` writes it after its
commit, so a collection without the file is never mistaken for a finished FAQ.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from storage.errors import SemsearchError, StorageError

FAQ_FILE = "faq.json"
FORMAT_VERSION = 1


class NotAnFaq(SemsearchError):
    """The collection exists but was not built by `semsearch faq import`."""

    code = "not_an_faq"
    status = 400


@dataclass(frozen=True, kw_only=True)
class FaqConfig:
    """What an FAQ collection needs besides its documents.

    Attributes:
        threshold: score at or above which the best intent is a match (cosine in dense and
            hybrid mode, BM25 in lexical mode).
        mode: the search mode the threshold was calibrated in (None: not calibrated).
        question_kind: how the questions were encoded ("query": FAQ matching is symmetric).
        calibrated_at: when `faq calibrate` set the threshold (None: still the default).
        calibration: the accuracy figures measured when it was calibrated.
        threshold_method: how the threshold was chosen: "calibrated" (labelled queries),
            "leave-one-out" (from the FAQ's own questions), "model-default" (one question per
            intent: the model's documented default), "fallback" (no default for the model:
            everything matches) or "setting" (SEMSEARCH_FAQ_THRESHOLD).
        threshold_figures: the figures the derived threshold was chosen from.
    """

    threshold: float
    question_kind: str = "query"
    calibrated_at: str | None = None
    calibration: dict[str, float] = field(default_factory=dict)
    mode: str | None = None
    threshold_method: str = "setting"
    threshold_figures: dict[str, float] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION


def config_from_json(raw: dict[str, Any]) -> FaqConfig:
    """A FaqConfig from its JSON form (as `config_to_json` writes it).

    Raises:
        ValueError, TypeError, KeyError: the JSON is not a FAQ config.
    """
    return FaqConfig(threshold=float(raw["threshold"]),
                     question_kind=str(raw.get("question_kind", "query")),
                     calibrated_at=raw.get("calibrated_at"),
                     calibration={str(k): float(v) for k, v in
                                  (raw.get("calibration") or {}).items()},
                     mode=raw.get("mode"),
                     threshold_method=str(raw.get("threshold_method") or (
                         "calibrated" if raw.get("calibrated_at") else "setting")),
                     threshold_figures={str(k): float(v) for k, v in
                                        (raw.get("threshold_figures") or {}).items()},
                     format_version=int(raw.get("format_version", FORMAT_VERSION)))


def config_to_json(config: FaqConfig) -> str:
    """The JSON form of a FaqConfig."""
    return json.dumps(asdict(config), ensure_ascii=False, indent=2, sort_keys=True)


def read_faq_config(folder: Path) -> FaqConfig | None:
    """The FAQ settings of the collection in `folder`, or None if it is not an FAQ."""
    path = Path(folder) / FAQ_FILE
    try:
        return config_from_json(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise StorageError(f"{path} is unreadable: {exc}") from exc


def require_faq(config: FaqConfig | None, name: str) -> FaqConfig:
    """`config`, or NotAnFaq when the collection has none (it is not an FAQ)."""
    if config is None:
        raise NotAnFaq(f"collection '{name}' is not an FAQ collection (`semsearch faq import` "
                       "did not build it); build one with `semsearch faq import FILE --name NAME`")
    return config


def write_faq_config(folder: Path, config: FaqConfig) -> None:
    """Write faq.json atomically: a temp file in the same folder, fsynced, then os.replace."""
    path = Path(folder) / FAQ_FILE
    tmp = path.with_name(f".{FAQ_FILE}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as handle:
            handle.write(config_to_json(config))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
