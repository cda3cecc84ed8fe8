"""aiport-test-provider: the 'acme' provider type, published as an aiport plug-in.

Acme's API happens to speak OpenAI's Chat Completions JSON (so the tests can run it
against aiport's emulator), but the adapter is written here from aiport's public pieces
only: ``ModelProvider``, ``ProviderType``, ``ProviderContext`` and the unified types. It
is what a third party ships to add a provider without touching aiport.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

from aiport import (
    Message,
    ModelCompletionOptions,
    ModelCompletionResponse,
    ModelProvider,
    ProviderAPIError,
    ProviderContext,
    ProviderModel,
    ProviderType,
    StreamEvent,
    StreamFinishEvent,
    TextDeltaEvent,
    Usage,
)

__all__ = ["ACME", "AcmeProvider", "acme_lazy_type"]

#: The header Acme wants on every request (the tests look for it on the wire).
CLIENT_HEADER = ("X-Acme-Client", "aiport-test-provider")


class AcmeProvider(ModelProvider):
    """Acme's chat API: text completions, streams delivered in one piece."""

    def __init__(self, context: ProviderContext) -> None:
        self.name = context.name
        self.description = context.config.description or "Acme chat"
        self._context = context
        self._base_url = (context.config.base_url or "https://api.acme.example/v1").rstrip("/")

    @property
    def models(self) -> Mapping[str, ProviderModel]:
        return self._context.models

    async def complete(self, options: ModelCompletionOptions) -> ModelCompletionResponse:
        headers = {"Content-Type": "application/json", CLIENT_HEADER[0]: CLIENT_HEADER[1]}
        credential = self._context.credential
        if credential is not None:
            headers["Authorization"] = f"Bearer {(await credential.get()).get_secret_value()}"
        body = {
            "model": options.model,
            "messages": [{"role": m.role, "content": m.text} for m in options.messages],
        }
        start = self._context.clock()
        response = await self._context.http.request(
            "POST",
            f"{self._base_url}/chat/completions",
            headers=headers,
            body=json.dumps(body).encode(),
            timeouts=self._context.timeouts,
        )
        if response.status >= 400:
            raise ProviderAPIError(
                f"acme answered HTTP {response.status}",
                provider=self.name,
                model=options.model,
                status_code=response.status,
            )
        data: dict[str, Any] = json.loads(response.body)
        usage = data.get("usage") or {}
        return ModelCompletionResponse(
            id=data.get("id", ""),
            model=data.get("model", options.model),
            provider=self.name,
            message=Message(role="assistant", content=data["choices"][0]["message"]["content"]),
            finish_reason="stop",
            usage=Usage(
                input_tokens=usage.get("prompt_tokens", 0),
                output_tokens=usage.get("completion_tokens", 0),
            ),
            latency=self._context.clock() - start,
            raw=data,
        )

    async def stream(self, options: ModelCompletionOptions) -> AsyncIterator[StreamEvent]:
        response = await self.complete(options)
        yield TextDeltaEvent(text=response.text)
        yield StreamFinishEvent(response=response)


ACME = ProviderType(
    name="acme",
    factory=AcmeProvider,
    description="Acme chat (from the aiport-test-provider plug-in)",
    api_key_env="ACME_API_KEY",
)


def acme_lazy_type() -> ProviderType:
    """The same adapter under the type 'acme-lazy', built when the entry point is loaded."""
    return ProviderType(
        name="acme-lazy",
        factory=AcmeProvider,
        description="Acme chat, from a function the entry point names",
        requires_api_key=False,
    )
