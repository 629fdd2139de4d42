"""A real `semsearch serve` over a small e5 collection, and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

from tests.servers import clean_env, cli, running_server

MODEL = "multilingual-e5-small"
CHROMIUM = os.environ.get("SEMSEARCH_TEST_CHROMIUM", "/usr/bin/chromium")
# The flags Chromium needs here: root, no GPU, and no calls home on a closed network.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
START_TIMEOUT_S = 90.0
CLI_TIMEOUT_S = 120.0
XSS_TEXT = "<img src=x onerror=alert(1)>"
# Far longer than the three lines a hit shows before "Show full text".
LONG_TEXT = " ".join(f"Roman aqueduct {n} carried water across the valley on stone arches, "
                     "and its channel sloped gently so that the flow never stopped." for n in range(1, 21))

# id -> text; the search test expects "bake-1" first for a bread question.
DOCS = {
    "bake-1": "How to bake sourdough bread at home with a starter",
    "sport-1": "The football team won the championship final last night",
    "tech-1": "Python is a popular programming language for data science",
    "space-1": "The telescope captured images of a distant galaxy",
    "zh-1": "今天天气很好，我们去公园散步吧",
    "xss-1": XSS_TEXT,
    "long-1": LONG_TEXT,
}
# FAQ "support", imported by `semsearch faq import` with threshold 0.9: with e5, the test's
# paraphrases score about 0.94-0.96 and an unrelated question about 0.81.
FAQ_THRESHOLD = "0.9"
FAQ = [
    {"intent": "refund", "question": ["怎么退货?", "如何申请退款?"],
     "answer": "7天内可在订单页申请退货退款。<b>请保留包装</b>"},
    {"intent": "shipping", "question": ["多久发货?", "什么时候发货?"], "answer": "下单后48小时内发货。"},
    {"intent": "password", "question": ["忘记密码怎么办?"], "answer": "在登录页点击“忘记密码”重置。"},
]


def _missing_browser(reason: str) -> NoReturn:
    """In CI a missing browser is a failure (.ci/run installs it); locally, a skip."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (CI=true: .ci/run should have installed it)")
    pytest.skip(f"{reason}; install Debian's chromium (apt-get install chromium) to run")


def _run_cli(*args: str, env: dict[str, str]) -> None:
    done = subprocess.run(cli(*args), env=env,
                          capture_output=True, text=True, timeout=CLI_TIMEOUT_S, check=False)
    assert done.returncode == 0, f"semsearch {' '.join(args)} failed:\n{done.stderr[-3000:]}"


@pytest.fixture(scope="session")
def ui_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ui")


@pytest.fixture(scope="session")
def screenshots(ui_tmp: Path) -> Path:
    folder = ui_tmp / "screenshots"
    folder.mkdir()
    return folder


@pytest.fixture(scope="session")
def server(ui_tmp: Path) -> Iterator[str]:
    """Base URL of `semsearch serve` over collection 'docs' (DOCS) and FAQ 'support' (FAQ),
    both built by the CLI."""
    env = clean_env(SEMSEARCH_MODEL=MODEL)
    data_dir = ui_tmp / "data"
    corpus = ui_tmp / "docs.jsonl"
    corpus.write_text("".join(json.dumps({"id": i, "text": t}, ensure_ascii=False) + "\n"
                              for i, t in DOCS.items()), encoding="utf-8")
    # One vector per document: the page's excerpt of a long text is tested on it (the page of a
    # collection of passages, in test_passages_page).
    _run_cli("index", str(corpus), "-c", "docs", "-m", MODEL, "-q", "--no-chunk",
             "--data-dir", str(data_dir), env=env)
    faq = ui_tmp / "faq.jsonl"
    faq.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in FAQ),
                   encoding="utf-8")
    _run_cli("faq", "import", str(faq), "--name", "support", "-m", MODEL, "--data-dir",
             str(data_dir), env={**env, "SEMSEARCH_FAQ_THRESHOLD": FAQ_THRESHOLD})
    with running_server(data_dir, env=env, timeout=START_TIMEOUT_S) as base:
        yield base


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium (never a downloaded browser), shared by the UI tests."""
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        _missing_browser(f"no Chromium at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing_browser("playwright is not installed (pip install -e '.[test]')")
    executable = CHROMIUM if Path(CHROMIUM).exists() else str(shutil.which("chromium"))
    with sync_playwright() as playwright:
        # Playwright gives each launch a fresh, empty user-data dir.
        instance = playwright.chromium.launch(executable_path=executable, headless=True,
                                              args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()
