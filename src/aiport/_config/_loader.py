"""The loader: reads the sources of a configuration, layers them and validates the result.

The layers, later ones winning, are the file (or mapping), the active profile, the
``AIPORT_*`` variables and the explicit overrides; without configured providers, the
standard key variables (``OPENAI_API_KEY``...) add theirs. Every problem is reported
with the layer it came from.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from aiport._config._base import validate_located
from aiport._config._env import env_layer
from aiport._config._layering import Layer, deep_merge, plain_data, sourced_problem
from aiport._config._models import AgentConfig
from aiport._config._problems import CrossFieldError, format_path
from aiport._errors import ConfigError, ConfigProblem

__all__ = ["CONFIG_FILE_NAMES", "load_config"]

#: The configuration files looked for in the working directory, in this order.
CONFIG_FILE_NAMES: tuple[str, ...] = ("aiport.toml", "aiport.yaml", "aiport.yml")


def load_config(
    source: AgentConfig | Mapping[str, Any] | str | os.PathLike[str] | None = None,
    *,
    environment: str | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    cwd: Path | None = None,
) -> AgentConfig:
    """Load, layer and validate a configuration.

    Args:
        source: an :class:`AgentConfig` (returned as it is, with ``overrides`` applied if
            any); a mapping; the path of a ``.toml``, ``.yaml`` or ``.yml`` file; or ``None``:
            the file named by ``AIPORT_CONFIG``, else ``aiport.toml``/``aiport.yaml``/
            ``aiport.yml`` in ``cwd``, else no file.
        environment: the profile to apply (wins over ``AIPORT_ENV`` and the ``environment``
            setting).
        env: the environment variables to read; default ``os.environ``. Secret references
            (``env:NAME``) of the result are later resolved against the same mapping.
        overrides: settings laid over everything else.
        cwd: where to look for a configuration file, and the start of relative paths;
            default the current working directory.

    Raises:
        ConfigError: the file cannot be read or parsed, the profile is unknown, an
            ``AIPORT_*`` variable is malformed, or any setting is invalid (all are listed,
            each with its path and the layer it came from).
    """
    if isinstance(source, AgentConfig):
        return _apply_overrides(source, overrides) if overrides else source
    environ: Mapping[str, str] = os.environ if env is None else env
    base, label, base_dir = _read_source(source, environ, cwd)
    env_data, env_vars, env_problems = env_layer(environ)
    if env_problems:
        raise ConfigError(env_problems)
    over = plain_data(overrides) if overrides else {}
    if not isinstance(over, dict):
        raise ConfigError("overrides must be a mapping of settings")

    layers = [Layer(base, label)]
    described = [label]

    # The active profile: the argument, AIPORT_ENV, then the setting (from any layer).
    unprofiled = deep_merge(deep_merge(base, env_data), over)
    name, name_source = _active_environment(environment, environ, unprofiled, base, label)
    profiles = unprofiled.get("environments")
    if name is not None and isinstance(profiles, Mapping) and profiles:
        if name not in profiles:
            known = ", ".join(repr(p) for p in sorted(map(str, profiles)))
            close = difflib.get_close_matches(name, [str(p) for p in profiles], n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                [
                    ConfigProblem(
                        path="environment",
                        message=f"unknown environment {name!r} (known: {known}){hint}",
                        source=name_source,
                    )
                ]
            )
        overlay = profiles[name]
        if isinstance(overlay, Mapping):
            profile_label = f"{label} [environments.{name}]"
            problems = [
                ConfigProblem(
                    path=format_path(("environments", name, key)),
                    message=message,
                    source=profile_label,
                )
                for key, message in (
                    ("environment", "a profile cannot change the active environment"),
                    ("environments", "a profile cannot define profiles"),
                )
                if key in overlay
            ]
            if problems:
                raise ConfigError(problems)
            layers.append(Layer(plain_data(overlay), profile_label))
            described.append(f"environments.{name}")
    if env_data:
        layers.append(Layer(env_data, "environment"))
        described.append("environment variables")
    if over:
        layers.append(Layer(over, "overrides"))
        described.append("overrides")

    merged: dict[str, Any] = {}
    for layer in layers:
        merged = deep_merge(merged, layer.data)

    providers = merged.get("providers")
    if providers is None or (isinstance(providers, Mapping) and not providers):
        defaults = _default_providers(environ)
        if defaults:
            layers.append(Layer({"providers": defaults}, "environment"))
            merged["providers"] = defaults
            described.append("standard key variables")
    if name is not None:
        merged["environment"] = name
        layers.append(Layer({"environment": name}, name_source or label))

    try:
        config = validate_located(AgentConfig, merged)
    except CrossFieldError as exc:
        located = exc.located
    else:
        config._source = " + ".join(described)
        config._base_dir = base_dir
        config._env = env
        return config
    raise ConfigError([sourced_problem(p, layers, env_vars) for p in located])


def _active_environment(
    argument: str | None,
    environ: Mapping[str, str],
    merged: Mapping[str, Any],
    base: Mapping[str, Any],
    label: str,
) -> tuple[str | None, str | None]:
    """The active profile name and a description of where it was chosen."""
    if argument:
        return argument, "argument"
    chosen = environ.get("AIPORT_ENV")
    if chosen:
        return chosen, "environment"
    setting = merged.get("environment")
    if isinstance(setting, str) and setting:
        return setting, label if base.get("environment") == setting else "environment"
    return None, None


def _default_providers(environ: Mapping[str, str]) -> dict[str, Any]:
    """A provider for every built-in type and preset whose standard key variable is set
    (``OPENAI_API_KEY``, ``GEMINI_API_KEY``, ``GROQ_API_KEY``...), named like its type.

    A type that needs a base URL (Azure) is added only when its URL variable is set too.
    """
    from aiport._registry import builtin_types
    from aiport.providers._presets import preset_types

    providers: dict[str, Any] = {}
    for row in (*builtin_types(), *preset_types().values()):
        key_var = row.api_key_env
        if not key_var or not environ.get(key_var):
            continue
        url = environ.get(row.base_url_env) if row.base_url_env else None
        if row.requires_base_url and not url:
            continue
        provider: dict[str, Any] = {"type": row.name, "api_key": f"env:{key_var}"}
        if url:
            provider["base_url"] = url
        providers[row.name] = provider
    return providers


def _apply_overrides(config: AgentConfig, overrides: Mapping[str, Any]) -> AgentConfig:
    data = deep_merge(config.model_dump(exclude_unset=True), plain_data(overrides))
    layers = [Layer(data, config.source), Layer(plain_data(overrides), "overrides")]
    try:
        result = validate_located(AgentConfig, data)
    except CrossFieldError as exc:
        located = exc.located
    else:
        result._source = f"{config.source} + overrides"
        result._base_dir = config.base_dir
        result._env = config._env
        return result
    raise ConfigError([sourced_problem(p, layers, {}) for p in located])


def _read_source(
    source: Mapping[str, Any] | str | os.PathLike[str] | None,
    environ: Mapping[str, str],
    cwd: Path | None,
) -> tuple[dict[str, Any], str, Path | None]:
    """The first layer: its settings, its label, and the base directory of relative paths."""
    if isinstance(source, Mapping):
        return plain_data(source), "mapping", cwd
    if source is None:
        named = environ.get("AIPORT_CONFIG")
        if named:
            source = named
        else:
            directory = cwd if cwd is not None else Path.cwd()
            for file_name in CONFIG_FILE_NAMES:
                candidate = directory / file_name
                if candidate.is_file():
                    return _read_file(candidate, str(candidate))
            return {}, "defaults", cwd
    if isinstance(source, str | os.PathLike):
        path = Path(source).expanduser()
        if cwd is not None and not path.is_absolute():
            path = cwd / path
        return _read_file(path, os.fspath(source))
    raise ConfigError(
        f"cannot load a configuration from {type(source).__name__}: pass an AgentConfig, "
        "a mapping or a file path"
    )


def _read_file(path: Path, label: str) -> tuple[dict[str, Any], str, Path | None]:
    def fail(message: str) -> ConfigError:
        return ConfigError([ConfigProblem(path="", message=message, source=label)])

    suffix = path.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml"):
        raise fail(
            f"unsupported configuration file type {suffix or '(no extension)'!r}: "
            "use .toml, .yaml or .yml"
        )
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise fail("configuration file not found") from None
    except IsADirectoryError:
        raise fail("is a directory, not a configuration file") from None
    except PermissionError:
        raise fail("configuration file cannot be read: permission denied") from None
    except OSError as exc:
        raise fail(f"configuration file cannot be read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise fail(f"not UTF-8 text (byte {exc.start})") from None

    data: object
    if suffix == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise fail(f"TOML syntax error: {exc}") from None
    else:
        data = _parse_yaml(text, fail)
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise fail(f"the top level must be a table of settings, not {type(data).__name__}")
    return plain_data(data), label, path.absolute().parent


def _parse_yaml(text: str, fail: Callable[[str], ConfigError]) -> object:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        # Built from the parts: str(exc) quotes the offending lines, which may hold a secret.
        where = ""
        if exc.problem_mark is not None:
            where = f" (at line {exc.problem_mark.line + 1}, column {exc.problem_mark.column + 1})"
        what = "; ".join(part for part in (exc.context, exc.problem) if part)
        raise fail(f"YAML syntax error: {what or 'invalid document'}{where}") from None
    except yaml.YAMLError as exc:
        raise fail(f"YAML error: {type(exc).__name__}") from None
