"""Token ids for the ONNX backends, from a model's `tokenizer.json` with the `tokenizers` library.

transformers' AutoTokenizer gives the same ids, but importing it imports torch: about 230 MB
more memory in every server process and slower single-query calls. It is used only where
tokenizer.json alone could disagree with it (see `_needs_transformers`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# tokenizer_config.json keys with which transformers rebuilds parts of tokenizer.json on load.
_REBUILT_BY_TRANSFORMERS = ("add_bos_token", "add_eos_token", "add_prefix_space")
# BertTokenizerFast replaces the normalizer when tokenizer_config disagrees with these settings.
_BERT_NORMALIZER_KEYS = {"do_lower_case": "lowercase", "strip_accents": "strip_accents",
                         "tokenize_chinese_chars": "handle_chinese_chars"}


class ModelTokenizer:
    """Truncating tokenizer: `ids, truncated = tokenizer(texts)`; ids include special tokens."""

    def __init__(self, transformer_dir: Path, max_length: int) -> None:
        self.max_length = max_length
        config = _read_json(transformer_dir / "tokenizer_config.json")
        tokenizer_file = transformer_dir / "tokenizer.json"
        # Read once: parsed here for the check, then built by `tokenizers` from the same text.
        tokenizer_json = tokenizer_file.read_text(encoding="utf-8") if tokenizer_file.exists() else ""
        self._fast: Any = None
        self._slow: Any = None
        if tokenizer_json and not _needs_transformers(json.loads(tokenizer_json), config):
            from tokenizers import Tokenizer

            self._fast = Tokenizer.from_str(tokenizer_json)
            self._fast.no_padding()
            # A second copy without truncation counts whole texts (the passage splitter).
            self._counter = Tokenizer.from_str(tokenizer_json)
            self._counter.no_padding()
            self._counter.no_truncation()
            self._fast.enable_truncation(max_length=max_length)
            pad = config.get("pad_token")
            pad_text = pad.get("content") if isinstance(pad, dict) else pad
            self.pad_id = int(self._fast.token_to_id(pad_text) or 0) if pad_text else 0
        else:
            from transformers import AutoTokenizer

            self._slow = AutoTokenizer.from_pretrained(str(transformer_dir))
            self.pad_id = int(self._slow.pad_token_id or 0)

    @property
    def uses_transformers(self) -> bool:
        return self._slow is not None

    def count(self, texts: list[str]) -> list[int]:
        """Tokens of each text without special tokens, never truncated."""
        if self._fast is not None:
            return [len(e.ids) for e in self._counter.encode_batch(texts, add_special_tokens=False)]
        ids = self._slow(texts, add_special_tokens=False, truncation=False, verbose=False)
        return [len(row) for row in ids["input_ids"]]

    def __call__(self, texts: list[str]) -> tuple[list[list[int]], list[bool]]:
        if self._fast is not None:
            encodings = self._fast.encode_batch(texts)
            return [e.ids for e in encodings], [bool(e.overflowing) for e in encodings]
        tokens = self._slow(texts, truncation=True, max_length=self.max_length, verbose=False)
        truncated = [bool(e.overflowing) for e in tokens.encodings] if tokens.encodings \
            else [False] * len(texts)
        return tokens["input_ids"], truncated


def _needs_transformers(tokenizer: dict[str, Any], config: dict[str, Any]) -> bool:
    """Whether transformers would load this tokenizer.json differently from `tokenizers`."""
    if any(key in config for key in _REBUILT_BY_TRANSFORMERS):
        return True
    normalizer = tokenizer.get("normalizer") or {}
    if normalizer.get("type") != "BertNormalizer":
        return False
    return any(key in config and config[key] != normalizer.get(setting)
               for key, setting in _BERT_NORMALIZER_KEYS.items())


def _read_json(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}
