"""The web page at `/`, in headless Chromium against a real server and a real e5 model."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.ui.conftest import DOCS, LONG_TEXT, XSS_TEXT

SEED_SOURCE = "吃完海鲜可以喝牛奶吗?"
FETCH_FAILED = "Failed to load resource"  # Chromium logs every non-2xx fetch as a console error


@dataclass
class Recorder:
    """What a page did besides rendering: console errors, exceptions, requests, dialogs."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    requests: list[Any] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def unexpected_errors(self) -> list[str]:
        """Everything but the console lines Chromium writes for a 4xx the page then displays."""
        return self.page_errors + [e for e in self.console_errors if FETCH_FAILED not in e]


@pytest.fixture
def page(browser: Any, server: str) -> Iterator[tuple[Any, Recorder]]:
    """A fresh browser context on the page, recording console errors and every request."""
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1000, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    rec = Recorder()
    tab.on("console", lambda m: rec.console_errors.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda exc: rec.page_errors.append(str(exc)))
    tab.on("request", lambda r: rec.requests.append(r))

    def on_dialog(dialog: Any) -> None:  # an alert() here would mean injected script ran
        rec.dialogs.append(dialog.message)
        dialog.dismiss()

    tab.on("dialog", on_dialog)
    tab.goto(server + "/")
    # The pickers are filled from GET /collections once the script has run.
    expect(tab.locator("#search-collection option[value='docs']")).to_have_count(1)
    try:
        yield tab, rec
    finally:
        context.close()


def _open_tab(tab: Any, name: str) -> None:
    from playwright.sync_api import expect

    tab.get_by_role("tab", name=name).click()
    expect(tab.get_by_role("tab", name=name)).to_have_attribute("aria-selected", "true")


def test_page_loads_offline_with_no_console_errors(page: tuple[Any, Recorder], server: str,
                                                   screenshots: Path) -> None:
    tab, rec = page
    tab.screenshot(path=screenshots / "search-empty.png", full_page=True)
    assert rec.unexpected_errors() == [] and rec.console_errors == []
    urls = [r.url for r in rec.requests]
    assert f"{server}/static/app.js" in urls and f"{server}/collections" in urls
    assert [u for u in urls if not u.startswith(server + "/")] == [], "only the server is asked"
    # Nothing in the files points elsewhere (no CDN, no web fonts) either.
    for path in ("/", "/static/app.js", "/static/style.css"):
        body = httpx.get(server + path, timeout=10).text
        assert not re.search(r"https?://|@import|src=[\"']//", body), path


def test_tabs_are_keyboard_usable(page: tuple[Any, Recorder]) -> None:
    from playwright.sync_api import expect

    tab, _ = page
    tab.get_by_role("tab", name="Search").focus()
    tab.keyboard.press("ArrowRight")
    expect(tab.get_by_role("tab", name="Similarity")).to_be_focused()
    expect(tab.locator("#panel-similarity")).to_be_visible()
    expect(tab.locator("#panel-search")).to_be_hidden()
    tab.keyboard.press("End")
    expect(tab.get_by_role("tab", name="FAQ")).to_have_attribute("aria-selected", "true")
    tab.keyboard.press("ArrowRight")  # wraps around
    expect(tab.get_by_role("tab", name="Search")).to_have_attribute("aria-selected", "true")
    for field_id in ("search-collection", "search-query", "search-top-k", "api-key"):
        assert tab.locator(f"label[for='{field_id}']").count() == 1, field_id


def test_search_ranks_the_expected_document_first(page: tuple[Any, Recorder], server: str,
                                                  screenshots: Path) -> None:
    from playwright.sync_api import expect

    tab, rec = page
    tab.select_option("#search-collection", "docs")
    tab.fill("#search-query", "how do I bake bread at home")
    tab.fill("#search-top-k", "3")
    tab.get_by_role("button", name="Search").click()
    expect(tab.locator(".hit")).to_have_count(3)
    ids = tab.locator(".hit-id").all_inner_texts()
    scores = tab.locator(".hit-score").all_inner_texts()
    assert ids[0] == "bake-1"
    assert all(re.fullmatch(r"-?\d\.\d\d", s) for s in scores), scores
    api = httpx.post(f"{server}/collections/docs/search", timeout=30,
                     json={"query": "how do I bake bread at home", "top_k": 3}).json()
    assert ids == [h["id"] for h in api["hits"]]
    assert scores == [f"{h['score']:.2f}" for h in api["hits"]]
    assert tab.locator(".hit-text").first.inner_text() == api["hits"][0]["text"]
    tab.screenshot(path=screenshots / "search.png", full_page=True)
    assert rec.unexpected_errors() == []


