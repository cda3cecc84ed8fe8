"""Preflight checks: reject, before anything is sent, what a model's known entry rules out.

Two kinds of check, both against the model's ``ProviderModel`` (the catalogue merged
with the config); a model without an entry is never checked.

Capabilities (only when the entry declares them): a completion needs ``chat``, a stream
``streaming``, tools ``tools``, an image in the messages ``vision``, JSON output
``json_output``; ``embed`` needs ``embeddings`` and ``generate_image`` ``images``.

Limits. The check must never reject a request the provider would accept, and aiport has
no tokenizer for most models, so it counts only what is certainly tokens: a lower bound.

* Text sent (message text, tool results, tool-call names and arguments, tool names and
  descriptions) is measured in characters after every run of one repeated character is
  shortened to one (tokenizers have single tokens for long runs of spaces, dashes...).
  No tokenizer in use packs more than ``MAX_CHARS_PER_TOKEN`` (16) such characters into
  one token on average over real text (English averages about 4, code about 3, a long
  repeated word under 10), so ``ceil(characters / 16)`` tokens are certainly needed.
  Images, message framing and tool schemas count nothing (their cost varies by provider).
* The prompt is rejected when that bound exceeds the ``context_window``; an embedding
  input when its own bound exceeds it. The window is compared with the input alone:
  whether a provider's window also holds the output differs, and the bound must not
  guess.
* ``max_tokens`` is rejected when it exceeds the model's ``max_output_tokens``.

The common path costs a sum of string lengths: the repeated-character scan runs only
when the plain character count could exceed the window.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from aiport._errors import CapabilityNotSupportedError, ContextWindowExceededError
from aiport._types import (
    ImageGenerationOptions,
    ImagePart,
    ModelCompletionOptions,
    ModelEmbeddingOptions,
    ProviderModel,
    TextPart,
    ToolCall,
    ToolResultPart,
)

__all__ = [
    "MAX_CHARS_PER_TOKEN",
    "check_completion",
    "check_embedding",
    "check_image",
    "min_tokens",
]

#: The most characters (runs of one character counted once) one token stands for on
#: average, in any tokenizer, over real text. See the module docstring.
MAX_CHARS_PER_TOKEN = 16

_RUN = re.compile(r"(.)\1+", re.DOTALL)


def min_tokens(texts: Iterable[str]) -> int:
    """A lower bound of the tokens ``texts`` take, sent together (see the module docs)."""
    pieces = [t for t in texts if t]
    total = sum(len(t) for t in pieces)
    for text in pieces:
        for run in _RUN.finditer(text):
            total -= len(run.group()) - 1
    return -(-total // MAX_CHARS_PER_TOKEN)


def _tokens_over(texts: Iterable[str], limit: int) -> int | None:
    """``min_tokens(texts)`` when it exceeds ``limit``, else ``None``.

    The plain character count bounds the run-shortened one from above, so the scan for
    runs is skipped whenever even the plain count fits.
    """
    pieces = [t for t in texts if t]
    if -(-sum(len(t) for t in pieces) // MAX_CHARS_PER_TOKEN) <= limit:
        return None
    needed = min_tokens(pieces)
    return needed if needed > limit else None


def check_completion(
    model: ProviderModel,
    options: ModelCompletionOptions,
    *,
    stream: bool,
    capabilities_known: bool,
) -> None:
    """Raise if ``options`` (a completion, or a stream) certainly does not suit ``model``.

    Raises:
        CapabilityNotSupportedError: a needed capability is missing (checked only when
            ``capabilities_known``).
        ContextWindowExceededError: the prompt or ``max_tokens`` exceeds a known limit.
    """
    if capabilities_known:
        capabilities = model.capabilities
        if not capabilities.chat:
            _lacks(model, options.model, "chat", _kind(model) + "; it does not chat")
        if stream and not capabilities.streaming:
            _lacks(model, options.model, "streaming", "does not stream; use complete()")
        if options.tools and not capabilities.tools:
            _lacks(model, options.model, "tools", "does not take tools")
        if (
            options.response_format is not None
            and options.response_format != "text"
            and not capabilities.json_output
        ):
            _lacks(model, options.model, "json_output", "does not offer JSON output")
        if not capabilities.vision and _has_image(options):
            _lacks(model, options.model, "vision", "does not take images as input")
    limit = model.max_output_tokens
    if limit is not None and options.max_tokens is not None and options.max_tokens > limit:
        raise ContextWindowExceededError(
            f"max_tokens={options.max_tokens} exceeds the {limit}-token output limit of "
            f"model {model.id!r} (checked before sending; nothing was sent)",
            provider=model.provider,
            model=options.model,
        )
    window = model.context_window
    if window is not None:
        needed = _tokens_over(_completion_texts(options), window)
        if needed is not None:
            raise ContextWindowExceededError(
                f"the prompt needs at least {needed} tokens, more than the {window}-token "
                f"context window of model {model.id!r} (checked before sending; nothing "
                "was sent)",
                provider=model.provider,
                model=options.model,
            )


def check_embedding(
    model: ProviderModel, options: ModelEmbeddingOptions, *, capabilities_known: bool
) -> None:
    """Raise if ``options`` certainly does not suit the embedding model ``model``."""
    if capabilities_known and not model.capabilities.embeddings:
        _lacks(model, options.model, "embeddings", _kind(model) + "; it does not embed")
    window = model.context_window
    if window is None:
        return
    for index, text in enumerate(options.input):
        needed = _tokens_over((text,), window)
        if needed is not None:
            raise ContextWindowExceededError(
                f"input {index} needs at least {needed} tokens, more than the {window} "
                f"tokens model {model.id!r} embeds at once (checked before sending; "
                "nothing was sent)",
                provider=model.provider,
                model=options.model,
            )


def check_image(
    model: ProviderModel, options: ImageGenerationOptions, *, capabilities_known: bool
) -> None:
    """Raise if ``model`` certainly cannot generate images."""
    if capabilities_known and not model.capabilities.images:
        _lacks(model, options.model, "images", _kind(model) + "; it does not generate images")


def _lacks(model: ProviderModel, requested: str, capability: str, what: str) -> None:
    raise CapabilityNotSupportedError(
        f"model {model.id!r} {what} (its catalogue entry lacks {capability!r}; checked "
        "before sending, nothing was sent; set preflight_checks = false, or declare the "
        "capability in the model's config table, if the entry is wrong)",
        provider=model.provider,
        model=requested,
        capability=capability,
    )


def _kind(model: ProviderModel) -> str:
    names = model.capabilities.names()
    if names:
        return f"is a model for {', '.join(names)}"
    return "declares no capability"


def _has_image(options: ModelCompletionOptions) -> bool:
    for message in options.messages:
        if isinstance(message.content, str):
            continue
        for part in message.content:
            if isinstance(part, ImagePart):
                return True
            if (
                isinstance(part, ToolResultPart)
                and not isinstance(part.content, str)
                and any(isinstance(p, ImagePart) for p in part.content)
            ):
                return True
    return False


def _completion_texts(options: ModelCompletionOptions) -> Iterator[str]:
    for message in options.messages:
        content = message.content
        if isinstance(content, str):
            yield content
            continue
        for part in content:
            if isinstance(part, TextPart):
                yield part.text
            elif isinstance(part, ToolCall):
                yield part.name
                yield part.arguments
            elif isinstance(part, ToolResultPart):
                yield part.text()
    for tool in options.tools or ():
        yield tool.name
        yield tool.description
