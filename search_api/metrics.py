"""Prometheus metrics: requests and latency per route, encode batches, collection sizes.

With several workers (`serve --workers`), each worker's counters, histograms and gauges are
kept in files of a folder shared by all of them (prometheus_client's multiprocess mode, see
`share_between_workers`), so that /metrics answered by any worker reports the whole service.
What is read at scrape time (collection sizes, health) is read from the shared data dir.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, values
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STANDARD_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class Metrics:
    """One registry per app (tests build many apps; the global registry would clash)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._read_at_scrape: list[Collector] = []
        self.requests = Counter("semsearch_http_requests_total", "HTTP requests",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("semsearch_http_request_duration_seconds", "HTTP request latency",
                                 ["method", "route"], buckets=LATENCY_BUCKETS,
                                 registry=self.registry)
        self.encode_batch = Histogram("semsearch_encode_batch_size", "texts per encode call",
                                      ["model", "kind"], buckets=BATCH_BUCKETS,
                                      registry=self.registry)
        self.encode_seconds = Histogram("semsearch_encode_duration_seconds", "encode call time",
                                        ["model", "kind"], buckets=LATENCY_BUCKETS,
                                        registry=self.registry)

        self.model_batch = Histogram(
            "semsearch_model_batch_size",
            "texts per call that reaches a model (after the query cache and micro-batching)",
            ["model", "kind"], buckets=BATCH_BUCKETS, registry=self.registry)
        self.query_cache_hits = Counter("semsearch_query_cache_hits",
                                        "query embeddings served from the cache",
                                        registry=self.registry)
        self.query_cache_misses = Counter("semsearch_query_cache_misses",
                                          "query embeddings not in the cache", registry=self.registry)
        self.query_cache_entries = Gauge("semsearch_query_cache_entries",
                                         "query embeddings in the cache (summed over workers)",
                                         multiprocess_mode="livesum", registry=self.registry)

    def exposition(self) -> bytes:
        """The Prometheus text format: this process's metrics, or every worker's where shared."""
        folder = shared_folder()
        if folder is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(folder))  # type: ignore[no-untyped-call]
        for collector in self._read_at_scrape:
            registry.register(collector)
        return generate_latest(registry)

    def observe_query_cache(self, event: str, entries: int) -> None:
        """A query-cache event ("hit", "miss", "stored", "cleared") and the entries it leaves."""
        if event == "hit":
            self.query_cache_hits.inc()
        elif event == "miss":
            self.query_cache_misses.inc()
        self.query_cache_entries.set(entries)

    def _watch(self, collector: Collector) -> None:
        self.registry.register(collector)
        self._read_at_scrape.append(collector)

    def observe_encode(self, model: str, kind: str, batch_size: int, seconds: float) -> None:
        self.encode_batch.labels(model, kind).observe(batch_size)
        self.encode_seconds.labels(model, kind).observe(seconds)

    def observe_model(self, model: str, kind: str, batch_size: int, seconds: float) -> None:
        self.model_batch.labels(model, kind).observe(batch_size)

    def watch_collections(self, sizes: Callable[[], dict[str, tuple[int, int]]]) -> None:
        """Report `sizes()` -> {name: (documents, generation)} at every scrape."""
        self._watch(_CollectionSizes(sizes))

    def watch_health(self, health: Callable[[], dict[str, tuple[bool, int]]]) -> None:
        """Report `health()` -> {name: (available, index rebuilds)} at every scrape."""
        self._watch(_CollectionHealth(health))


class _CollectionHealth(Collector):
    def __init__(self, health: Callable[[], dict[str, tuple[bool, int]]]) -> None:
        self._health = health

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        available = GaugeMetricFamily(
            "semsearch_collection_available",
            "1 if the collection is served, 0 if its storage is damaged (reason in /readyz)",
            labels=["collection"])
        rebuilds = CounterMetricFamily(
            "semsearch_index_rebuilds",
            "index files found damaged or missing at load and rebuilt from SQLite",
            labels=["collection"])
        for name, (ok, rebuilt) in sorted(self._health().items()):
            available.add_metric([name], 1 if ok else 0)
            rebuilds.add_metric([name], rebuilt)
        yield available
        yield rebuilds


class _CollectionSizes(Collector):
    def __init__(self, sizes: Callable[[], dict[str, tuple[int, int]]]) -> None:
        self._sizes = sizes

    def collect(self) -> Iterator[GaugeMetricFamily]:
        documents = GaugeMetricFamily("semsearch_collection_documents",
                                      "documents in each loaded collection", labels=["collection"])
        generations = GaugeMetricFamily("semsearch_collection_generation",
                                        "committed generation loaded", labels=["collection"])
        for name, (count, generation) in sorted(self._sizes().items()):
            documents.add_metric([name], count)
            generations.add_metric([name], generation)
        yield documents
        yield generations


def share_between_workers(folder: Path) -> None:
    """Keep every metric made from now on in files under `folder`, read by all workers.

    Call in the master before the app (and its Metrics) is built and workers fork: each
    worker then writes files of its own pid (prometheus_client's multiprocess mode, chosen by
    PROMETHEUS_MULTIPROC_DIR; its value class is read when prometheus_client is imported,
    which has happened by now, so it is set here as well).
    """
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]


def shared_folder() -> Path | None:
    """The folder of the workers' metric files, if they share them."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return Path(folder) if folder and values.ValueClass is not values.MutexValue else None


def worker_exited(pid: int) -> None:
    """Drop a dead worker's live gauges (its counters stay in the totals)."""
    if shared_folder() is not None:
        mark_process_dead(pid)  # type: ignore[no-untyped-call]


class MetricsMiddleware:
    """Counts and times requests by route template (bounded labels: never the raw path)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        # Routing rewrites the scope (a mount extends root_path): keep what it matched on.
        path, root_path = scope["path"], scope.get("root_path", "")

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route, method = _route_template(scope, path, root_path), _method(scope)
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(
                time.perf_counter() - started)


def _method(scope: Scope) -> str:
    """Clients may send any method name: label only the standard ones, to bound the series."""
    method = str(scope.get("method", ""))
    return method if method in STANDARD_METHODS else "other"


def _route_template(scope: Scope, path: str, root_path: str) -> str:
    """The path template of the route that answered, else "unmatched".

    FastAPI records its own routes in the scope. A mount (/static) is found by the prefix it
    added to root_path, and the plain routes FastAPI adds itself (/docs, /openapi.json,
    /redoc) by matching the request again, so that only paths no route serves are unmatched.
    """
    route = scope.get("route")
    if route is not None:
        return str(getattr(route, "path", "unmatched"))
    mounted = str(scope.get("root_path", ""))
    if mounted != root_path and mounted.startswith(root_path):
        return mounted[len(root_path):]
    asked = {"type": "http", "path": path, "root_path": root_path, "method": scope.get("method")}
    router = getattr(scope.get("app"), "router", None)
    for candidate in getattr(router, "routes", ()):
        template = getattr(candidate, "path", None)
        if isinstance(candidate, BaseRoute) and template is not None \
                and candidate.matches(asked)[0] is not Match.NONE:
            return str(template)
    return "unmatched"
