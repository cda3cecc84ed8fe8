"""``aiport config check``: load a configuration, find what is wrong, show it masked.

Every problem is reported with its path and, where known, where the value came from; any
problem, a warning included, makes the check fail (exit code 1) unless warnings are
allowed (``--allow-warnings``). API keys are shown as written when they are references,
masked when they are literals, and identified by their fingerprint
(:func:`aiport._credentials.key_fingerprint`) when they resolve.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterator, Mapping, Sequence
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
    "KeyInfo",
    "check_config",
    "config_document",
    "key_fingerprints",
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


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """One API key of a provider, as ``aiport config check`` shows it.

    ``value`` is the setting as written (a reference) or masked (a literal);
    ``fingerprint`` identifies the key it resolves to (``None`` when it does not resolve).
    """

    path: str
    value: str
    fingerprint: str | None

    def document(self) -> dict[str, Any]:
        """As a JSON object."""
        return {"path": self.path, "value": self.value, "fingerprint": self.fingerprint}


def check_config(
    config: AgentConfig, source: Path | None, environment: str | None
) -> list[Finding]:
    """Every problem of a loaded configuration, errors first.

    Errors: provider types that do not exist (or lack a required base_url). Warnings:
    credentials that cannot be resolved here (each key of ``api_keys`` on its own), secrets
    written literally in the file, and plain http to a host that is not this machine.
    A finding without a source of its own gets the source of the setting it names.
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
        with service, _quiet_plain_http():
            for name, provider in config.providers.items():
                if provider.enabled and not service.validate_provider(name):
                    findings.extend(_unusable(service, config, name))
    findings.extend(_plain_http(config))
    findings.extend(_literal_secrets(source, environment))
    findings.sort(key=lambda f: f.severity != "error")
    return _with_sources(config, findings)


@contextlib.contextmanager
def _quiet_plain_http() -> Iterator[None]:
    """Drop the log line about plain http while providers are built: it is a finding here."""

    def keep(record: logging.LogRecord) -> bool:
        return "uses plain http" not in str(record.msg)

    logger = logging.getLogger("aiport")
    logger.addFilter(keep)
    try:
        yield
    finally:
        logger.removeFilter(keep)


def _with_sources(config: AgentConfig, findings: list[Finding]) -> list[Finding]:
    """``findings``, each without a source given the source of the setting it names."""
    if all(f.source is not None for f in findings):
        return findings
    try:
        sources = value_sources(config)
    except Exception:  # where values came from is a courtesy: never fail the check on it
        return findings
    config_file = _config_file(config)
    out = []
    for finding in findings:
        origin = None
        if finding.source is None:
            path = re.sub(r"\[\d+\]$", "", finding.path)
            origin = sources.get(path)
            if origin == "file" and config_file is not None:
                origin = str(config_file)
        out.append(
            Finding(finding.severity, finding.path, finding.message, origin)
            if origin is not None
            else finding
        )
    return out


def _plain_http(config: AgentConfig) -> list[Finding]:
    """Warnings for providers whose base_url sends keys and prompts over plain http."""
    from aiport._tokens import is_loopback_host

    findings = []
    for name, provider in config.providers.items():
        url = provider.base_url
        if not provider.enabled or url is None:
            continue
        parts = urlsplit(url)
        if parts.scheme == "http" and not is_loopback_host(parts.hostname):
            findings.append(
                Finding(
                    "warning",
                    f"providers.{name}.base_url",
                    f"plain http to {parts.hostname}: the API key and the prompts travel "
                    "unencrypted; use https (http is only for servers on this machine)",
                )
            )
    return findings


