"""Which models an HTTP client may name: the built-ins, the server default, ones in use,
and the client-side names SEMSEARCH_SERVED_MODEL_NAMES maps onto them."""

from __future__ import annotations

from dataclasses import dataclass

from indexer.encoding import BUILTIN_MODELS, UnknownModel, alias_name, resolve_model_name
from search_api.config import ApiSettings
from search_api.errors import ModelNotFound
from search_api.services.registry import CollectionRegistry
from storage import SemsearchError


@dataclass(frozen=True, kw_only=True)
class ModelEntry:
    """A name a client may send, and the canonical model that answers it."""

    id: str
    root: str


def served_model(model: str, settings: ApiSettings) -> str:
    """The model behind a client-side name (SEMSEARCH_SERVED_MODEL_NAMES), else `model` itself."""
    return settings.served_model_names.get(model.strip(), model)


def _configured(settings: ApiSettings) -> dict[str, str]:
    """The models the operator named (defaults, served-name targets): as written -> canonical."""
    names = [settings.model, settings.chinese_model, *settings.served_model_names.values()]
    return {alias_name(name): resolve_model_name(name) for name in names}


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
    allowed = {*BUILTIN_MODELS, *_configured(settings).values()}
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
                           f"{', '.join(sorted(allowed))} (SEMSEARCH_MODEL sets the default; "
                           "SEMSEARCH_SERVED_MODEL_NAMES maps other names onto these)")
    return wanted


def resolve_allowed(model: str, settings: ApiSettings, collections: CollectionRegistry) -> str:
    """Like `check_allowed`, after mapping a served name; a built-in or a configured model
    needs no scan of the data dir.

    Args:
        model: the name a client sent.
        settings: service settings.
        collections: the open collections registry.

    Returns:
        The canonical model name.
    """
    model = served_model(model, settings)
    wanted = alias_name(model)
    if wanted in BUILTIN_MODELS:
        return wanted  # the hot path of /similarity and /v1/embeddings: no SQLite reads
    configured = _configured(settings)  # a relative path's canonical name is absolute
    if wanted in configured or wanted in configured.values():
        return configured.get(wanted, wanted)
    return check_allowed(model, allowed_models(settings, collections))


def model_entries(settings: ApiSettings, collections: CollectionRegistry) -> list[ModelEntry]:
    """Every name a client may send: canonical models, then served names, each sorted.

    Args:
        settings: service settings.
        collections: the open collections registry.

    Returns:
        One entry per name, with the canonical model that answers it.
    """
    canonical = [ModelEntry(id=name, root=name)
                 for name in sorted(allowed_models(settings, collections))]
    served = [ModelEntry(id=name, root=resolve_model_name(target))
              for name, target in sorted(settings.served_model_names.items())]
    return canonical + served


def find_model(model_id: str, settings: ApiSettings, collections: CollectionRegistry) -> ModelEntry:
    """The entry of one name a client may send (a served name, canonical name or alias).

    Args:
        model_id: the name, as the client sent it.
        settings: service settings.
        collections: the open collections registry.

    Returns:
        The name as sent, and the canonical model behind it.

    Raises:
        ModelNotFound: no such model on this server.
    """
    try:
        return ModelEntry(id=model_id, root=resolve_allowed(model_id, settings, collections))
    except UnknownModel as exc:
        raise ModelNotFound(exc.message) from exc
