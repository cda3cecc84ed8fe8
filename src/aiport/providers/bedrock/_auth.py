"""AWS credentials and SigV4 request signing for Bedrock, through ``botocore``.

``botocore`` (the ``aiport[bedrock]`` extra) is imported here, and this module only when
a Bedrock provider is built (after ``_factory`` checked that botocore is installed), so
``import aiport`` never loads it.

Credentials come, in this order, from explicit ``aws_access_key_id`` /
``aws_secret_access_key`` (/ ``aws_session_token``) values, else from the standard AWS
chain of ``botocore`` (environment variables, the shared credentials and config files
with the profile ``aws_profile`` or ``AWS_PROFILE``, SSO, ``credential_process``,
web identity, container and EC2 instance metadata...). They are resolved on the first
request, in a worker thread (the chain may read files or call a metadata service), and
refreshable credentials (SSO, assumed roles, instance profiles) are refreshed by
``botocore`` before they expire, also off the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import botocore.credentials  # type: ignore[import-untyped]
import botocore.exceptions  # type: ignore[import-untyped]
import botocore.session  # type: ignore[import-untyped]
from botocore.auth import SigV4Auth  # type: ignore[import-untyped]
from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped]
from pydantic import SecretStr
from yarl import URL

from aiport._errors import ConfigError, ConfigProblem, ProviderAuthError

if TYPE_CHECKING:
    from aiport._secrets import SecretResolver

__all__ = ["AwsSigner", "ExplicitKeys", "resolve_region"]

#: The SigV4 signing name of Bedrock (its endpoints are ``bedrock-runtime.*``).
SIGNING_NAME = "bedrock"


class _SigningDetailsFilter(logging.Filter):
    """Drops botocore's DEBUG records of the canonical request, string to sign and
    signature: they hold the session token and a signature valid for minutes, and aiport
    never lets a credential reach a log line, whatever the logging configuration."""

    _PREFIXES = ("CanonicalRequest", "StringToSign", "Signature")

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.startswith(self._PREFIXES))


def _quiet_signing_details() -> None:
    target = logging.getLogger("botocore.auth")
    if not any(isinstance(f, _SigningDetailsFilter) for f in target.filters):
        target.addFilter(_SigningDetailsFilter())


_quiet_signing_details()

#: Chain providers that call a metadata service as soon as they are asked.
_NETWORK_PROVIDERS = ("container-role", "iam-role")


def _metadata_may_provide() -> bool:
    """Whether the container or instance metadata service could still give credentials."""
    container = any(
        os.environ.get(name)
        for name in (
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        )
    )
    imds_disabled = os.environ.get("AWS_EC2_METADATA_DISABLED", "").lower() == "true"
    return container or not imds_disabled


def resolve_region(provider: str, region: str | None, profile: str | None) -> str:
    """The region: the configured one, else ``AWS_REGION``, ``AWS_DEFAULT_REGION``, or the
    profile's ``region`` in the AWS config file. ``ConfigError`` when none is set."""
    if region:
        return region
    from_env = os.environ.get("AWS_REGION")
    if from_env:
        return from_env

    try:
        found = botocore.session.Session(profile=profile).get_config_variable("region")
    except botocore.exceptions.BotoCoreError:
        found = None
    if isinstance(found, str) and found:
        return found
    raise ConfigError(
        [
            ConfigProblem(
                path=f"providers.{provider}.region",
                message=(
                    "Bedrock needs an AWS region: set region, or AWS_REGION / "
                    "AWS_DEFAULT_REGION, or a region in the AWS profile"
                ),
            )
        ]
    )


class ExplicitKeys:
    """Access keys given in the configuration, as secret references resolved on first use."""

    __slots__ = ("access_key_id", "resolver", "secret_access_key", "session_token")

    def __init__(
        self,
        *,
        access_key_id: SecretStr,
        secret_access_key: SecretStr,
        session_token: SecretStr | None,
        resolver: SecretResolver,
    ) -> None:
        self.access_key_id = access_key_id
        self.secret_access_key = secret_access_key
        self.session_token = session_token
        self.resolver = resolver

    def needs_io(self) -> bool:
        """Whether resolving may block (keyring, plug-in schemes)."""
        values = [self.access_key_id, self.secret_access_key, self.session_token]
        return any(v is not None and self.resolver.needs_io(v) for v in values)

    def resolve(self, provider: str) -> tuple[str, str, str | None]:
        """(access key id, secret access key, session token or ``None``)."""

        def one(value: SecretStr, what: str) -> str:
            return self.resolver.resolve(
                value, what=f"{what} of provider {provider!r}"
            ).get_secret_value()

        token = self.session_token
        return (
            one(self.access_key_id, "aws_access_key_id"),
            one(self.secret_access_key, "aws_secret_access_key"),
            one(token, "aws_session_token") if token is not None else None,
        )


