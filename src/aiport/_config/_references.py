"""Checks across settings: aliases, the model ids that point at providers, and the
backends that need ``redis_url``."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from aiport._config._problems import Loc, Located, format_path

__all__ = ["reference_problems"]


def reference_problems(data: Mapping[str, Any]) -> list[Located]:
    """Problems across settings: aliases and the model ids that point at providers.

    Works on validated settings as well as on raw input (anything malformed is skipped, the
    field validation reports it), so these problems are reported along with field errors.
    """
    located: list[Located] = []
    raw_providers = data.get("providers")
    providers: Mapping[Any, Any] = raw_providers if isinstance(raw_providers, Mapping) else {}
    names = [name for name in providers if isinstance(name, str)]
    defined: dict[str, Loc] = {}

    def check_alias(alias: Any, loc: Loc) -> None:
        if not isinstance(alias, str):
            return
        if not alias.strip():
            located.append(Located(loc, "an alias must not be empty"))
        elif ":" in alias:
            located.append(
                Located(loc, f"alias {alias!r} contains ':', which separates provider and model")
            )
        elif alias in names:
            located.append(Located(loc, f"alias {alias!r} is also the name of a provider"))
        elif alias in defined:
            located.append(
                Located(loc, f"alias {alias!r} is already defined at {format_path(defined[alias])}")
            )
        else:
            defined[alias] = loc

    def check_id(model_id: Any, loc: Loc) -> None:
        if not isinstance(model_id, str):
            return
        if not model_id.strip():
            located.append(Located(loc, "a model id must not be empty"))
            return
        if model_id != model_id.strip():
            located.append(
                Located(loc, f"model id {model_id!r} must not start or end with whitespace")
            )
            return
        provider, sep, model = model_id.partition(":")
        if not sep:
            return
        if provider not in names:
            known = ", ".join(repr(n) for n in sorted(names)) if names else "none"
            close = difflib.get_close_matches(provider, names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            located.append(
                Located(
                    loc,
                    f"model id {model_id!r} names provider {provider!r}, which is not configured "
                    f"(configured: {known}){hint}",
                )
            )
        elif not model:
            located.append(Located(loc, f"model id {model_id!r} names no model after ':'"))

    for pname, provider in providers.items():
        models = provider.get("models") if isinstance(provider, Mapping) else None
        if not isinstance(models, Mapping):
            continue
        for mname, model in models.items():
            if not isinstance(model, Mapping):
                continue
            base: Loc = ("providers", pname, "models", mname)
            aliases = model.get("aliases")
            if isinstance(aliases, list | tuple):
                for i, alias in enumerate(aliases):
                    check_alias(alias, (*base, "aliases", i))
            fallbacks = model.get("fallbacks")
            if isinstance(fallbacks, list | tuple):
                for i, fallback in enumerate(fallbacks):
                    check_id(fallback, (*base, "fallbacks", i))

    top_aliases = data.get("aliases")
    if isinstance(top_aliases, Mapping):
        for alias, target in top_aliases.items():
            check_alias(alias, ("aliases", alias))
            check_id(target, ("aliases", alias))
    check_id(data.get("default_model"), ("default_model",))

    routers = data.get("routers")
    if isinstance(routers, Mapping):
        for rname, router in routers.items():
            check_alias(rname, ("routers", rname))
            if not isinstance(router, Mapping):
                continue
            for field in ("deployments", "fallbacks"):
                ids = router.get(field)
                if isinstance(ids, list | tuple):
                    for i, model_id in enumerate(ids):
                        check_id(model_id, ("routers", rname, field, i))

    cache = data.get("cache")
    if isinstance(cache, Mapping) and cache.get("backend") == "redis" and not data.get("redis_url"):
        located.append(Located(("cache", "backend"), "the 'redis' backend needs redis_url"))
    for loc, table in _rate_limit_tables(data):
        if table.get("backend") == "redis" and not data.get("redis_url"):
            located.append(Located((*loc, "backend"), "the 'redis' backend needs redis_url"))
    return located


def _rate_limit_tables(data: Mapping[str, Any]) -> list[tuple[Loc, Mapping[str, Any]]]:
    """Every rate_limit table of the configuration, with its location."""
    found: list[tuple[Loc, Mapping[str, Any]]] = []
    top = data.get("rate_limit")
    if isinstance(top, Mapping):
        found.append((("rate_limit",), top))
    providers = data.get("providers")
    if isinstance(providers, Mapping):
        for pname, provider in providers.items():
            if not isinstance(provider, Mapping):
                continue
            table = provider.get("rate_limit")
            if isinstance(table, Mapping):
                found.append((("providers", pname, "rate_limit"), table))
            models = provider.get("models")
            if isinstance(models, Mapping):
                for mname, model in models.items():
                    table = model.get("rate_limit") if isinstance(model, Mapping) else None
                    if isinstance(table, Mapping):
                        found.append((("providers", pname, "models", mname, "rate_limit"), table))
    return found