def _unusable(service: ProviderService, config: AgentConfig, name: str) -> list[Finding]:
    from pydantic import SecretStr

    from aiport._errors import ProviderAuthError

    provider = config.providers[name]
    if provider.api_keys:
        resolver = config.secret_resolver()
        refused = []
        for index, key in enumerate(provider.api_keys):
            try:
                resolver.resolve(key, what=f"API key api_keys[{index}] of provider {name!r}")
            except ProviderAuthError as exc:
                path = f"providers.{name}.api_keys[{index}]"
                refused.append(Finding("warning", path, _one_line(exc.message)))
        if refused:
            return refused
    provider_type = service.registry.types.get(provider.type)
    if provider.auth is not None:
        import asyncio

        from aiport._credentials import build_credential, check_credential

        credential = build_credential(name, provider, config.secret_resolver())
        assert credential is not None
        try:
            asyncio.run(check_credential(credential))
        except ProviderAuthError as exc:
            return [Finding("warning", f"providers.{name}.auth", _one_line(exc.message))]
    value = provider.api_key
    if (
        value is None
        and not provider.api_keys
        and provider_type is not None
        and provider_type.api_key_env
    ):
        value = SecretStr(f"env:{provider_type.api_key_env}")
    path = f"providers.{name}.api_key"
    if value is not None:
        try:
            config.secret_resolver().resolve(value, what=f"the API key of provider {name!r}")
        except ProviderAuthError as exc:
            return [Finding("warning", path, _one_line(exc.message))]
    try:
        service.get_provider(name)
    except AiportError as exc:
        message = exc.message if isinstance(exc, ProviderError) else str(exc)
        return [Finding("warning", f"providers.{name}", _one_line(message))]
    if (
        value is None
        and not provider.api_keys
        and provider_type is not None
        and provider_type.requires_api_key
    ):
        return [Finding("warning", path, f"provider {name!r} has no API key configured")]
    return [Finding("warning", f"providers.{name}", "the provider cannot be used as configured")]


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
        for index, item in enumerate(provider.api_keys or ()):
            if not resolver.is_reference(item.get_secret_value()):
                findings.append(
                    Finding(
                        "warning",
                        f"providers.{name}.api_keys[{index}]",
                        "an API key is written literally in the configuration file; keep it "
                        "out of files and write a reference instead, e.g. "
                        f'"env:{variable}_API_KEY_{index + 1}", or store it with '
                        f"`aiport keys set {name}-{index + 1}` and write "
                        f'"keyring:aiport/{name}-{index + 1}"',
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
        data["providers"][name]["api_keys"] = (
            [describe_secret(key) for key in provider.api_keys]
            if provider.api_keys is not None
            else None
        )
        auth = provider.auth
        if auth is not None and isinstance(data["providers"][name].get("auth"), dict):
            data["providers"][name]["auth"]["client_secret"] = (
                describe_secret(auth.client_secret) if auth.client_secret else None
            )
    data["environments"] = sorted(config.environments)
    return data


def key_fingerprints(config: AgentConfig) -> list[KeyInfo]:
    """The API keys of the enabled providers, each with its fingerprint when it resolves.

    Keys configured with ``api_key`` or ``api_keys``, and, for a provider with neither, the
    key its type's standard variable (or the aiport keystore) would give. Token
    credentials (``auth``) are left out: their tokens are fetched, not configured.
    """
    from aiport._credentials import KeyPool, SecretReference, build_credential, key_fingerprint
    from aiport._errors import ProviderAuthError
    from aiport._registry import ProviderRegistry
    from aiport._secrets import describe_secret

    registry = ProviderRegistry.default()
    resolver = config.secret_resolver()
    found: list[KeyInfo] = []

    def fingerprint(reference: SecretReference) -> str | None:
        try:
            return key_fingerprint(reference.resolve_now().get_secret_value())
        except ProviderAuthError:
            return None

    for name, provider in config.providers.items():
        if not provider.enabled or provider.auth is not None:
            continue
        provider_type = registry.types.get(provider.type)
        default_env = provider_type.api_key_env if provider_type is not None else None
        credential = build_credential(name, provider, resolver, default_env=default_env)
        if isinstance(credential, KeyPool):
            assert provider.api_keys is not None
            for key, value in zip(credential.keys, provider.api_keys, strict=True):
                found.append(
                    KeyInfo(
                        f"providers.{name}.{key.path}",
                        describe_secret(value, resolver=resolver),
                        fingerprint(key.reference),
                    )
                )
        elif isinstance(credential, SecretReference):
            if provider.api_keys:
                path, value = f"providers.{name}.api_keys[0]", provider.api_keys[0]
                shown = describe_secret(value, resolver=resolver)
            elif provider.api_key is not None:
                path = f"providers.{name}.api_key"
                shown = describe_secret(provider.api_key, resolver=resolver)
            else:
                path = f"providers.{name}.api_key"
                shown = f"env:{default_env} (default)"
            found.append(KeyInfo(path, shown, fingerprint(credential)))
    return found


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
    allow_warnings: bool = False,
) -> bool:
    """Print the check (document or text); return whether the check passed.

    It passes when there is no problem at all, or only warnings and ``allow_warnings``.
    ``error`` is the ConfigError that stopped the configuration from loading, if any. In
    the JSON document ``valid`` says whether there is no error, ``passed`` whether the
    check passed (the exit code), and ``keys`` lists the API keys by fingerprint.
    """
    errors = [f for f in findings if f.severity == "error"]
    warnings = [f for f in findings if f.severity == "warning"]
    valid = not errors and error is None
    passed = valid and (allow_warnings or not warnings)
    keys = key_fingerprints(config) if config is not None else []
    if out.json_mode:
        out.json(
            {
                "valid": valid,
                "passed": passed,
                "source": config.source if config is not None else None,
                "environment": config.environment if config is not None else None,
                "config": config_document(config) if config is not None else None,
                "sources": value_sources(config) if config is not None else None,
                "keys": [key.document() for key in keys],
                "problems": [f.document() for f in findings],
                **({"error": error_document(error)} if error is not None else {}),
            }
        )
        return passed
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
    if keys:
        out.print(Text("API keys (by fingerprint):", style="bold"))
        width = max(len(key.path) for key in keys)
        shown_width = max(len(key.value) for key in keys)
        for key in keys:
            line = Text(f"  {key.path.ljust(width)}  {key.value.ljust(shown_width)}  ")
            if key.fingerprint is not None:
                line.append(key.fingerprint)
            else:
                line.append("(does not resolve here)", style="yellow")
            out.print(line)
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
    if not valid:
        out.print(Text(f"invalid: {counts}", style="bold red"))
    elif passed:
        allowed = " (warnings allowed)" if warnings else ""
        out.print(Text(f"valid: {counts}{allowed}", style="bold green"))
    else:
        out.print(
            Text(
                f"valid, with warnings: {counts} (each warning fails the check; "
                "--allow-warnings accepts them)",
                style="bold yellow",
            )
        )
    return passed
