"""The passage splitter: sentence ends (Latin, Chinese, line breaks), windows, overlap, offsets."""

from __future__ import annotations

import pytest

from indexer.chunking import sentence_spans, split_passages
from indexer.encoding import Encoder, FakeEncoder
from storage.errors import InvalidChunking
from storage.records import Chunking

CHINESE_ENDS = "。！？；"


def _sentences(text: str) -> list[str]:
    return [text[s:e] for s, e in sentence_spans(text)]


def test_sentence_ends_latin_chinese_and_line_breaks() -> None:
    text = "First one. Second? Third!\n第一句。第二句！第三句？第四句；last line\n\n  tail  "
    assert _sentences(text) == ["First one.", "Second?", "Third!", "第一句。", "第二句！",
                                "第三句？", "第四句；", "last line", "tail"]


def test_decimal_points_and_abbreviation_dots_without_space_do_not_end_a_sentence() -> None:
    assert _sentences("The value was 3.14 at pH 7.4 today. Next.") == [
        "The value was 3.14 at pH 7.4 today.", "Next."]


def test_a_short_document_is_one_passage_trimmed(minilm: Encoder) -> None:
    text = "  A short abstract. It fits easily.\n"
    passages = split_passages(text, minilm.count_tokens, Chunking(tokens=64, overlap=16))
    assert len(passages) == 1
    assert text[passages[0].start:passages[0].end] == "A short abstract. It fits easily."


def test_long_english_text_windows_end_on_sentences_within_the_token_budget(minilm: Encoder) -> None:
    sentences = [f"Sentence number {i} talks about protein folding and cell biology." for i in range(60)]
    text = " ".join(sentences)
    chunking = Chunking(tokens=64, overlap=16)
    passages = split_passages(text, minilm.count_tokens, chunking)
    assert len(passages) > 5
    counts = minilm.count_tokens([text[p.start:p.end] for p in passages])
    assert max(counts) <= chunking.tokens
    for p in passages:
        piece = text[p.start:p.end]
        assert piece.endswith("biology.") and piece.startswith("Sentence number")
    # Every sentence lies in some passage, and consecutive passages overlap by whole sentences.
    assert passages[0].start == 0 and passages[-1].end == len(text)
    for before, after in zip(passages, passages[1:], strict=False):
        assert before.start < after.start < before.end <= after.end
        assert minilm.count_tokens([text[after.start:before.end]])[0] <= chunking.overlap
    assert [p.index for p in passages] == list(range(len(passages)))


def test_chinese_passages_end_on_chinese_sentence_ends(e5: Encoder) -> None:
    ends = CHINESE_ENDS
    text = "".join(f"这是第{i}个句子，它讲述了城市交通和公共服务的发展情况{ends[i % 4]}" for i in range(80))
    chunking = Chunking(tokens=100, overlap=20)
    passages = split_passages(text, e5.count_tokens, chunking)
    assert len(passages) > 5
    assert passages[0].start == 0 and passages[-1].end == len(text)
    for p in passages:
        piece = text[p.start:p.end]
        assert piece[-1] in ends, piece
        assert p.start == 0 or text[p.start - 1] in ends
    assert max(e5.count_tokens([text[p.start:p.end] for p in passages])) <= chunking.tokens


def test_a_sentence_longer_than_the_window_is_cut_between_words(minilm: Encoder) -> None:
    text = " ".join(f"word{i}" for i in range(400))  # no sentence end at all
    chunking = Chunking(tokens=50, overlap=0)
    passages = split_passages(text, minilm.count_tokens, chunking)
    assert len(passages) >= 8
    assert max(minilm.count_tokens([text[p.start:p.end] for p in passages])) <= chunking.tokens
    # No word is cut, and every word is in exactly one passage (no overlap asked).
    words = [w for p in passages for w in text[p.start:p.end].split()]
    assert words == text.split()


def test_an_unbroken_run_of_chinese_is_cut_between_characters(e5: Encoder) -> None:
    text = "城市交通" * 300
    passages = split_passages(text, e5.count_tokens, Chunking(tokens=64, overlap=0))
    assert "".join(text[p.start:p.end] for p in passages) == text
    assert max(e5.count_tokens([text[p.start:p.end] for p in passages])) <= 64


def test_a_giant_word_is_cut_into_pieces_not_dropped(e5: Encoder) -> None:
    text = "xq" * 2500 + " end."  # one "word" of about 2,500 pieces
    passages = split_passages(text, e5.count_tokens, Chunking(tokens=200, overlap=0))
    assert len(passages) > 10
    assert "".join(text[p.start:p.end] for p in passages).replace(" ", "") == text.replace(" ", "")


@pytest.mark.parametrize(("tokens", "overlap"), [(4, 0), (100, 60), (100, -1)])
def test_invalid_chunking_is_a_clear_error(tokens: int, overlap: int) -> None:
    with pytest.raises(InvalidChunking, match="chunk"):
        Chunking(tokens=tokens, overlap=overlap)


def test_whitespace_only_text_is_one_empty_passage() -> None:
    passages = split_passages("   ", FakeEncoder().count_tokens, Chunking())
    assert [(p.start, p.end) for p in passages] == [(0, 3)]
