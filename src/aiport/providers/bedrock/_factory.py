"""Builds a ``BedrockProvider`` from a provider's configuration.

Authentication, in this order:

1. ``api_key``: a Bedrock API key, sent as ``Authorization: Bearer`` (no signature);
   e.g. ``api_key = "env:AWS_BEARER_TOKEN_BEDROCK"``.
2. ``aws_access_key_id`` + ``aws_secret_access_key`` (+ ``aws_session_token``): explicit
   keys, as secret references resolved on the first request by the service's resolver
   (so ``env:`` references read a ``ProviderService(env=...)`` mapping).
3. Without ``aws_profile``: ``AWS_ACCESS_KEY_ID`` + ``AWS_SECRET_ACCESS_KEY`` (+
   ``AWS_SESSION_TOKEN``) of the service's environment, as the chain's first step would
   read them from the process environment.
4. Otherwise the standard AWS credential chain of botocore (with ``aws_profile``, else
   ``AWS_PROFILE`` of the service's environment). The chain itself (profiles, SSO,
   ``credential_process``, instance metadata) is botocore's and reads the process
   environment and the AWS files.

The region is the configured one, else ``AWS_REGION`` or ``AWS_DEFAULT_REGION`` of the
service's environment, else what botocore finds (the process environment, the profile).

The service builds no credential for this type (``requires_api_key=False`` and no
default key variable): requests are signed by the adapter itself, right before they
are sent, so the signature covers the final headers and body.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import SecretStr

from aiport._errors import ConfigError, ConfigProblem

if TYPE_CHECKING:
    from aiport._registry import ProviderContext
    from aiport.providers.bedrock._auth import ExplicitKeys
    from aiport.providers.bedrock._provider import BedrockProvider

__all__ = ["INSTALL_HINT", "build_bedrock", "require_botocore"]

INSTALL_HINT = "pip install 'aiport[bedrock]'"


def require_botocore(provider: str) -> None:
    """Raise a ``ConfigError`` naming the extra to install when botocore is missing."""
    import importlib.util

    if importlib.util.find_spec("botocore") is None:
        raise ConfigError(
            [
                ConfigProblem(
                    path=f"providers.{provider}.type",
                    message=(
                        "the 'bedrock' provider type needs botocore for AWS request signing: "
                        f"{INSTALL_HINT}"
                    ),
                )
            ]
        )


def _problems(context: ProviderContext) -> list[ConfigProblem]:
    config = context.config
    prefix = f"providers.{context.name}"
    problems: list[ConfigProblem] = []
    key_id, secret = config.aws_access_key_id, config.aws_secret_access_key
    if (key_id is None) != (secret is None):
        missing = "aws_secret_access_key" if secret is None else "aws_access_key_id"
        problems.append(
            ConfigProblem(
                path=f"{prefix}.{missing}",
                message="aws_access_key_id and aws_secret_access_key go together",
            )
        )
    if config.aws_session_token is not None and (key_id is None or secret is None):
        problems.append(
            ConfigProblem(
                path=f"{prefix}.aws_session_token",
                message="needs aws_access_key_id and aws_secret_access_key",
            )
        )
    explicit = key_id is not None or secret is not None
    if explicit and config.aws_profile is not None:
        problems.append(
            ConfigProblem(
                path=f"{prefix}.aws_profile",
                message="set either an AWS profile or explicit access keys, not both",
            )
        )
    if config.api_key is not None and (explicit or config.aws_profile is not None):
        problems.append(
            ConfigProblem(
                path=f"{prefix}.api_key",
                message=(
                    "a Bedrock API key (api_key) replaces AWS signing: leave out the AWS "
                    "profile and access keys"
                ),
            )
        )
    if config.auth is not None:
        problems.append(
            ConfigProblem(
                path=f"{prefix}.auth",
                message=(
                    "Bedrock authenticates with AWS credentials or a Bedrock API key "
                    "(api_key), not a token provider"
                ),
            )
        )
    return problems


def _explicit_keys(context: ProviderContext) -> ExplicitKeys | None:
    """The configured access keys, else those of the service's environment (unless a
    profile is configured: botocore skips the environment for an explicit profile too),
    resolved by the service's resolver; ``None``: the AWS credential chain."""
    from aiport.providers.bedrock._auth import ExplicitKeys

    config = context.config
    if config.aws_access_key_id is not None and config.aws_secret_access_key is not None:
        return ExplicitKeys(
            access_key_id=config.aws_access_key_id,
            secret_access_key=config.aws_secret_access_key,
            session_token=config.aws_session_token,
            resolver=context.secret_resolver(),
        )
    env = context.env
    if (
        config.aws_profile is None
        and env.get("AWS_ACCESS_KEY_ID")
        and env.get("AWS_SECRET_ACCESS_KEY")
    ):
        # References, not values: the key is read when first needed, and read again after
        # AWS refused it (the signer forgets refused credentials).
        return ExplicitKeys(
            access_key_id=SecretStr("env:AWS_ACCESS_KEY_ID"),
            secret_access_key=SecretStr("env:AWS_SECRET_ACCESS_KEY"),
            session_token=SecretStr("env:AWS_SESSION_TOKEN")
            if env.get("AWS_SESSION_TOKEN")
            else None,
            resolver=context.secret_resolver(),
        )
    return None


def build_bedrock(context: ProviderContext) -> BedrockProvider:
    """The Bedrock provider of ``context`` (``ConfigError`` for an unusable configuration,
    or when botocore, the ``aiport[bedrock]`` extra, is not installed)."""
    require_botocore(context.name)
    from aiport.providers.bedrock._auth import AwsSigner, resolve_region

    problems = _problems(context)
    if problems:
        raise ConfigError(problems)
    config = context.config
    env = context.env
    profile = config.aws_profile or env.get("AWS_PROFILE") or None
    region = resolve_region(
        context.name,
        config.region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION"),
        profile,
    )

    from aiport.providers.bedrock._provider import BedrockProvider

    signer: AwsSigner | None = None
    if context.credential is None:
        signer = AwsSigner(
            provider=context.name,
            region=region,
            profile=profile,
            keys=_explicit_keys(context),
        )
    provider = BedrockProvider(
        name=context.name,
        region=region,
        signer=signer,
        credential=context.credential,
        http=context.http,
        base_url=config.base_url,
        description=config.description or "Amazon Bedrock (Converse API)",
        models=context.models,
        headers=dict(config.headers),
        timeouts=context.timeouts,
        model_timeouts=context.model_timeouts,
        clock=context.clock,
    )
    if signer is not None:
        signer.on_secret = provider.add_secret
    return provider
