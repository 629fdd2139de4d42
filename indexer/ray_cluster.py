"""Joining or starting Ray, and sizing the pool of encoder actors (CPUs or GPUs) on it."""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from indexer.encoding import Encoder
from indexer.encoding.devices import AUTO, CPU, CUDA, check_device
from storage import SemsearchError

INSTALL_HINT = "pip install 'semsearch[ray]'"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # Ray colours the worker name in tracebacks
# Ray's own chatter (auth notice, "Starting execution", plans) is noise next to our progress bar.
_QUIET_LOGGERS = ("ray", "ray.data")


class EngineUnavailable(SemsearchError):
    """The chosen engine cannot run here (Ray is not installed)."""

    code = "engine_unavailable"
    status = 400


@dataclass(frozen=True, kw_only=True)
class RayEngine:
    """Where and how the encoder actors run.

    Attributes:
        load_encoder: builds the encoder inside each actor, called with `threads=` the actor's
            CPUs (picklable, e.g. a functools.partial of indexer.encoding.load_encoder); the
            model must be loadable on every node.
        address: a running cluster ("auto", "ray://head:10001", "head:6379"); None starts a
            local Ray with one CPU per core, shut down when the job ends.
        actors: size of the encoder pool; None means one per `actor_cpus` CPUs of the cluster,
            or one per GPU where the actors run on GPUs.
        actor_cpus: CPUs reserved by each actor; its encoder runs that many threads.
        device: auto, cpu or cuda. `auto` places one actor per GPU where the cluster has GPUs
            (fp16 there) and runs on CPUs otherwise; `cuda` requires GPUs in the cluster.
        gpu_backend: the backend asked for: auto or torch may run on GPUs (fp16 either way);
            a CPU-only one (bf16, onnx, ...) keeps `auto` on the CPUs.
    """

    load_encoder: Callable[..., Encoder]
    address: str | None = None
    actors: int | None = None
    actor_cpus: float = 1.0
    device: str = AUTO
    gpu_backend: str = AUTO


@dataclass(frozen=True)
class ActorPlacement:
    """How many encoder actors run, what each reserves, and what its encoder loads with."""

    actors: int
    num_cpus: float
    num_gpus: float
    load_options: dict[str, Any]


def place_actors(engine: RayEngine, resources: dict[str, float]) -> ActorPlacement:
    """The actor pool for a cluster with `resources` (Ray's cluster_resources()).

    Raises:
        EngineUnavailable: --device cuda on a cluster without GPUs, or a CPU-only backend
            asked for on GPUs.
    """
    device = check_device(engine.device)
    gpus = float(resources.get("GPU", 0.0))
    if device == CUDA and gpus < 1:
        raise EngineUnavailable("--device cuda: the Ray cluster has no GPUs; use --device cpu "
                                "(or auto), or join a cluster whose nodes have GPUs")
    cpu_only_backend = engine.gpu_backend not in (AUTO, "torch")
    if device == CUDA and cpu_only_backend:
        raise EngineUnavailable(f"backend '{engine.gpu_backend}' runs on the CPU only; on the "
                                "cluster's GPUs use --backend auto or torch, or --device cpu")
    if device == CPU or gpus < 1 or cpu_only_backend:
        cpus = float(resources.get("CPU", 1.0))
        actors = engine.actors or max(1, int(cpus // engine.actor_cpus))
        return ActorPlacement(actors, engine.actor_cpus, 0.0, {"device": CPU})
    actors = engine.actors or int(gpus)
    # More actors than GPUs share them; each Ray actor then sees its GPU as cuda:0.
    return ActorPlacement(actors, engine.actor_cpus, min(1.0, gpus / actors),
                          {"device": CUDA, "backend": engine.gpu_backend})


def require_ray() -> Any:
    """Import Ray and Ray Data, or fail with what to install.

    Returns:
        The `ray` module (with `ray.data` loaded).

    Raises:
        EngineUnavailable: Ray Data is not importable.
    """
    try:
        import ray
        import ray.data  # noqa: F401  (the engine needs the Data library, not just core)
    except ImportError as exc:
        raise EngineUnavailable(
            f"--engine ray needs Ray Data, which is not installed ({exc}): {INSTALL_HINT}"
        ) from exc
    return ray


def check_reachable(address: str) -> None:
    """Fail fast on a HOST:PORT nobody listens on (ray.init would retry it for minutes)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "auto", "local" and the like: ray.init resolves them itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as exc:
        raise EngineUnavailable(f"cannot reach Ray at {address} ({exc}); start it there with "
                                "`ray start --head`, or fix --ray-address / SEMSEARCH_RAY_ADDRESS"
                                ) from exc


@contextmanager
def quiet_ray() -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in _QUIET_LOGGERS]
    levels = [log.level for log in loggers]
    for log in loggers:
        log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for log, level in zip(loggers, levels, strict=True):
            log.setLevel(level)


def last_line(exc: BaseException) -> str:
    """What actually failed: Ray's message holds the worker's traceback, chained ones first."""
    innermost = str(exc).split("The above exception was the direct cause")[0]
    lines = [_ANSI.sub("", line).strip() for line in innermost.splitlines()]
    lines = [line for line in lines if line]
    return lines[-1] if lines else type(exc).__name__
