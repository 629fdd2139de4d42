"""Which Chinese tokenisation should the lexical (BM25) channel use? Measured, not guessed.

Builds an in-memory SQLite FTS5 BM25 index per tokeniser, as storage.faiss.lexical does
(space-joined tokens, unicode61, bm25()), and reports lexical-only quality:
- nDCG@10 / Recall@100 on Chinese retrieval sets (CMRC2018 dev, XQuAD zh);
- accuracy@1 on the LCQMC-built Chinese FAQ of scripts/evaluate_faq.py (no threshold);
plus index build time and size. Tokenisers: CJK characters + bigrams (the product's choice),
bigrams only, unigrams only, and jieba words (search mode) if jieba is installed
(`pip install jieba`; it is not a dependency of the service).

Example:
  python scripts/tokenizer_study.py --data ../shared/data
"""

from __future__ import annotations

import argparse
import re
import sqlite3
import sys
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evallib.beir import find_qrels, load_qrels, load_queries  # noqa: E402
from evallib.metrics import mean, ndcg_at_k, recall_at_k  # noqa: E402
from evaluate import corpus_texts  # noqa: E402
from evaluate_faq import lcqmc  # noqa: E402

from storage.faiss.lexical import match_expression, tokenize  # noqa: E402

Tokenizer = Callable[[str], list[str]]
WORD = re.compile(r"[^\W_]+")


def tokenizers() -> dict[str, Tokenizer]:
    found: dict[str, Tokenizer] = {
        "bigram": lambda t: tokenize(t, "bigram"),
        "unigram": lambda t: tokenize(t, "unigram"),
        "unigram+bigram": lambda t: tokenize(t, "unigram+bigram"),
    }
    try:
        import jieba

        jieba.setLogLevel(60)

        def jieba_words(text: str) -> list[str]:
            # jieba's search-mode words, normalised like tokenize() and kept if letters/digits only
            words = (unicodedata.normalize("NFKC", w).casefold() for w in jieba.cut_for_search(text))
            return [w for w in words if WORD.fullmatch(w)]

        found["jieba"] = jieba_words
    except ImportError:
        print("(jieba not installed: pip install jieba to include it)")
    return found


class Bm25:
    """An in-memory FTS5 table over pre-tokenised text, as storage.faiss.lexical builds it."""

    def __init__(self, texts: list[str], tok: Tokenizer) -> None:
        self.tok = tok
        self.conn = sqlite3.connect(":memory:")
        self.conn.execute("CREATE VIRTUAL TABLE t USING fts5("
                          "tokens, tokenize = 'unicode61 remove_diacritics 0')")
        started = time.perf_counter()
        self.conn.executemany("INSERT INTO t (rowid, tokens) VALUES (?, ?)",
                              [(i, " ".join(tok(text))) for i, text in enumerate(texts)])
        self.seconds = time.perf_counter() - started
        self.tokens = sum(len(tok(text)) for text in texts)

    def search(self, query: str, k: int) -> list[int]:
        expression = match_expression(self.tok(query))
        if expression is None:
            return []
        rows = self.conn.execute("SELECT rowid FROM t WHERE t MATCH ? ORDER BY rank LIMIT ?", (expression, k))
        return [int(r[0]) for r in rows]


def retrieval(folder: Path, split: str, tok: Tokenizer) -> tuple[float, float, float]:
    ids, texts = corpus_texts(folder / "corpus.jsonl")
    qrels = load_qrels(find_qrels(folder, split))
    queries = {q: t for q, t in load_queries(folder / "queries.jsonl").items() if q in qrels}
    index = Bm25(texts, tok)
    ranked = {q: [ids[i] for i in index.search(t, 100)] for q, t in queries.items()}
    return (mean([ndcg_at_k(ranked[q], qrels[q], 10) for q in ranked]),
            mean([recall_at_k(ranked[q], qrels[q], 100) for q in ranked]), index.seconds)


def faq_accuracy(data: Path, tok: Tokenizer) -> float:
    entries, calibrate, test, _ = lcqmc(data, 1000, 300, 0)
    questions = [e.questions[0] for e in entries]
    index = Bm25(questions, tok)
    labelled = [(q, g) for q, g in calibrate + test if g is not None]
    right = [bool((top := index.search(q, 1)) and entries[top[0]].intent == g) for q, g in labelled]
    return sum(right) / len(right)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    args = parser.parse_args()
    sets = [("CMRC2018 dev", args.data / "cmrc2018" / "beir_dev", "test"),
            ("XQuAD zh", args.data / "xquad" / "beir_zh", "test")]
    print(f"{'tokeniser':16}" + "".join(f"{name + ' nDCG@10':>22}{'R@100':>7}" for name, _, _ in sets)
          + f"{'LCQMC FAQ acc@1':>17}{'index s':>9}")
    for name, tok in tokenizers().items():
        row, seconds = [], 0.0
        for _, folder, split in sets:
            ndcg, recall, built = retrieval(folder, split, tok)
            row += [ndcg, recall]
            seconds += built
        acc = faq_accuracy(args.data, tok)
        print(f"{name:16}" + "".join(f"{row[i]:>22.4f}{row[i + 1]:>7.4f}" for i in range(0, len(row), 2))
              + f"{acc:>17.4f}{seconds:>9.2f}")


if __name__ == "__main__":
    main()