class AwsSigner:
    """Signs requests with AWS Signature Version 4, resolving credentials lazily.

    Args:
        provider: the provider's configured name (for error messages).
        region: the region of the endpoint (part of the signature's scope).
        profile: the AWS profile of the default chain (``None``: ``AWS_PROFILE`` or
            ``default``).
        keys: explicit access keys instead of the chain.
        on_secret: told of every secret used (the secret key, the session token), so
            the provider can scrub them from errors.
    """

    def __init__(
        self,
        *,
        provider: str,
        region: str,
        profile: str | None = None,
        keys: ExplicitKeys | None = None,
        on_secret: Callable[[str], None] | None = None,
    ) -> None:
        self.provider = provider
        self.region = region
        self.profile = profile
        self._keys = keys
        #: Told of every secret used, to scrub it from errors (set by the factory).
        self.on_secret = on_secret
        self._credentials: Any = None  # botocore Credentials, resolved on first use
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        source = "explicit keys" if self._keys is not None else "the AWS credential chain"
        return f"AwsSigner(region={self.region!r}, credentials from {source})"

    # ------------------------------------------------------------------ credentials

    def _missing(self) -> ProviderAuthError:
        return ProviderAuthError(
            f"no AWS credentials found for provider {self.provider!r}: set "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, an AWS profile "
            "(aws_profile or AWS_PROFILE), aws_access_key_id and "
            "aws_secret_access_key in its configuration, or api_key for a "
            "Bedrock API key (e.g. 'env:AWS_BEARER_TOKEN_BEDROCK')",
            provider=self.provider,
            reason="credentials_missing",
        )

    def _resolve(self) -> Any:
        """The botocore credentials object (blocking: run in a worker thread)."""
        with self._lock:
            if self._credentials is not None:
                return self._credentials

            if self._keys is not None:
                access, secret, token = self._keys.resolve(self.provider)
                credentials: Any = botocore.credentials.Credentials(access, secret, token)
            else:
                try:
                    session = botocore.session.Session(profile=self.profile)
                    credentials = session.get_credentials()
                except botocore.exceptions.BotoCoreError as exc:
                    raise ProviderAuthError(
                        f"cannot resolve the AWS credentials of provider {self.provider!r}: "
                        f"{type(exc).__name__}: {exc}",
                        provider=self.provider,
                        reason="credentials_unresolved",
                    ) from None
                if credentials is None:
                    raise self._missing()
            self._credentials = credentials
            return credentials

    def _frozen(self) -> Any:
        """A consistent (key, secret, token) snapshot; may refresh (blocking)."""

        credentials = self._resolve()
        try:
            return credentials.get_frozen_credentials()
        except botocore.exceptions.BotoCoreError as exc:
            raise ProviderAuthError(
                f"cannot refresh the AWS credentials of provider {self.provider!r}: "
                f"{type(exc).__name__}: {exc}",
                provider=self.provider,
                reason="token_refresh_failed",
            ) from None

    def _blocking(self) -> bool:
        """Whether getting credentials now may block (first resolution, or a refresh)."""
        credentials = self._credentials
        if credentials is None:
            return self._keys is None or self._keys.needs_io()
        refresh_needed = getattr(credentials, "refresh_needed", None)
        return bool(refresh_needed()) if callable(refresh_needed) else False

    async def credentials(self) -> Any:
        """The frozen credentials to sign with, resolved or refreshed off the event loop."""
        frozen = await asyncio.to_thread(self._frozen) if self._blocking() else self._frozen()
        if self.on_secret is not None:
            self.on_secret(frozen.secret_key)
            if frozen.token:
                self.on_secret(frozen.token)
        return frozen

    def invalidate(self) -> None:
        """Forget the credentials: the next request resolves the chain again (after AWS
        refused them, e.g. a session token that expired or keys that were rotated)."""
        with self._lock:
            self._credentials = None

    async def check(self) -> None:
        """Raise ``ProviderAuthError`` if no credentials can be found, without a network call.

        Explicit keys are resolved; the chain is searched without its two providers that
        call a service when loaded (the container and the EC2 instance metadata
        endpoints). When only those could still provide credentials, nothing can be told
        offline and the first request decides.
        """
        await asyncio.to_thread(self._check_offline)

    def _check_offline(self) -> None:
        if self._keys is not None or self._credentials is not None:
            self._resolve()
            return
        try:
            resolver = botocore.session.Session(profile=self.profile).get_component(
                "credential_provider"
            )
            for method in _NETWORK_PROVIDERS:
                resolver.remove(method)
            found = resolver.load_credentials()
        except botocore.exceptions.BotoCoreError as exc:
            raise ProviderAuthError(
                f"cannot resolve the AWS credentials of provider {self.provider!r}: "
                f"{type(exc).__name__}: {exc}",
                provider=self.provider,
                reason="credentials_unresolved",
            ) from None
        if found is None and not _metadata_may_provide():
            raise self._missing()

    # ------------------------------------------------------------------ signing

    async def sign(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None
    ) -> dict[str, str]:
        """``headers`` plus ``X-Amz-Date``, ``X-Amz-Security-Token`` (temporary
        credentials) and ``Authorization``, signing the method, URL, headers and body as
        they will be sent."""

        frozen = await self.credentials()
        # Sign the URL in the form the HTTP client sends it (yarl normalises percent-
        # encoding: '%3A' goes out as ':'): AWS computes the signature over the path as
        # received, and one encoding off is a 403 InvalidSignatureException.
        wire_url = str(URL(url))
        request = AWSRequest(method=method, url=wire_url, data=body or b"", headers=dict(headers))
        SigV4Auth(frozen, SIGNING_NAME, self.region).add_auth(request)
        return dict(request.headers.items())
