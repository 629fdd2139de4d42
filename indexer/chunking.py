"""Passages: long documents split at sentence ends into windows of the model's own tokens."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from storage.errors import InvalidChunking
from storage.records import Chunking, PassageSpan

# Counts tokens of each text without special tokens or prompts (Encoder.count_tokens).
TokenCounter = Callable[[Sequence[str]], list[int]]

# A sentence ends after Latin . ! ? (then closing quotes/brackets, then a space), after the
# full-width Chinese ends 。！？； and their ASCII look-alikes followed by quotes (no space needed
# in Chinese), or at a line break.
_CJK_END = r"[。！？；]+[”’」』\"')）]*"
_LATIN_END = r"[.!?;]+[\"'”’)\]]*(?=\s)"
_BREAK = re.compile(rf"{_CJK_END}|{_LATIN_END}|\n")
# What an over-long sentence is cut into: single CJK characters or runs of other non-space text.
_CJK_CHAR = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_ATOM = re.compile(rf"[{_CJK_CHAR}]|[^\s{_CJK_CHAR}]+")


# Defaults from the SciFact measurement (docs/indexing.md, "Long documents"): 200-token windows
# overlapping by 50 tokens; a model with a smaller window gets its window less a margin.
DEFAULT_TOKENS = 200
DEFAULT_OVERLAP = 50
# Tokens a window leaves for special tokens and a prompt ("passage: "), and for the few
# tokens by which a passage's count can exceed the sum of its sentences' counts.
WINDOW_MARGIN = 16


@dataclass(frozen=True, kw_only=True)
class ChunkRequest:
    """What was asked for (--chunk-tokens, --chunk-overlap, --no-chunk); None means the default."""

    tokens: int | None = None
    overlap: int | None = None
    off: bool = False

    @property
    def explicit(self) -> bool:
        return self.off or self.tokens is not None or self.overlap is not None

    def resolve(self, max_length: int) -> Chunking | None:
        """The chunking meant for a model with a window of `max_length` tokens (None: off).

        Raises:
            InvalidChunking: both off and a window asked for, or a window the model cannot read.
        """
        if self.off:
            if self.tokens is not None or self.overlap is not None:
                raise InvalidChunking("--no-chunk cannot be combined with --chunk-tokens or "
                                      "--chunk-overlap")
            return None
        room = max_length - WINDOW_MARGIN
        tokens = self.tokens if self.tokens is not None else min(DEFAULT_TOKENS, room)
        if tokens > room:
            raise InvalidChunking(f"--chunk-tokens {tokens} exceeds what the model reads: its "
                                  f"window is {max_length} tokens, so use at most {room}")
        overlap = self.overlap if self.overlap is not None else min(DEFAULT_OVERLAP, tokens // 4)
        return Chunking(tokens=tokens, overlap=overlap)


def describe(chunking: Chunking | None) -> str:
    """`chunking` in words, for messages."""
    if chunking is None:
        return "one vector per document (no passages)"
    return f"passages of {chunking.tokens} tokens overlapping by {chunking.overlap}"


def check_chunking(name: str, stored: Chunking | None, request: ChunkRequest,
                   max_length: int) -> None:
    """InvalidChunking when chunk options were given that differ from the collection's own.

    Args:
        name: the collection, for the message.
        stored: what the collection was made with.
        request: what this run asked for (no options: whatever the collection has).
        max_length: the model's window.
    """
    if not request.explicit:
        return
    wanted = request.resolve(max_length)
    if wanted != stored:
        raise InvalidChunking(f"collection '{name}' stores {describe(stored)}; this run asks for "
                              f"{describe(wanted)}. Index into a new collection to change it, or "
                              "leave out the chunk options")


@dataclass(frozen=True, kw_only=True)
class _Unit:
    start: int
    end: int
    tokens: int


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence of `text`, leading and trailing blanks left out.

    Args:
        text: any text.

    Returns:
        Non-empty spans in text order; `text[start:end]` is the sentence.
    """
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _BREAK.finditer(text):
        _add_trimmed(text, start, match.end(), spans)
        start = match.end()
    _add_trimmed(text, start, len(text), spans)
    return spans