def test_search_status_says_how_many_results_and_how_long(page: tuple[Any, Recorder]) -> None:
    from playwright.sync_api import expect

    tab, rec = page
    tab.fill("#search-query", "how do I bake bread at home")
    tab.fill("#search-top-k", "3")
    tab.get_by_role("button", name="Search").click()
    expect(tab.locator(".hit")).to_have_count(3)
    status = tab.locator("#search-status")
    expect(status).to_have_text(re.compile(r"^3 results in \d+ ms \(docs, hybrid, "
                                           r"multilingual-e5-small\)$"))
    tab.fill("#search-top-k", "1")
    tab.get_by_role("button", name="Search").click()
    expect(tab.locator(".hit")).to_have_count(1)
    expect(status).to_have_text(re.compile(r"^1 result in \d+ ms "))
    assert rec.unexpected_errors() == []


@pytest.mark.parametrize(("mode", "says"), [
    ("", r"^fused hybrid score [01]\.\d{4} \(0\.\.1\): cosine -?\d\.\d{4}, BM25 \d+\.\d\d$"),
    ("dense", r"^cosine similarity -?\d\.\d{4}$"),
    ("lexical", r"^BM25 score \d+\.\d\d \(keyword match, not a cosine\)$"),
])
def test_score_tooltip_names_the_score_of_each_mode(page: tuple[Any, Recorder], server: str,
                                                    mode: str, says: str) -> None:
    from playwright.sync_api import expect

    tab, rec = page
    if mode:  # else the server's default, hybrid
        tab.select_option("#search-mode", mode)
    with tab.expect_request(lambda r: r.url.endswith("/collections/docs/search")) as sent:
        tab.fill("#search-query", "bake sourdough bread")
        tab.get_by_role("button", name="Search").click()
    assert sent.value.post_data_json.get("mode") == (mode or None)
    expect(tab.locator(".hit-id").first).to_have_text("bake-1")
    title = tab.locator(".hit-score").first.get_attribute("title") or ""
    assert re.fullmatch(says, title), title
    hit = httpx.post(f"{server}/collections/docs/search", timeout=30, json={
        "query": "bake sourdough bread", "top_k": 1, "mode": mode or "hybrid"}).json()["hits"][0]
    assert f"{hit['score']:.2f}" == tab.locator(".hit-score").first.inner_text()
    if not mode:
        assert f"cosine {hit['dense_score']:.4f}" in title
        assert f"BM25 {hit['lexical_score']:.2f}" in title
    assert rec.unexpected_errors() == []


def test_a_long_text_shows_an_excerpt_until_expanded(page: tuple[Any, Recorder],
                                                     screenshots: Path) -> None:
    from playwright.sync_api import expect

    tab, rec = page
    tab.fill("#search-query", "Roman aqueduct carrying water on stone arches")
    tab.fill("#search-top-k", "3")
    tab.get_by_role("button", name="Search").click()
    long_hit = tab.locator(".hit", has=tab.locator(".hit-id", has_text="long-1"))
    expect(long_hit).to_have_count(1)
    text = long_hit.locator(".hit-text")
    line = float(text.evaluate("p => parseFloat(getComputedStyle(p).lineHeight)"))
    assert text.bounding_box()["height"] <= 3 * line + 2  # clamped to three lines
    expect(long_hit.get_by_role("button", name="Show full text")).to_have_count(1)
    more = long_hit.locator("button.hit-more")  # its name changes when pressed
    expect(more).to_have_attribute("aria-expanded", "false")
    assert more.get_attribute("aria-controls") == text.get_attribute("id")
    # Short texts fit in three lines: no button for them.
    expect(tab.locator(".hit-more")).to_have_count(1)
    tab.screenshot(path=screenshots / "search-excerpt.png", full_page=True)
    more.click()
    expect(more).to_have_attribute("aria-expanded", "true")
    expect(more).to_have_text("Show less")
    assert text.bounding_box()["height"] > 6 * line
    assert text.evaluate("p => p.scrollHeight <= p.clientHeight + 1")
    assert text.inner_text() == LONG_TEXT
    more.click()
    expect(more).to_have_attribute("aria-expanded", "false")
    assert text.bounding_box()["height"] <= 3 * line + 2
    assert rec.unexpected_errors() == []


