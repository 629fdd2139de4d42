// semsearch web page: calls the JSON API of the server that serves it. No build step, no
// external requests. Text from users and collections only ever goes in through textContent.
"use strict";

const KEY_STORAGE = "semsearch.apiKey";

const $ = (id) => document.getElementById(id);

/** Make an element; string children become text nodes (never parsed as HTML). */
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (name === "class") node.className = value;
    else if (name === "style") node.style.cssText = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** An error carrying the API's {"error": {"code", "message"}} when there is one. */
class ApiError extends Error {
  constructor(message, code, status) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

function apiKey() {
  try {
    return localStorage.getItem(KEY_STORAGE) || "";
  } catch (_) {
    return "";  // storage may be disabled; then the key lives only in the field
  }
}

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  const key = $("api-key").value.trim();
  if (key) headers.Authorization = `Bearer ${key}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    throw new ApiError(`Cannot reach the server (${err.message}).`, "network", 0);
  }
  let data = null;
  try {
    data = await response.json();
  } catch (_) {
    data = null;  // not JSON: fall back to the status line below
  }
  if (!response.ok) {
    const error = data && data.error;
    if (error && error.message) throw new ApiError(error.message, error.code, response.status);
    throw new ApiError(`HTTP ${response.status} ${response.statusText}`.trim(), "http_error",
      response.status);
  }
  return data;
}

// ---- status and error lines ---------------------------------------------------------------

function showError(prefix, err) {
  const box = $(`${prefix}-error`);
  box.replaceChildren(el("span", { class: "error-message" }, err.message));
  if (err.code && err.status) {
    box.append(" ", el("span", { class: "error-code" }, `${err.code} · HTTP ${err.status}`));
  }
  box.hidden = false;
}

function clearMessages(prefix) {
  $(`${prefix}-error`).hidden = true;
  $(`${prefix}-error`).replaceChildren();
  $(`${prefix}-status`).textContent = "";
}

/** Run `work` with the form's button disabled; show the status line it returns, or its
 * error, under the form. */
async function busy(prefix, label, work) {
  const button = $(`${prefix}-submit`);
  clearMessages(prefix);
  button.disabled = true;
  $(`${prefix}-status`).textContent = label;
  try {
    const status = await work();
    $(`${prefix}-status`).textContent = status || "";
  } catch (err) {
    $(`${prefix}-status`).textContent = "";
    showError(prefix, err instanceof ApiError ? err : new ApiError(String(err), "", 0));
  } finally {
    button.disabled = false;
  }
}

/** The browser refused a submit (e.g. a number under its minimum): the form's old error
 * would read as the reason, so say the browser's instead, once, for the first bad field. */
function onInvalid(event) {
  const field = event.target;
  const form = field.form;
  if (!form || form.querySelector(":invalid") !== field) return;
  const prefix = form.id.replace(/-form$/, "");
  const label = form.querySelector(`label[for="${field.id}"]`);
  clearMessages(prefix);
  showError(prefix, new ApiError(`${label ? label.textContent : field.name}: ${field.validationMessage}`,
    "", 0));
}

const fmt = (x, digits) => Number(x).toFixed(digits);
const percent = (cosine) => Math.max(0, Math.min(1, cosine)) * 100;

// ---- tabs ---------------------------------------------------------------------------------

function setupTabs() {
  const tabs = Array.from(document.querySelectorAll('[role="tab"]'));
  const select = (tab, focus) => {
    for (const other of tabs) {
      const on = other === tab;
      other.setAttribute("aria-selected", String(on));
      other.tabIndex = on ? 0 : -1;
      $(other.getAttribute("aria-controls")).hidden = !on;
    }
    if (focus) tab.focus();
  };
  tabs.forEach((tab, i) => {
    tab.addEventListener("click", () => select(tab, false));
    tab.addEventListener("keydown", (event) => {
      const moves = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: tabs.length - 1 };
      if (!(event.key in moves)) return;
      event.preventDefault();
      select(tabs[(moves[event.key] + tabs.length) % tabs.length], true);
    });
  });
}

// ---- collections --------------------------------------------------------------------------

function fillPicker(select, collections, emptyLabel) {
  const previous = select.value;
  select.replaceChildren();
  for (const c of collections) {
    const label = c.error ? `${c.name} (unavailable)` : `${c.name} · ${c.count ?? "?"} docs`;
    const option = el("option", { value: c.name }, label);
    if (c.error) option.disabled = true;
    select.append(option);
  }
  if (!collections.length) select.append(el("option", { value: "" }, emptyLabel));
  if (collections.some((c) => c.name === previous)) select.value = previous;
}

async function loadCollections() {
  const box = $("global-error");
  try {
    const data = await api("GET", "/collections");
    const all = data.collections || [];
    fillPicker($("search-collection"), all, "no collections yet");
    fillPicker($("faq-collection"), all.filter((c) => c.kind === "faq"),
      "no FAQ collections yet (semsearch faq import)");
    box.hidden = true;
  } catch (err) {
    box.textContent = `Could not list collections: ${err.message}`;
    box.hidden = false;
  }
}

// ---- search -------------------------------------------------------------------------------

/** What a hit's score is in `mode` (the API's `mode`), with the channels behind a fused one,
 *  and the cross-encoder's score where the hit was reranked (the order then follows it). */
function scoreTitle(mode, hit) {
  const reranked = hit.rerank_score == null ? ""
    : `; reranked, cross-encoder score ${fmt(hit.rerank_score, 4)} (0..1)`;
  return firstStageTitle(mode, hit) + reranked;
}

function firstStageTitle(mode, hit) {
  if (mode === "dense") return `cosine similarity ${fmt(hit.score, 4)}`;
  if (mode === "lexical") return `BM25 score ${fmt(hit.score, 2)} (keyword match, not a cosine)`;
  const dense = hit.dense_score == null ? "not among the dense channel's hits"
    : `cosine ${fmt(hit.dense_score, 4)}`;
  const lexical = hit.lexical_score == null ? "no keyword match" : `BM25 ${fmt(hit.lexical_score, 2)}`;
  return `fused hybrid score ${fmt(hit.score, 4)} (0..1): ${dense}, ${lexical}`;
}

function toggleText(button) {
  const hit = button.closest(".hit");
  const open = hit.classList.toggle("expanded");
  button.setAttribute("aria-expanded", String(open));
  button.textContent = open ? "Show less" : "Show full text";
}

function renderHits(hits, mode) {
  const list = $("search-results");
  list.replaceChildren();
  const texts = [];
  hits.forEach((hit, i) => {
    const passage = passageBody(hit);
    const text = passage ? null : el("p", { class: "hit-text", id: `hit-text-${i}` }, hit.text);
    if (text) texts.push(text);
    list.append(el("li", { class: "hit" },
      el("div", { class: "hit-head" },
        el("span", { class: "hit-id" }, hit.id),
        el("span", { class: "hit-score", title: scoreTitle(mode, hit) }, fmt(hit.score, 2))),
      passage || text));
  });
  // Texts are clamped to a few lines by the stylesheet; measure them all, then add buttons
  // (reading and writing layout in turn would lay the page out once per hit).
  const clipped = texts.filter((text) => text.scrollHeight > text.clientHeight + 1);
  for (const text of clipped) {
    const button = el("button", { type: "button", class: "hit-more", "aria-expanded": "false",
      "aria-controls": text.id }, "Show full text");
    button.addEventListener("click", () => toggleText(button));
    text.after(button);
  }
}

/** A long document's best passage highlighted in context, the whole document on demand. */
function passageBody(hit) {
  const p = hit.passage;
  if (!p || (p.start === 0 && p.end >= hit.text.length)) return null;  // one passage: the text
  const marked = () => el("mark", { class: "hit-passage" }, p.text);
  const title = hit.metadata && typeof hit.metadata.title === "string" ? hit.metadata.title : "";
  return el("div", { class: "hit-body" },
    title ? el("div", { class: "hit-title" }, title) : "",
    el("p", { class: "hit-text" }, p.start > 0 ? "… " : "", marked(),
      p.end < hit.text.length ? " …" : ""),
    el("details", { class: "hit-full" },
      el("summary", {}, `Full document (passage ${p.index + 1}, characters ${p.start}–${p.end})`),
      el("p", { class: "hit-text" }, hit.text.slice(0, p.start), marked(), hit.text.slice(p.end))));
}

function searchStatus(data) {
  const n = data.hits.length;
  if (!n) return "No results.";
  return `${n} ${n === 1 ? "result" : "results"} in ${fmt(data.took_ms, 0)} ms ` +
    `(${data.collection}, ${data.mode}, ${data.model})`;
}

async function onSearch(event) {
  event.preventDefault();
  const name = $("search-collection").value;
  const topK = Number.parseInt($("search-top-k").value, 10);
  const mode = $("search-mode").value;
  $("search-results").replaceChildren();
  await busy("search", "Searching…", async () => {
    if (!name) throw new ApiError("Choose a collection first (none are listed).", "", 0);
    const body = { query: $("search-query").value, top_k: Number.isNaN(topK) ? 5 : topK };
    const data = await api("POST", `/collections/${encodeURIComponent(name)}/search`,
      { ...body, ...(mode ? { mode } : {}), rerank: $("search-rerank").checked });
    renderHits(data.hits, data.mode);
    return searchStatus(data);
  });
}

// ---- similarity ---------------------------------------------------------------------------

function renderGauge(similarity) {
  const pct = percent(similarity);
  $("gauge-fill").setAttribute("stroke-dasharray", `${fmt(pct, 2)} 100`);
  $("gauge-value").textContent = `${fmt(pct, 1)}%`;
  $("gauge-cosine").textContent = `cosine ${fmt(similarity, 4)}`;
  $("gauge").dataset.similarity = String(similarity);
  $("gauge").hidden = false;
}

/** The request body with the chosen model; none chosen lets the server pick by language. */
function withModel(selectId, body) {
  const model = $(selectId).value;
  return model ? { ...body, model } : body;
}

async function loadModels() {
  let data;
  try {
    data = await api("GET", "/v1/models");
  } catch (_) {
    return;  // e.g. a key is needed first: automatic choice still works
  }
  for (const select of document.querySelectorAll(".model-select")) {
    const chosen = select.value;
    select.replaceChildren(select.options[0]);
    for (const card of data.data || []) select.append(el("option", { value: card.id }, card.id));
    select.value = chosen;
  }
}

async function onSimilarity(event) {
  event.preventDefault();
  $("gauge").hidden = true;
  await busy("similarity", "Comparing…", async () => {
    const data = await api("POST", "/similarity", withModel("similarity-model",
      { sentence_a: $("sentence-a").value, sentence_b: $("sentence-b").value }));
    renderGauge(data.similarity);
    $("gauge-model").textContent = `model ${data.model}`;
  });
}

// ---- ranking ------------------------------------------------------------------------------

function renderRanking(candidates, scores) {
  const chart = $("ranking-chart");
  chart.replaceChildren();
  const order = candidates.map((text, index) => ({ text, index, score: scores[index] }))
    .sort((a, b) => b.score - a.score);
  for (const item of order) {
    chart.append(el("li", { class: "bar-row", "data-index": String(item.index),
      "data-score": String(item.score) },
      el("span", { class: "bar-label" }, `${item.index + 1}. ${item.text}`),
      el("span", { class: "bar-track" },
        el("span", { class: "bar", style: `width: ${fmt(percent(item.score), 2)}%` })),
      el("span", { class: "bar-value" }, fmt(item.score, 3))));
  }
}

async function onRanking(event) {
  event.preventDefault();
  const candidates = $("ranking-candidates").value.split("\n").map((s) => s.trim())
    .filter((s) => s.length);
  $("ranking-chart").replaceChildren();
  await busy("ranking", "Ranking…", async () => {
    const data = await api("POST", "/similarity", withModel("ranking-model",
      { source_sentence: [$("ranking-source").value], sentences_to_compare: candidates }));
    renderRanking(candidates, data.scores);
    $("ranking-model-used").textContent = `Scored by ${data.model}.`;
  });
}

// ---- FAQ ----------------------------------------------------------------------------------

function renderFaq(data) {
  const box = $("faq-result");
  box.replaceChildren();
  if (data.matched) {
    box.append(el("div", { class: "faq-match" },
      el("p", { class: "faq-intent" }, el("strong", {}, "Intent: "), data.intent ?? ""),
      el("p", { class: "faq-answer" }, data.answer ?? ""),
      el("p", { class: "note" },
        `score ${fmt(data.score, 2)} (threshold ${fmt(data.threshold, 2)})`)));
    return;
  }
  box.append(el("p", { class: "faq-nomatch" },
    el("strong", {}, "No match"),
    ` (best score ${data.score == null ? "–" : fmt(data.score, 2)}, threshold ${fmt(data.threshold, 2)})`));
  const candidates = data.candidates || [];
  if (candidates.length) {
    box.append(el("p", {}, "Best candidates:"), el("ol", { class: "faq-candidates" },
      ...candidates.map((c) => el("li", {},
        el("span", { class: "faq-cand-intent" }, c.intent), " — ",
        el("span", { class: "faq-cand-question" }, c.question), " ",
        el("span", { class: "hit-score" }, fmt(c.score, 2))))));
  }
}

async function onFaq(event) {
  event.preventDefault();
  const name = $("faq-collection").value;
  $("faq-result").replaceChildren();
  await busy("faq", "Matching…", async () => {
    if (!name) throw new ApiError("Choose an FAQ first (none are listed).", "", 0);
    const data = await api("POST", `/faq/${encodeURIComponent(name)}/match`,
      { query: $("faq-query").value, top_k: 3 });
    renderFaq(data);
  });
}

// ---- start --------------------------------------------------------------------------------

function start() {
  setupTabs();
  const keyField = $("api-key");
  keyField.value = apiKey();
  keyField.addEventListener("change", () => {
    try {
      localStorage.setItem(KEY_STORAGE, keyField.value.trim());
    } catch (_) {
      // storage disabled: the key still works for this page
    }
    loadCollections();
    loadModels();
  });
  $("search-form").addEventListener("submit", onSearch);
  $("similarity-form").addEventListener("submit", onSimilarity);
  $("ranking-form").addEventListener("submit", onRanking);
  $("faq-form").addEventListener("submit", onFaq);
  for (const form of document.querySelectorAll("form")) {
    form.addEventListener("invalid", onInvalid, true);  // "invalid" does not bubble
  }
  loadCollections();
  loadModels();
}

document.addEventListener("DOMContentLoaded", start);
