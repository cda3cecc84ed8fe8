"""What an OpenAI-compatible server does differently from OpenAI, and how a request adapts.

A ``ServerQuirks`` value describes one server (the presets in
``aiport/providers/presets.toml`` each give one). ``apply_chat_quirks`` rewrites a Chat
Completions body built by ``_convert.build_chat_request`` for that server: settings the
server refuses are taken out and named in the response's warnings (never silently
dropped, never sent to fail with a 400), and fields it spells differently are renamed.
Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["RESPONSE_FORMATS", "TOOL_CHOICES", "ServerQuirks", "apply_chat_quirks"]

#: The ``tool_choice`` kinds a server may accept (``named``: ``{"type": "function", ...}``).
TOOL_CHOICES = frozenset({"auto", "none", "required", "named"})
#: The JSON ``response_format`` types a server may accept.
RESPONSE_FORMATS = frozenset({"json_object", "json_schema"})


@dataclass(frozen=True, slots=True)
class ServerQuirks:
    """How one OpenAI-compatible server departs from OpenAI's Chat Completions API.

    Attributes:
        max_tokens_field: the name the server reads the output limit from.
        unsupported: top-level request fields the server refuses (``n``, ``logprobs``,
            ``parallel_tool_calls``...): removed, with a warning, whoever set them.
        tool_choice: the ``tool_choice`` kinds it accepts (see ``TOOL_CHOICES``);
            another is removed with a warning (the model then decides).
        response_format: the JSON output types it accepts; ``json_schema`` falls back to
            ``json_object`` when only that is accepted, else the format is removed.
        stream_usage: whether it takes ``stream_options: {"include_usage": true}``;
            when not, the option is not sent (usage then comes only if the server sends
            it on its own).
        message_names: whether messages may carry ``name``.
        image_input: whether user messages may carry images at all.
        image_urls: whether images may be given by URL (else only inline ``data:`` URLs).
        embeddings: whether the server has ``/embeddings``.
        images: whether the server has ``/images/generations``.
    """

    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    unsupported: frozenset[str] = frozenset()
    tool_choice: frozenset[str] = TOOL_CHOICES
    response_format: frozenset[str] = RESPONSE_FORMATS
    stream_usage: bool = True
    message_names: bool = True
    image_input: bool = True
    image_urls: bool = True
    embeddings: bool = True
    images: bool = True
    #: Free text naming where the quirks were read (documentation links).
    source: str = field(default="", compare=False)


def _tool_choice_kind(value: Any) -> str:
    return value if isinstance(value, str) else "named"


def _strip_images(
    messages: list[Any], keep: Any, server: str, warnings: list[str], why: str
) -> None:
    """Remove the image parts ``keep`` refuses from user messages, with one warning."""
    removed = 0
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        parts = [p for p in content if not (p.get("type") == "image_url" and not keep(p))]
        if len(parts) == len(content):
            continue
        removed += len(content) - len(parts)
        if all(p.get("type") == "text" for p in parts):
            # Text alone goes as a plain string, which every compatible server takes.
            message["content"] = "".join(str(p.get("text", "")) for p in parts)
        else:
            message["content"] = parts
    if removed:
        warnings.append(f"{server} {why}: {removed} image(s) were not sent")


def _is_inline(part: Mapping[str, Any]) -> bool:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, Mapping) else image
    return isinstance(url, str) and url.startswith("data:")


def apply_chat_quirks(
    body: dict[str, Any],
    warnings: list[str],
    quirks: ServerQuirks,
    server: str,
    *,
    stream: bool,
) -> None:
    """Adapt a Chat Completions ``body`` to ``quirks`` in place; append a warning for
    every requested setting that was not sent. ``server`` names the provider in them."""
    if quirks.max_tokens_field == "max_completion_tokens":
        if "max_tokens" in body and "max_completion_tokens" not in body:
            body["max_completion_tokens"] = body.pop("max_tokens")
    elif "max_completion_tokens" in body and "max_tokens" not in body:
        body["max_tokens"] = body.pop("max_completion_tokens")
    for key in sorted(quirks.unsupported):
        if key in body:
            del body[key]
            warnings.append(f"{server} does not support '{key}'; it was not sent")
    if stream and not quirks.stream_usage:
        body.pop("stream_options", None)
    if "tool_choice" in body:
        kind = _tool_choice_kind(body["tool_choice"])
        if kind not in quirks.tool_choice:
            del body["tool_choice"]
            warnings.append(
                f"{server} does not support tool_choice {kind!r}; it was not sent "
                "(the model decides whether to call a tool)"
            )
    response_format = body.get("response_format")
    if isinstance(response_format, Mapping):
        format_type = response_format.get("type")
        if format_type in RESPONSE_FORMATS and format_type not in quirks.response_format:
            if format_type == "json_schema" and "json_object" in quirks.response_format:
                body["response_format"] = {"type": "json_object"}
                warnings.append(
                    f"{server} does not support JSON schema output; JSON output "
                    "(json_object) was asked for instead, without the schema"
                )
            else:
                del body["response_format"]
                warnings.append(
                    f"{server} does not support response_format {format_type!r}; it was not sent"
                )
    messages = body.get("messages")
    if not isinstance(messages, list):
        return
    if not quirks.message_names:
        named = 0
        for message in messages:
            if isinstance(message, dict) and message.pop("name", None) is not None:
                named += 1
        if named:
            warnings.append(f"{server} does not support message names; {named} were not sent")
    if not quirks.image_input:
        _strip_images(messages, lambda _: False, server, warnings, "does not take image input")
    elif not quirks.image_urls:
        _strip_images(
            messages,
            _is_inline,
            server,
            warnings,
            "takes only inline images (base64), not image URLs",
        )
