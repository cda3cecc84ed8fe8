"""``aiport config check``: load a configuration, find what is wrong, show it masked."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from rich.text import Text

from aiport._errors import (
    AiportError,
    ConfigError,
    ProviderError,
)

if TYPE_CHECKING:
    from aiport._config import AgentConfig
    from aiport._service import ProviderService
from aiport.cli._output import Output, _one_line, _plural, error_document, mask_sensitive

__all__ = [
    "Finding",
    "check_config",
    "config_document",
    "render_config_check",
    "value_sources",
]

#: ``AIPORT_*`` variables that are not settings (the loader's own, and the keystore's).
_NOT_SETTINGS = frozenset(
    {
        "AIPORT_CONFIG",
        "AIPORT_ENV",
        "AIPORT_KEYSTORE",
        "AIPORT_KEYSTORE_PASSPHRASE",
        "AIPORT_KEYSTORE_PATH",
    }
)


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing ``aiport config check`` reports: an error or a warning, at a path."""

    severity: Literal["error", "warning"]
    path: str
    message: str
    source: str | None = None

    def document(self) -> dict[str, Any]:
        """As a JSON object."""
        return {
            "severity": self.severity,
            "path": self.path,
            "message": self.message,
            "source": self.source,
        }


def check_config(
    config: AgentConfig, source: Path | None, environment: str | None
) -> list[Finding]:
    """Every problem of a loaded configuration, errors first.

    Errors: provider types that do not exist (or lack a required base_url). Warnings:
    credentials that cannot be resolved here, and secrets written literally in the file.
    """
    from aiport._service import ProviderService

    findings: list[Finding] = []
    if not any(provider.enabled for provider in config.providers.values()):
        findings.append(
            Finding(
                "warning",
                "providers",
                "no provider is configured: add a [providers.NAME] table, or set "
                "OPENAI_API_KEY or ANTHROPIC_API_KEY",
            )
        )
    try:
        service = ProviderService(config)
    except ConfigError as exc:
        findings.extend(Finding("error", p.path, p.message, p.source) for p in exc.problems)
    else:
        with service:
            for name, provider in config.providers.items():
                if provider.enabled and not service.validate_provider(name):
                    findings.append(_unusable(service, config, name))
    findings.extend(_literal_secrets(source, environment))
    return findings


def _unusable(service: ProviderService, config: AgentConfig, name: str) -> Finding:
    from pydantic import SecretStr

    from aiport._errors import ProviderAuthError

    provider = config.providers[name]
    provider_type = service.registry.types.get(provider.type)
    if provider.auth is not None:
        import asyncio

        from aiport._credentials import build_credential, check_credential

        credential = build_credential(name, provider, config.secret_resolver())
        assert credential is not None
        try:
            asyncio.run(check_credential(credential))
        except ProviderAuthError as exc:
            return Finding("warning", f"providers.{name}.auth", _one_line(exc.message))
    value = provider.api_key
    if value is None and provider_type is not None and provider_type.api_key_env:
        value = SecretStr(f"env:{provider_type.api_key_env}")
    path = f"providers.{name}.api_key"
    if value is not None:
        try:
            config.secret_resolver().resolve(value, what=f"the API key of provider {name!r}")
        except ProviderAuthError as exc:
            return Finding("warning", path, _one_line(exc.message))
    try:
        service.get_provider(name)
    except AiportError as exc:
        message = exc.message if isinstance(exc, ProviderError) else str(exc)
        return Finding("warning", f"providers.{name}", _one_line(message))
    if value is None and provider_type is not None and provider_type.requires_api_key:
        return Finding("warning", path, f"provider {name!r} has no API key configured")
    return Finding("warning", f"providers.{name}", "the provider cannot be used as configured")


