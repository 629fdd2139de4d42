"""Which models an HTTP client may name: the built-ins, the server default, ones in use."""

from __future__ import annotations

from indexer.encoding import BUILTIN_MODELS, UnknownModel, alias_name, resolve_model_name
from search_api.config import ApiSettings
from search_api.services.registry import CollectionRegistry
from storage import SemsearchError


def allowed_models(settings: ApiSettings, collections: CollectionRegistry) -> set[str]:
    """Canonical names of the models a request may use.

    A client can never make the server load an arbitrary folder or hub id: only the
    built-ins, SEMSEARCH_MODEL, SEMSEARCH_CHINESE_MODEL and the models that existing
    collections were built with.

    Args:
        settings: service settings (for the default model).
        collections: the open collections registry (its data dir is scanned).

    Returns:
        The allowed canonical model names.
    """
    allowed = {*BUILTIN_MODELS, resolve_model_name(settings.model),
               resolve_model_name(settings.chinese_model)}
    for name in collections.names():
        try:
            allowed.add(collections.info(name).model.name)
        except SemsearchError:  # a broken collection is reported elsewhere; it allows nothing
            continue
    return allowed


def check_allowed(model: str, allowed: set[str]) -> str:
    """The canonical name of `model` if it is allowed.

    Args:
        model: the name a client sent (alias, canonical name or path).
        allowed: the result of `allowed_models`.

    Returns:
        The canonical model name.

    Raises:
        UnknownModel: the model is not available on this server.
    """
    wanted = alias_name(model)
    if wanted not in allowed:
        raise UnknownModel(f"model '{model}' is not available on this server; available: "
                           f"{', '.join(sorted(allowed))} (SEMSEARCH_MODEL sets the default)")
    return wanted


def resolve_allowed(model: str, settings: ApiSettings, collections: CollectionRegistry) -> str:
    """Like `check_allowed`, but a built-in or the default model needs no scan of the data dir.

    Args:
        model: the name a client sent.
        settings: service settings.
        collections: the open collections registry.

    Returns:
        The canonical model name.
    """
    wanted = alias_name(model)
    if wanted in BUILTIN_MODELS or wanted in (resolve_model_name(settings.model),
                                               resolve_model_name(settings.chinese_model)):
        return wanted  # the hot path of /similarity and /v1/embeddings: no SQLite reads
    return check_allowed(model, allowed_models(settings, collections))