def test_a_submit_the_browser_blocks_clears_the_old_error(page: tuple[Any, Recorder]) -> None:
    from playwright.sync_api import expect

    tab, rec = page
    tab.fill("#search-query", "")
    tab.get_by_role("button", name="Search").click()
    error = tab.locator("#search-error")
    expect(error.locator(".error-code")).to_contain_text("empty_query")  # the API's 400
    rec.requests.clear()
    tab.fill("#search-query", "galaxy")
    tab.fill("#search-top-k", "0")  # under min=1: the browser refuses to submit
    tab.get_by_role("button", name="Search").click()
    expect(error).not_to_contain_text("empty_query")
    expect(error).to_contain_text("Results:")  # what the browser objects to, in the page
    assert [r for r in rec.requests if r.url.endswith("/search")] == []
    tab.fill("#search-top-k", "2")
    tab.get_by_role("button", name="Search").click()
    expect(tab.locator(".hit-id").first).to_have_text("space-1")
    expect(error).to_be_hidden()


def test_rerank_switch_sends_rerank_and_shows_the_reranked_order(
        page: tuple[Any, Recorder], server: str) -> None:
    from playwright.sync_api import expect

    tab, rec = page
    query = "how do I bake bread at home"
    tab.select_option("#search-collection", "docs")
    tab.fill("#search-query", query)
    tab.fill("#search-top-k", "3")
    tab.check("#search-rerank")
    with tab.expect_request(lambda r: r.url.endswith("/collections/docs/search")) as sent:
        tab.get_by_role("button", name="Search").click()
    assert json.loads(sent.value.post_data or "{}")["rerank"] is True
    expect(tab.locator(".hit")).to_have_count(3)
    api = httpx.post(f"{server}/collections/docs/search", timeout=60,
                     json={"query": query, "top_k": 3, "rerank": True}).json()
    assert tab.locator(".hit-id").all_inner_texts() == [h["id"] for h in api["hits"]]
    assert api["hits"][0]["id"] == "bake-1" and api["hits"][0]["rerank_score"] > 0.5
    score_tip = tab.locator(".hit-score").first.get_attribute("title") or ""
    assert f"cross-encoder score {api['hits'][0]['rerank_score']:.4f}" in score_tip
    tab.uncheck("#search-rerank")
    assert rec.unexpected_errors() == []


def test_empty_query_shows_the_api_message(page: tuple[Any, Recorder], server: str,
                                           screenshots: Path) -> None:
    from playwright.sync_api import expect

    tab, rec = page
    expected = httpx.post(f"{server}/collections/docs/search", json={"query": ""},
                          timeout=30).json()["error"]
    tab.get_by_role("button", name="Search").click()
    error = tab.locator("#search-error")
    expect(error).to_be_visible()
    expect(error.locator(".error-message")).to_have_text(expected["message"])
    expect(error).to_contain_text(f"{expected['code']} · HTTP 400")
    tab.screenshot(path=screenshots / "search-error.png", full_page=True)
    # No crash: the form still works and the error goes away.
    tab.fill("#search-query", "football final")
    tab.get_by_role("button", name="Search").click()
    expect(tab.locator(".hit-id").first).to_have_text("sport-1")
    expect(error).to_be_hidden()
    assert rec.unexpected_errors() == []


def test_document_html_is_shown_as_text(page: tuple[Any, Recorder]) -> None:
    from playwright.sync_api import expect

    tab, rec = page
    tab.fill("#search-query", XSS_TEXT)
    tab.fill("#search-top-k", "10")
    tab.get_by_role("button", name="Search").click()
    expect(tab.locator(".hit")).to_have_count(len(DOCS))
    expect(tab.locator(".hit-text", has_text=XSS_TEXT)).to_have_count(1)
    assert tab.locator("#search-results img").count() == 0
    tab.wait_for_timeout(200)  # an onerror handler would have fired by now
    assert rec.dialogs == [] and rec.unexpected_errors() == []


def test_similarity_gauge_matches_the_api(page: tuple[Any, Recorder], server: str,
                                          screenshots: Path) -> None:
    from playwright.sync_api import expect

    tab, rec = page
    _open_tab(tab, "Similarity")
    a, b = "今天天气真不错", "外面阳光明媚"
    tab.fill("#sentence-a", a)
    tab.fill("#sentence-b", b)
    tab.get_by_role("button", name="Compare").click()
    expect(tab.locator("#gauge")).to_be_visible()
    shown = tab.locator("#gauge-value").inner_text()
    similarity = httpx.post(f"{server}/similarity", json={"sentence_a": a, "sentence_b": b},
                            timeout=30).json()["similarity"]
    assert shown == f"{max(0.0, similarity) * 100:.1f}%"
    dash = tab.locator("#gauge-fill").get_attribute("stroke-dasharray")
    assert dash is not None and abs(float(dash.split()[0]) - max(0.0, similarity) * 100) < 0.01
    expect(tab.locator("#panel-similarity")).to_contain_text("max(0, cosine similarity) × 100")
    tab.screenshot(path=screenshots / "similarity.png", full_page=True)
    assert rec.unexpected_errors() == []