def _literal_secrets(source: Path | None, environment: str | None) -> list[Finding]:
    """Warnings for secrets written literally in the configuration file itself.

    The file (and its profile) is loaded again without environment variables, so a key
    that only arrives through ``AIPORT_*`` variables is not blamed on the file.
    """

    from aiport._config import load_config
    from aiport._secrets import SecretResolver, split_reference

    file_source = source if source is not None else os.environ.get("AIPORT_CONFIG")
    try:
        file_only = load_config(
            file_source, environment=environment or os.environ.get("AIPORT_ENV"), env={}
        )
    except ConfigError:
        return []
    findings: list[Finding] = []
    label = file_only.source
    resolver = SecretResolver(env={})  # knows the plug-in schemes too
    for name, provider in file_only.providers.items():
        key = provider.api_key
        variable = re.sub(r"[^A-Za-z0-9]", "_", name).upper()
        if key is not None and not resolver.is_reference(key.get_secret_value()):
            findings.append(
                Finding(
                    "warning",
                    f"providers.{name}.api_key",
                    "an API key is written literally in the configuration file; keep it out "
                    "of files and write a reference instead, e.g. "
                    f'api_key = "env:{variable}_API_KEY", or store it with '
                    f'`aiport keys set {name}` and write api_key = "keyring:aiport/{name}"',
                    label,
                )
            )
        secret = provider.auth.client_secret if provider.auth is not None else None
        if secret is not None and not resolver.is_reference(secret.get_secret_value()):
            findings.append(
                Finding(
                    "warning",
                    f"providers.{name}.auth.client_secret",
                    "a client secret is written literally in the configuration file; write a "
                    f'reference instead, e.g. client_secret = "env:{variable}_CLIENT_SECRET"',
                    label,
                )
            )
    redis = file_only.redis_url
    if redis is not None:
        text = redis.get_secret_value()
        if split_reference(text) is None and urlsplit(text).password:
            findings.append(
                Finding(
                    "warning",
                    "redis_url",
                    "the Redis URL embeds a password in the configuration file; write a "
                    'reference instead, e.g. redis_url = "env:AIPORT_REDIS_URL"',
                    label,
                )
            )
    return findings


def config_document(config: AgentConfig) -> dict[str, Any]:
    """The resolved configuration as plain data, every secret masked or shown as a reference."""
    from aiport._secrets import describe_secret

    data: dict[str, Any] = mask_sensitive(config.model_dump(mode="json", exclude={"environments"}))
    data["redis_url"] = describe_secret(config.redis_url) if config.redis_url else None
    for name, provider in config.providers.items():
        data["providers"][name]["api_key"] = (
            describe_secret(provider.api_key) if provider.api_key else None
        )
        auth = provider.auth
        if auth is not None and isinstance(data["providers"][name].get("auth"), dict):
            data["providers"][name]["auth"]["client_secret"] = (
                describe_secret(auth.client_secret) if auth.client_secret else None
            )
    data["environments"] = sorted(config.environments)
    return data


# ---------------------------------------------------------------------- where values came from

Loc = tuple[str, ...]


def _has(data: Any, loc: Loc) -> bool:
    for part in loc:
        if not isinstance(data, Mapping) or part not in data:
            return False
        data = data[part]
    return True


def _config_file(config: AgentConfig) -> Path | None:
    """The file a loaded configuration came from (the first part of its source label)."""
    first = config.source.split(" + ", 1)[0]
    if first in ("defaults", "mapping", "arguments", "overrides"):
        return None
    path = Path(first).expanduser()
    return path if path.is_file() else None


def _read_raw(path: Path) -> dict[str, Any]:
    """The settings of a configuration file, as written (empty when it cannot be read)."""
    import tomllib

    import yaml

    try:
        text = path.read_bytes().decode("utf-8-sig")
        data = tomllib.loads(text) if path.suffix.lower() == ".toml" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def _env_settings(env: Mapping[str, str]) -> dict[Loc, str]:
    """The location each ``AIPORT_*`` setting variable sets, with the variable's name."""
    found: dict[Loc, str] = {}
    for name in sorted(env):
        if (
            not name.startswith("AIPORT_")
            or name in _NOT_SETTINGS
            or name.startswith("AIPORT_TEST_")
        ):
            continue
        parts = tuple(name[len("AIPORT_") :].lower().split("__"))
        if all(parts):
            found[parts] = name
    return found


def _leaves(value: Any, loc: Loc = ()) -> list[Loc]:
    if isinstance(value, dict) and value:
        return [leaf for key, item in value.items() for leaf in _leaves(item, (*loc, str(key)))]
    return [loc]


