"""The web page shows a long document's best passage highlighted, and the full text on demand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.indexer.test_passages_index import long_doc

TEXTS = {f"r{n}": long_doc(n) for n in range(6)}


def test_best_passage_is_highlighted_and_the_full_text_opens(browser: Any, server: str,
                                                              screenshots: Path) -> None:
    from playwright.sync_api import expect

    docs = [{"id": k, "text": v, "metadata": {"title": f"Report {k}"}} for k, v in TEXTS.items()]
    created = httpx.post(f"{server}/collections/reports-ui/documents", timeout=120,
                         json={"documents": docs, "chunk_tokens": 24, "chunk_overlap": 6})
    assert created.status_code == 200, created.text
    api = httpx.post(f"{server}/collections/reports-ui/search", timeout=60,
                     json={"query": "bees communicate by dancing", "top_k": 2}).json()
    best = api["hits"][0]

    context = browser.new_context(viewport={"width": 1000, "height": 900})
    try:
        tab = context.new_page()
        tab.set_default_timeout(15_000)
        errors: list[str] = []
        tab.on("pageerror", lambda exc: errors.append(str(exc)))
        tab.goto(server + "/")
        expect(tab.locator("#search-collection option[value='reports-ui']")).to_have_count(1)
        tab.select_option("#search-collection", "reports-ui")
        tab.fill("#search-query", "bees communicate by dancing")
        tab.fill("#search-top-k", "2")
        tab.get_by_role("button", name="Search").click()
        expect(tab.locator(".hit")).to_have_count(2)
        first = tab.locator(".hit").first
        expect(first.locator(".hit-title")).to_have_text(f"Report {best['id']}")
        assert first.locator(".hit-body > .hit-text > mark").inner_text() == best["passage"]["text"]
        full = first.locator(".hit-full .hit-text")
        expect(full).to_be_hidden()
        first.locator(".hit-full summary").click()
        expect(full).to_be_visible()
        assert full.inner_text() == best["text"]
        tab.screenshot(path=screenshots / "search-passages.png", full_page=True)
        assert errors == []
    finally:
        context.close()