def test_ranking_renders_the_seed_example_sorted(page: tuple[Any, Recorder], server: str,
                                                 screenshots: Path) -> None:
    from playwright.sync_api import expect

    tab, rec = page
    _open_tab(tab, "Ranking")
    assert tab.input_value("#ranking-source") == SEED_SOURCE
    candidates = tab.input_value("#ranking-candidates").split("\n")
    assert len(candidates) == 4
    tab.get_by_role("button", name="Rank").click()
    rows = tab.locator("#ranking-chart .bar-row")
    expect(rows).to_have_count(4)
    order = [int(i) for i in rows.evaluate_all("rs => rs.map(r => r.dataset.index)")]
    scores = [float(s) for s in rows.evaluate_all("rs => rs.map(r => r.dataset.score)")]
    assert scores == sorted(scores, reverse=True)
    assert order.index(1) < order.index(0) and order.index(2) < order.index(0)
    api = httpx.post(f"{server}/similarity", timeout=30, json={
        "source_sentence": [SEED_SOURCE], "sentences_to_compare": candidates}).json()["scores"]
    assert tab.locator(".bar-value").all_inner_texts() == [f"{api[i]:.3f}" for i in order]
    widths = rows.locator(".bar").evaluate_all("bs => bs.map(b => b.getBoundingClientRect().width)")
    assert widths == sorted(widths, reverse=True) and widths[-1] > 0
    tab.screenshot(path=screenshots / "ranking.png", full_page=True)
    assert rec.unexpected_errors() == []


def test_model_picker_defaults_to_automatic_and_sends_the_chosen_model(
        page: tuple[Any, Recorder]) -> None:
    from playwright.sync_api import expect

    tab, rec = page
    _open_tab(tab, "Ranking")
    picker = tab.locator("#ranking-model")
    expect(picker.locator("option[value='all-MiniLM-L6-v2']")).to_have_count(1)  # from /v1/models
    assert picker.input_value() == ""  # automatic: the server picks by language
    tab.get_by_role("button", name="Rank").click()
    expect(tab.locator("#ranking-model-used")).to_have_text("Scored by multilingual-e5-small.")
    picker.select_option("all-MiniLM-L6-v2")
    with tab.expect_request(lambda r: r.url.endswith("/similarity")) as sent:
        tab.get_by_role("button", name="Rank").click()
    assert sent.value.post_data_json["model"] == "all-MiniLM-L6-v2"
    expect(tab.locator("#ranking-model-used")).to_have_text("Scored by all-MiniLM-L6-v2.")
    _open_tab(tab, "Similarity")
    tab.get_by_role("button", name="Compare").click()
    expect(tab.locator("#gauge-model")).to_have_text("model multilingual-e5-small")
    assert rec.unexpected_errors() == []


def _faq_match(server: str, name: str, query: str) -> httpx.Response:
    return httpx.post(f"{server}/faq/{name}/match", json={"query": query, "top_k": 3}, timeout=30)


def _ask_faq(tab: Any, name: str, query: str) -> None:
    _open_tab(tab, "FAQ")
    tab.select_option("#faq-collection", name)
    tab.fill("#faq-query", query)
    tab.get_by_role("button", name="Match").click()


def test_faq_tab_shows_intent_answer_and_score(page: tuple[Any, Recorder], server: str,
                                               screenshots: Path) -> None:
    from playwright.sync_api import expect

    tab, rec = page
    _ask_faq(tab, "support", "我想退货")
    api = _faq_match(server, "support", "我想退货").json()
    assert api["matched"] and api["intent"] == "refund"
    result = tab.locator("#faq-result")
    expect(result.locator(".faq-intent")).to_have_text("Intent: refund")
    # The answer holds "<b>…</b>": it must show as typed, not as bold.
    expect(result.locator(".faq-answer")).to_have_text(api["answer"])
    assert result.locator("b").count() == 0
    expect(result).to_contain_text(f"score {api['score']:.2f} (threshold 0.90)")
    tab.screenshot(path=screenshots / "faq-match.png", full_page=True)
    assert rec.unexpected_errors() == []


