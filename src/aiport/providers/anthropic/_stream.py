"""Anthropic Messages streams: events in, unified stream events and the final response out.

Pure (no I/O). ``finish()`` returns what ``parse_messages_response`` returns for the same
message, so a stream and a ``complete`` call end identically.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from aiport._errors import StreamInterruptedError
from aiport._redact import Redactor
from aiport._types import (
    ModelCompletionResponse,
    ProviderModel,
    ReasoningDeltaEvent,
    StreamEvent,
    TextDeltaEvent,
    ToolCall,
    ToolCallDeltaEvent,
    ToolCallEvent,
    UsageEvent,
)
from aiport.providers.anthropic._convert import (
    _dumps,
    _usage,
    parse_messages_response,
)
from aiport.providers.anthropic._errors import map_stream_error

__all__ = ["MessagesStreamAssembler"]

_EMPTY: tuple[StreamEvent, ...] = ()
logger = logging.getLogger("aiport")


class _Block:
    """One content block being streamed."""

    __slots__ = ("data", "kind", "pieces", "stopped", "tool_index")

    def __init__(self, data: dict[str, Any], tool_index: int | None) -> None:
        self.data = data
        self.kind: str = data.get("type", "")
        self.pieces: list[str] = []
        self.stopped = False
        self.tool_index = tool_index


class MessagesStreamAssembler:
    """Turns the SSE events of a streamed ``/v1/messages`` call into unified events.

    Feed each event with ``feed_sse(name, data_text)`` (or ``feed(name, parsed)``); each
    call returns the unified events it produced. After the body ends, ``finish()``
    returns the complete response, equal to what ``parse_messages_response`` gives for
    the same message, or raises ``StreamInterruptedError`` when Anthropic never
    signalled the end (a ``message_delta`` carrying ``stop_reason``). An ``error``
    event raises the typed error at once.
    """

    def __init__(
        self,
        *,
        provider: str,
        model: str,
        request_id: str | None = None,
        warnings: Iterable[str] = (),
        models: Mapping[str, ProviderModel] | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        self.provider = provider
        self.model = model
        self.request_id = request_id
        self.warnings = list(warnings)
        self._models = models
        self._redactor = redactor
        # Replaced by message_start's message; here for streams that lack one.
        self._message: dict[str, Any] = {"id": "", "model": model, "content": [], "usage": {}}
        self._blocks: dict[int, _Block] = {}
        self._tool_calls = 0
        #: True once a ``message_delta`` carried the stop reason: the answer is whole.
        self.complete = False

    # -------------------------------------------------------------- feeding

    def feed_sse(self, event: str, data: str) -> Sequence[StreamEvent]:
        """Feed one SSE event as received (its name and raw ``data`` text)."""
        try:
            payload = json.loads(data)
        except ValueError:
            payload = None
        if isinstance(payload, dict):
            try:
                return self.feed(event, payload)
            except (ValueError, TypeError, AttributeError):
                pass  # valid JSON, but not shaped like the event it claims to be
        # Never log the data itself: it is the user's content.
        logger.warning(
            "%s: skipped a malformed %r stream event (%d bytes)", self.provider, event, len(data)
        )
        self.warnings.append(f"skipped a malformed {event!r} stream event")
        return _EMPTY

    def feed(self, event: str, payload: dict[str, Any]) -> Sequence[StreamEvent]:
        """Feed one parsed event; return the unified events it produced."""
        kind = payload.get("type") or event
        if kind == "content_block_delta":
            return self._delta(payload)
        if kind == "content_block_start":
            return self._start(payload)
        if kind == "content_block_stop":
            return self._stop(payload)
        if kind == "message_delta":
            return self._message_delta(payload)
        if kind == "message_start":
            message = payload.get("message")
            if isinstance(message, dict):
                self._message = {**message, "content": []}
            return _EMPTY
        if kind == "error" or event == "error":
            if self._redactor is not None:  # provider messages may echo a key
                payload = self._redactor.scrub_value(payload)
            raise map_stream_error(self.provider, payload, self.model, self.request_id)
        return _EMPTY  # ping, message_stop, and event types added after this was written

    def _delta(self, payload: dict[str, Any]) -> Sequence[StreamEvent]:
        block = self._blocks.get(payload.get("index", -1))
        delta = payload.get("delta")
        if block is None or not isinstance(delta, dict):
            return _EMPTY
        kind = delta.get("type")
        # Each event is built (and so validated) before the block changes, so a bad
        # delta is skipped whole.
        if kind == "text_delta":
            text = delta.get("text")
            if not text:
                return _EMPTY
            out: tuple[StreamEvent, ...] = (TextDeltaEvent(text=text),)
            block.pieces.append(text)
            return out
        if kind == "input_json_delta":
            piece = delta.get("partial_json")
            if not piece:
                return _EMPTY
            if not isinstance(piece, str):
                raise TypeError("partial_json is not a string")
            block.pieces.append(piece)
            if block.tool_index is None:
                return _EMPTY  # a server tool's input: kept in raw only
            return (ToolCallDeltaEvent(index=block.tool_index, arguments_delta=piece),)
        if kind == "thinking_delta":
            text = delta.get("thinking")
            if not text:
                return _EMPTY
            out = (ReasoningDeltaEvent(text=text),)
            block.pieces.append(text)
            return out
        if kind == "signature_delta":
            block.data["signature"] = delta.get("signature")
        elif kind == "citations_delta":
            block.data.setdefault("citations", []).append(delta.get("citation"))
        return _EMPTY

    def _start(self, payload: dict[str, Any]) -> Sequence[StreamEvent]:
        data = payload.get("content_block")
        if not isinstance(data, dict):
            return _EMPTY
        data = dict(data)
        kind = data.get("type")
        tool_index = self._tool_calls if kind == "tool_use" else None
        text = data.get("text" if kind == "text" else "thinking") or ""
        out: tuple[StreamEvent, ...] = _EMPTY
        if tool_index is not None:
            event: StreamEvent = ToolCallDeltaEvent(
                index=tool_index, id=data.get("id"), name=data.get("name")
            )
            out = (event,)
            self._tool_calls += 1
        elif text and kind == "text":
            out = (TextDeltaEvent(text=text),)
        elif text and kind == "thinking":
            out = (ReasoningDeltaEvent(text=text),)
        block = _Block(data, tool_index)
        if out and tool_index is None:
            block.pieces.append(text)
        self._blocks[payload.get("index", len(self._blocks))] = block
        return out

    def _stop(self, payload: dict[str, Any]) -> Sequence[StreamEvent]:
        block = self._blocks.get(payload.get("index", -1))
        if block is None or block.stopped:
            return _EMPTY
        block.stopped = True
        if block.kind not in ("tool_use", "server_tool_use"):
            return _EMPTY
        text = "".join(block.pieces)
        block.pieces = []
        data = block.data
        if text.strip():
            try:
                data["input"] = json.loads(text)
            except ValueError:
                # Kept as text: the caller sees exactly what the model produced.
                data["input"] = text
                self.warnings.append(
                    f"the arguments of tool call {data.get('name')!r} are not valid JSON"
                )
        elif not isinstance(data.get("input"), dict):
            data["input"] = {}
        if block.tool_index is None:
            return _EMPTY
        value = data["input"]
        call = ToolCall(
            id=str(data.get("id", "")),
            name=str(data.get("name", "")),
            arguments=value if isinstance(value, str) else _dumps(value),
        )
        return (ToolCallEvent(index=block.tool_index, tool_call=call),)

    def _message_delta(self, payload: dict[str, Any]) -> Sequence[StreamEvent]:
        message = self._message
        delta = payload.get("delta")
        if isinstance(delta, dict):
            for key in ("stop_reason", "stop_sequence", "stop_details", "container"):
                if key in delta:
                    message[key] = delta[key]
            if delta.get("stop_reason"):
                self.complete = True
        usage = payload.get("usage")
        if not isinstance(usage, dict):
            return _EMPTY
        # message_delta counts are cumulative: they replace message_start's, and a count
        # left out keeps its earlier value.
        merged = dict(message.get("usage") or {})
        merged.update((k, v) for k, v in usage.items() if v is not None)
        message["usage"] = merged
        return (UsageEvent(usage=_usage(merged)),)

    # -------------------------------------------------------------- results

    @property
    def partial_text(self) -> str:
        """The assistant text delivered so far."""
        return "".join(
            "".join(b.pieces) for b in self._blocks.values() if b.kind == "text" and b.pieces
        )

    def interrupted(self, reason: str) -> StreamInterruptedError:
        """The error for a stream that ended (or broke) before its end was signalled."""
        return StreamInterruptedError(
            f"{self.provider}: the stream ended before the answer was complete ({reason})",
            partial_text=self.partial_text,
            provider=self.provider,
            model=self.model,
            request_id=self.request_id,
        )

    def message(self) -> dict[str, Any]:
        """The message assembled so far, in the shape of a non-streamed answer."""
        content: list[dict[str, Any]] = []
        for block in self._blocks.values():
            data = dict(block.data)
            if block.kind == "text":
                data["text"] = "".join(block.pieces)
            elif block.kind == "thinking":
                data["thinking"] = "".join(block.pieces)
            elif block.kind in ("tool_use", "server_tool_use") and not block.stopped:
                data["partial_json"] = "".join(block.pieces)
            content.append(data)
        return {**self._message, "content": content}

    def finish(
        self, *, latency: float = 0.0, request_id: str | None = None
    ) -> ModelCompletionResponse:
        """The complete response; ``StreamInterruptedError`` if the end never came."""
        if not self.complete:
            raise self.interrupted("no stop_reason was received")
        return parse_messages_response(
            self.message(),
            provider=self.provider,
            latency=latency,
            request_id=request_id if request_id is not None else self.request_id,
            warnings=self.warnings,
            models=self._models,
            requested_model=self.model,
        )
