"""Provider types beyond aiport's built-in rows: the OpenAI-compatible presets and
third-party plug-ins.

A plug-in is a distribution that declares an entry point in the group
``aiport.providers``::

    [project.entry-points."aiport.providers"]
    acme = "aiport_acme:PROVIDER_TYPE"

The entry point's name is the provider type's name (what ``type = "acme"`` in a config
asks for); its object is a :class:`~aiport.ProviderType`, or a callable returning one.
Nothing is imported until needed: ``ProviderRegistry.default()`` holds a
:class:`ProviderTypeTable`, which looks for a preset, then a plug-in, only when a type
that is not built in is asked for, and loads everything only when the types are listed.
A plug-in that fails to load never breaks the others: its type is still listed, and
building a provider of it raises a ``ConfigError`` naming the distribution and the entry
point, with the import error.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from aiport._errors import ConfigError, ConfigProblem
from aiport._registry import ProviderContext, ProviderType

if TYPE_CHECKING:
    from _collections_abc import dict_items, dict_keys, dict_values

__all__ = ["ENTRY_POINT_GROUP", "EntryPointsFunction", "ProviderTypeTable"]

#: The entry-point group of provider plug-ins (entry point name = provider type name).
ENTRY_POINT_GROUP = "aiport.providers"
#: Lists the entry points of a group, like ``importlib.metadata.entry_points(group=...)``.
EntryPointsFunction = Callable[..., Iterable[Any]]

_TYPE_NAME = re.compile(r"[a-z0-9_-]+")
logger = logging.getLogger("aiport")


class _PluginFailure:
    """The factory of a plug-in type that could not be loaded: raises its reason."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __call__(self, context: ProviderContext) -> Any:
        raise ConfigError([ConfigProblem(f"providers.{context.name}.type", self.reason)])


def _origin(entry_point: Any) -> str:
    """``entry point 'acme = aiport_acme:TYPE' of distribution 'aiport-acme 1.0'``."""
    where = (
        f"entry point '{getattr(entry_point, 'name', '?')} = {getattr(entry_point, 'value', '?')}'"
    )
    dist = getattr(entry_point, "dist", None)
    if dist is not None:
        try:
            name = dist.metadata["Name"] or getattr(dist, "name", None)
            version = dist.version
        except Exception:  # a distribution with unreadable metadata
            name, version = getattr(dist, "name", None), None
        if name:
            where += f" of distribution '{name}{' ' + version if version else ''}'"
    return where