def _add_trimmed(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if start < end:
        spans.append((start, end))


def split_passages(text: str, count_tokens: TokenCounter, chunking: Chunking) -> list[PassageSpan]:
    """Split `text` into passages of at most `chunking.tokens` tokens, at sentence ends.

    A text within the window stays one passage (its blanks at both ends left out). Longer
    texts are packed sentence by sentence; consecutive passages share whole sentences worth up
    to `chunking.overlap` tokens. A sentence longer than the window is cut between words (or
    CJK characters) into pieces that overlap the same way.

    Args:
        text: the document's text.
        count_tokens: the model's token counter (no special tokens).
        chunking: window and overlap, in tokens.

    Returns:
        Passages in order; `text[p.start:p.end]` is passage p's text.
    """
    spans = sentence_spans(text)
    if not spans:
        return [PassageSpan(index=0, start=0, end=len(text))]
    whole = (spans[0][0], spans[-1][1])
    if count_tokens([text[whole[0]:whole[1]]])[0] <= chunking.tokens:
        return [PassageSpan(index=0, start=whole[0], end=whole[1])]
    counts = count_tokens([text[s:e] for s, e in spans])
    units: list[_Unit] = []
    for (start, end), tokens in zip(spans, counts, strict=True):
        if tokens <= chunking.tokens:
            units.append(_Unit(start=start, end=end, tokens=tokens))
        else:
            # Pieces no longer than the overlap, so windows over them still overlap.
            piece = max(chunking.overlap, chunking.tokens // 4) if chunking.overlap else chunking.tokens
            units.extend(_cut_sentence(text, start, end, count_tokens, piece))
    return [PassageSpan(index=i, start=units[a].start, end=units[b - 1].end)
            for i, (a, b) in enumerate(_windows([u.tokens for u in units], chunking))]


def _windows(tokens: list[int], chunking: Chunking) -> list[tuple[int, int]]:
    """[first, last) unit ranges: greedy windows, each next one backing up by the overlap."""
    windows: list[tuple[int, int]] = []
    first = 0
    while first < len(tokens):
        last, used = first, 0
        while last < len(tokens) and (last == first or used + tokens[last] <= chunking.tokens):
            used += tokens[last]
            last += 1
        windows.append((first, last))
        if last == len(tokens):
            break
        back, shared = last, 0
        while back - 1 > first and shared + tokens[back - 1] <= chunking.overlap:
            back -= 1
            shared += tokens[back]
        first = back
    return windows


def _cut_sentence(text: str, start: int, end: int, count_tokens: TokenCounter,
                  window: int) -> list[_Unit]:
    """An over-long sentence as pieces of at most `window` tokens, cut between atoms."""
    atoms = [(start + m.start(), start + m.end()) for m in _ATOM.finditer(text[start:end])]
    counts = count_tokens([text[s:e] for s, e in atoms])
    pieces: list[_Unit] = []
    piece_start, used = atoms[0][0], 0
    previous_end = piece_start
    for (s, e), tokens in zip(atoms, counts, strict=True):
        if tokens > window:  # one "word" longer than a window (a long URL, a base64 blob)
            if used:
                pieces.append(_Unit(start=piece_start, end=previous_end, tokens=used))
            pieces.extend(_cut_atom(s, e, tokens, window))
            piece_start, used, previous_end = e, 0, e
            continue
        if used and used + tokens > window:
            pieces.append(_Unit(start=piece_start, end=previous_end, tokens=used))
            piece_start, used = s, 0
        used += tokens
        previous_end = e
    if used:
        pieces.append(_Unit(start=piece_start, end=previous_end, tokens=used))
    return pieces


def _cut_atom(start: int, end: int, tokens: int, window: int) -> list[_Unit]:
    """Equal character slices of a single over-long atom, each about a window or less."""
    parts = -(-tokens // window) + 1  # one more than needed: tokens are not spread evenly
    step = -(-(end - start) // parts)
    return [_Unit(start=s, end=min(s + step, end), tokens=window)
            for s in range(start, end, step)]