def test_faq_tab_shows_no_match_with_candidates(page: tuple[Any, Recorder], server: str,
                                                screenshots: Path) -> None:
    from playwright.sync_api import expect

    tab, rec = page
    query = "量子力学的基本原理"
    _ask_faq(tab, "support", query)
    api = _faq_match(server, "support", query).json()
    assert not api["matched"]
    result = tab.locator("#faq-result")
    expect(result.locator(".faq-nomatch")).to_contain_text("No match")
    expect(result.locator(".faq-nomatch")).to_contain_text(f"best score {api['score']:.2f}")
    expect(result.locator(".faq-candidates li")).to_have_count(len(api["candidates"]))
    assert result.locator(".faq-cand-intent").all_inner_texts() == [
        c["intent"] for c in api["candidates"]]
    assert result.locator(".faq-cand-question").all_inner_texts() == [
        c["question"] for c in api["candidates"]]
    assert result.locator(".faq-answer").count() == 0
    tab.screenshot(path=screenshots / "faq-nomatch.png", full_page=True)
    assert rec.unexpected_errors() == []


def test_faq_tab_shows_the_api_error(page: tuple[Any, Recorder], server: str,
                                     screenshots: Path) -> None:
    """A blank question reaches the API (the field is not `required`): its 4xx shows."""
    from playwright.sync_api import expect

    tab, rec = page
    _ask_faq(tab, "support", "   ")
    expected = _faq_match(server, "support", "   ")
    assert 400 <= expected.status_code < 500
    error = tab.locator("#faq-error")
    expect(error.locator(".error-message")).to_have_text(expected.json()["error"]["message"])
    expect(error).to_contain_text(f"HTTP {expected.status_code}")
    expect(tab.locator("#faq-result")).to_be_empty()
    tab.screenshot(path=screenshots / "faq-error.png", full_page=True)
    assert rec.unexpected_errors() == []


def test_faq_picker_lists_only_faq_collections(page: tuple[Any, Recorder], server: str) -> None:
    from playwright.sync_api import expect

    tab, rec = page
    _open_tab(tab, "FAQ")
    expect(tab.locator("#faq-collection option")).to_have_count(1)
    assert tab.locator("#faq-collection option").get_attribute("value") == "support"
    listing = httpx.get(f"{server}/collections", timeout=10).json()["collections"]
    kinds = {c["name"]: c["kind"] for c in listing}  # other tests may add document collections
    assert kinds["docs"] == "documents" and kinds["support"] == "faq"
    assert [name for name, kind in kinds.items() if kind == "faq"] == ["support"]
    # Searching an FAQ's questions still works, so the search picker offers every collection.
    values = tab.locator("#search-collection option").evaluate_all("os => os.map(o => o.value)")
    assert sorted(values) == sorted(kinds)
    assert rec.unexpected_errors() == []


def test_api_key_is_kept_and_sent_as_bearer(page: tuple[Any, Recorder], server: str) -> None:
    from playwright.sync_api import expect

    tab, rec = page
    tab.fill("#api-key", "k-123")
    tab.locator("#api-key").press("Tab")  # "change" stores it and reloads the collections
    tab.reload()
    expect(tab.locator("#api-key")).to_have_value("k-123")
    rec.requests.clear()
    tab.fill("#search-query", "galaxy")
    tab.get_by_role("button", name="Search").click()
    expect(tab.locator(".hit-id").first).to_have_text("space-1")
    sent = [r for r in rec.requests if r.url.endswith("/collections/docs/search")]
    assert sent and sent[0].headers.get("authorization") == "Bearer k-123"
    tab.fill("#api-key", "")
    tab.locator("#api-key").press("Tab")
    rec.requests.clear()
    tab.get_by_role("button", name="Search").click()
    expect(tab.locator(".hit-id").first).to_have_text("space-1")
    sent = [r for r in rec.requests if r.url.endswith("/collections/docs/search")]
    assert sent and "authorization" not in sent[0].headers


def test_narrow_screen_has_no_sideways_scroll(browser: Any, server: str,
                                              screenshots: Path) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 360, "height": 780})
    try:
        tab = context.new_page()
        tab.goto(server + "/")
        tab.get_by_role("tab", name="Ranking").click()
        tab.get_by_role("button", name="Rank").click()
        expect(tab.locator("#ranking-chart .bar-row")).to_have_count(4)
        width = tab.evaluate("document.documentElement.scrollWidth")
        assert width <= 360, f"page is {width}px wide on a 360px screen"
        tab.screenshot(path=screenshots / "ranking-narrow.png", full_page=True)
    finally:
        context.close()