class ProviderTypeTable(dict[str, ProviderType]):
    """The provider types of a registry: built-in ones, then presets and plug-ins on demand.

    A ``dict`` (so ``registry.types`` keeps working as one) whose lookups of a missing name
    (``in``, ``[]``, ``get``) first try the OpenAI-compatible presets, then a plug-in of
    that name; listing it (iteration, ``keys``, ``values``, ``items``, ``len``) loads every
    preset and plug-in first. Types added with ``[]=`` (``ProviderRegistry.register``) win
    over presets and plug-ins of the same name; presets win over plug-ins, and built-in
    names are never taken by a plug-in.

    Args:
        types: the built-in types.
        presets: whether to offer the shipped OpenAI-compatible presets.
        plugins: whether to look for plug-ins in the ``aiport.providers`` group.
        entry_points: lists entry points instead of ``importlib.metadata.entry_points``
            (called as ``entry_points(group=...)``).
    """

    def __init__(
        self,
        types: Iterable[ProviderType] = (),
        *,
        presets: bool = True,
        plugins: bool = True,
        entry_points: EntryPointsFunction | None = None,
    ) -> None:
        super().__init__((t.name, t) for t in types)
        self._builtin = frozenset(dict.keys(self))
        self._presets_enabled = presets
        self._plugins_enabled = plugins
        self._entry_points = entry_points
        self._found: dict[str, list[Any]] | None = None  # plug-in name -> entry points
        self._complete = False
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ lookups

    def __missing__(self, name: str) -> ProviderType:
        found = self._find(name)
        if found is None:
            raise KeyError(name)
        return found

    def __contains__(self, name: object) -> bool:
        if dict.__contains__(self, name):
            return True
        return isinstance(name, str) and self._find(name) is not None

    def get(self, name: str, default: Any = None) -> Any:
        if dict.__contains__(self, name):
            return dict.__getitem__(self, name)
        found = self._find(name)
        return default if found is None else found

    def _find(self, name: str) -> ProviderType | None:
        """Load the preset or plug-in called ``name`` into the table (``None``: neither)."""
        with self._lock:
            if dict.__contains__(self, name):
                return dict.__getitem__(self, name)
            if self._complete:
                return None
            found = self._preset(name)
            if found is None:
                entry_points = self._plugin_entry_points().get(name)
                if entry_points:
                    found = self._load_plugin(name, entry_points)
            if found is not None:
                dict.__setitem__(self, name, found)
            return found

    # ------------------------------------------------------------------ listing

    def load_all(self) -> None:
        """Load every preset and plug-in (what listing the types does)."""
        with self._lock:
            if self._complete:
                return
            if self._presets_enabled:
                from aiport.providers._presets import preset_types

                for name, provider_type in preset_types().items():
                    if not dict.__contains__(self, name):
                        dict.__setitem__(self, name, provider_type)
            for name, entry_points in self._plugin_entry_points().items():
                if not dict.__contains__(self, name):
                    dict.__setitem__(self, name, self._load_plugin(name, entry_points))
            self._complete = True

    def __iter__(self) -> Iterator[str]:
        self.load_all()
        return dict.__iter__(self)

    def __len__(self) -> int:
        self.load_all()
        return dict.__len__(self)

    def keys(self) -> dict_keys[str, ProviderType]:
        self.load_all()
        return dict.keys(self)

    def values(self) -> dict_values[str, ProviderType]:
        self.load_all()
        return dict.values(self)

    def items(self) -> dict_items[str, ProviderType]:
        self.load_all()
        return dict.items(self)

    def __repr__(self) -> str:
        return f"ProviderTypeTable({sorted(dict.keys(self))!r}, complete={self._complete})"

    # ------------------------------------------------------------------ presets

    def _preset(self, name: str) -> ProviderType | None:
        if not self._presets_enabled:
            return None
        from aiport.providers._presets import load_presets

        preset = load_presets().get(name)
        return preset.provider_type() if preset is not None else None

    # ------------------------------------------------------------------ plug-ins

    def _plugin_entry_points(self) -> dict[str, list[Any]]:
        """The plug-in entry points by type name (listed once per table, imported never)."""
        if self._found is not None:
            return self._found
        found: dict[str, list[Any]] = {}
        if self._plugins_enabled:
            list_entry_points = self._entry_points
            if list_entry_points is None:
                from importlib.metadata import entry_points

                list_entry_points = entry_points
            try:
                candidates = list(list_entry_points(group=ENTRY_POINT_GROUP))
            except Exception:  # one broken distribution must not break every provider
                logger.warning(
                    "could not list the %s entry points", ENTRY_POINT_GROUP, exc_info=True
                )
                candidates = []
            seen: set[tuple[str, str]] = set()
            for entry_point in candidates:
                name = str(getattr(entry_point, "name", ""))
                if not _TYPE_NAME.fullmatch(name) or name in self._builtin:
                    logger.warning(
                        "ignoring the provider plug-in %s: its name is not a valid provider "
                        "type name, or is a built-in type's",
                        _origin(entry_point),
                    )
                    continue
                key = (_origin(entry_point), str(getattr(entry_point, "value", "")))
                if key not in seen:  # the same distribution found twice on sys.path
                    seen.add(key)
                    found.setdefault(name, []).append(entry_point)
        self._found = found
        return found

    @staticmethod
    def _load_plugin(name: str, entry_points: list[Any]) -> ProviderType:
        """The type an entry point gives, or a type whose factory explains the failure."""
        if len(entry_points) > 1:
            origins = "; ".join(_origin(ep) for ep in entry_points)
            reason = (
                f"provider type {name!r} is offered by several plug-ins ({origins}); "
                "uninstall all but one"
            )
            return _failed(name, reason)
        [entry_point] = entry_points
        origin = _origin(entry_point)
        try:
            target = entry_point.load()
            provider_type = target if isinstance(target, ProviderType) else None
            if provider_type is None and callable(target):
                provider_type = target()
        except Exception as exc:
            reason = f"the provider plug-in {origin} failed to load: {type(exc).__name__}: {exc}"
            return _failed(name, reason)
        if not isinstance(provider_type, ProviderType):
            reason = (
                f"the provider plug-in {origin} gives {type(provider_type).__name__}, not an "
                "aiport.ProviderType (or a callable returning one)"
            )
            return _failed(name, reason)
        if provider_type.name != name:
            reason = (
                f"the provider plug-in {origin} gives a provider type named "
                f"{provider_type.name!r}; its entry point must have the same name"
            )
            return _failed(name, reason)
        return provider_type


def _failed(name: str, reason: str) -> ProviderType:
    logger.warning("%s", reason)
    return ProviderType(
        name=name,
        factory=_PluginFailure(reason),
        description=f"(plug-in unavailable: {reason})",
        requires_api_key=False,
    )