def value_sources(config: AgentConfig, *, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Where each setting of ``config_document(config)`` came from, by dotted path.

    ``"file"`` (the configuration file), ``"profile NAME"`` (its ``[environments.NAME]``
    overlay), ``"env VARIABLE"`` (an ``AIPORT_*`` variable, or a standard key variable such
    as ``OPENAI_API_KEY`` that made a provider available), or ``"default"``.
    """
    from aiport._config import format_path

    environ: Mapping[str, str] = os.environ if env is None else env
    path = _config_file(config)
    file_data = _read_raw(path) if path is not None else {}
    profiles = file_data.get("environments")
    profile = (
        profiles.get(config.environment)
        if isinstance(profiles, Mapping) and config.environment
        else None
    )
    env_vars = _env_settings(environ)
    standard = "standard key variables" in config.source
    default_vars = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}

    def origin(loc: Loc) -> str:
        for size in range(len(loc), 0, -1):
            variable = env_vars.get(loc[:size])
            if variable is not None:
                return f"env {variable}"
        if loc == ("environment",) and config.environment:
            if environ.get("AIPORT_ENV") == config.environment:
                return "env AIPORT_ENV"
            if file_data.get("environment") == config.environment:
                return "file"
            return "argument"
        if isinstance(profile, Mapping) and _has(profile, loc):
            return f"profile {config.environment}"
        if _has(file_data, loc):
            return "file"
        if loc == ("environments",) and config.environments:
            return "file"
        if standard and len(loc) >= 2 and loc[0] == "providers":
            provider = loc[1]
            if not any(_has(layer, loc[:2]) for layer in (file_data, profile or {})):
                variable = default_vars.get(provider)
                if variable is not None and loc[2:3] in (("api_key",), ("type",)):
                    return f"env {variable}"
                if loc[2:3] == ("base_url",):
                    return f"env {provider.upper()}_BASE_URL"
        return "default"

    return {format_path(loc): origin(loc) for loc in _leaves(config_document(config)) if loc}


def _yaml_scalar(value: Any) -> str:
    """``value`` as one line of YAML (lists in flow style)."""
    import yaml

    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=10_000)
    return text.rstrip("\n").removesuffix("\n...").rstrip("\n")


def _annotated_yaml(document: dict[str, Any], sources: Mapping[str, str]) -> str:
    """``document`` as YAML, each setting followed by ``# <where it came from>``."""
    from aiport._config import format_path

    lines: list[tuple[str, str | None]] = []

    def walk(value: dict[str, Any], loc: Loc, indent: int) -> None:
        for key, item in value.items():
            here = (*loc, str(key))
            prefix = " " * indent + _yaml_scalar(key) + ":"
            if isinstance(item, dict) and item:
                lines.append((prefix, None))
                walk(item, here, indent + 2)
            else:
                lines.append((f"{prefix} {_yaml_scalar(item)}", sources.get(format_path(here))))

    walk(document, (), 0)
    width = max((len(text) for text, note in lines if note and len(text) <= 60), default=0) + 2
    return "\n".join(
        f"{text.ljust(width)}{'' if len(text) < width else '  '}# {note}" if note else text
        for text, note in lines
    )


def _pruned(value: Any) -> Any:
    """``value`` without unset (``None``) settings and empty tables, for reading."""
    if isinstance(value, dict):
        pruned = {k: _pruned(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v is not None and v not in ({}, [], "")}
    return value


def render_config_check(
    out: Output,
    config: AgentConfig | None,
    findings: Sequence[Finding],
    *,
    error: ConfigError | None = None,
) -> bool:
    """Print the check (document or text); return whether the configuration is valid.

    ``error`` is the ConfigError that stopped the configuration from loading, if any.
    """
    errors = [f for f in findings if f.severity == "error"]
    warnings = [f for f in findings if f.severity == "warning"]
    valid = not errors and error is None
    if out.json_mode:
        out.json(
            {
                "valid": valid,
                "source": config.source if config is not None else None,
                "environment": config.environment if config is not None else None,
                "config": config_document(config) if config is not None else None,
                "sources": value_sources(config) if config is not None else None,
                "problems": [f.document() for f in findings],
                **({"error": error_document(error)} if error is not None else {}),
            }
        )
        return valid
    if config is not None:
        header = Text("Configuration: ", style="bold")
        header.append(config.source, style="")
        if config.environment:
            header.append(f"  (environment: {config.environment})")
        out.print(header)
        out.print(Text("(each setting is followed by where it came from)", style="dim"))
        dumped = _annotated_yaml(_pruned(config_document(config)), value_sources(config))
        out.print(Text(dumped))
        out.print(Text())
    if findings:
        out.print(Text("Problems:", style="bold"))
        for finding in findings:
            line = Text("  ")
            if finding.severity == "error":
                line.append("error   ", style="bold red")
            else:
                line.append("warning ", style="bold yellow")
            where = f"{finding.source}: " if finding.source else ""
            line.append(f"{where}{finding.path or '<root>'}: {finding.message}")
            out.print(line)
    counts = f"{_plural(len(errors), 'error')}, {_plural(len(warnings), 'warning')}"
    if valid:
        out.print(Text(f"valid: {counts}", style="bold green"))
    else:
        out.print(Text(f"invalid: {counts}", style="bold red"))
    return valid
