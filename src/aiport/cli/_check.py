"""``aiport config check``: load a configuration, find what is wrong, show it masked."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
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

__all__ = ["Finding", "check_config", "config_document", "render_config_check"]


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
    from aiport._secrets import split_reference

    file_source = source if source is not None else os.environ.get("AIPORT_CONFIG")
    try:
        file_only = load_config(
            file_source, environment=environment or os.environ.get("AIPORT_ENV"), env={}
        )
    except ConfigError:
        return []
    findings: list[Finding] = []
    label = file_only.source
    for name, provider in file_only.providers.items():
        key = provider.api_key
        if key is None or split_reference(key.get_secret_value()) is not None:
            continue
        variable = re.sub(r"[^A-Za-z0-9]", "_", name).upper() + "_API_KEY"
        findings.append(
            Finding(
                "warning",
                f"providers.{name}.api_key",
                "an API key is written literally in the configuration file; keep it out of "
                f'files and write a reference instead, e.g. api_key = "env:{variable}"',
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
    data["environments"] = sorted(config.environments)
    return data


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
                "problems": [f.document() for f in findings],
                **({"error": error_document(error)} if error is not None else {}),
            }
        )
        return valid
    if config is not None:
        import yaml

        header = Text("Configuration: ", style="bold")
        header.append(config.source, style="")
        if config.environment:
            header.append(f"  (environment: {config.environment})")
        out.print(header)
        dumped = yaml.safe_dump(
            _pruned(config_document(config)), sort_keys=False, allow_unicode=True, width=1000
        )
        out.print(Text(dumped.rstrip("\n")))
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
