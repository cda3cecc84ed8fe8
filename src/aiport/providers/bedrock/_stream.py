"""ConverseStream events in, unified stream events and the final response out.

Pure (no I/O). The events (``messageStart``, ``contentBlockStart``,
``contentBlockDelta``, ``contentBlockStop``, ``messageStop``, ``metadata``) are folded
into the shape of a Converse answer, which ``finish()`` parses with
``parse_converse_response``: a stream and a ``complete`` call end identically.

``messageStop`` (with its ``stopReason``) marks the answer whole; the ``metadata``
event with the usage follows it. A stream that ends after ``messageStop`` without
``metadata`` is complete, with zero usage and a warning.
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
from aiport.providers.bedrock._convert import _dumps, parse_converse_response, usage_from
from aiport.providers.bedrock._errors import map_stream_exception
from aiport.providers.bedrock._eventstream import DamagedMessage, EventMessage

__all__ = ["ConverseStreamAssembler"]

_EMPTY: tuple[StreamEvent, ...] = ()
logger = logging.getLogger("aiport")


class _Block:
    """One content block being streamed."""

    __slots__ = ("data", "kind", "pieces", "stopped", "tool_index")

    def __init__(self, kind: str, data: dict[str, Any], tool_index: int | None = None) -> None:
        self.kind = kind  # "text", "toolUse", "json" (the JSON output tool), "reasoning"
        self.data = data
        self.pieces: list[str] = []
        self.stopped = False
        self.tool_index = tool_index


class ConverseStreamAssembler:
    """Turns the messages of a ``converse-stream`` answer into unified events.

    Feed each decoded message with ``feed_message`` (or a parsed event with ``feed``);
    each call returns the unified events it produced. An exception message raises the
    typed error at once. After the body ends, ``finish()`` gives the complete response,
    or raises ``StreamInterruptedError`` when ``messageStop`` never came.

    ``json_tool`` names the forced tool that carries JSON output: its input is streamed
    as text deltas, and becomes the response text.
    """

    def __init__(
        self,
        *,
        provider: str,
        model: str,
        request_id: str | None = None,
        json_tool: str | None = None,
        warnings: Iterable[str] = (),
        models: Mapping[str, ProviderModel] | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        self.provider = provider
        self.model = model
        self.request_id = request_id
        self.json_tool = json_tool
        self.warnings = list(warnings)
        self._models = models
        self._redactor = redactor
        self._blocks: dict[int, _Block] = {}
        self._tool_calls = 0
        self._stop: dict[str, Any] = {}
        self._metadata: dict[str, Any] | None = None
        #: True once ``messageStop`` arrived: the answer is whole.
        self.complete = False

    # -------------------------------------------------------------- feeding

    def feed_message(self, message: EventMessage | DamagedMessage) -> Sequence[StreamEvent]:
        """Feed one decoded event-stream message."""
        if isinstance(message, DamagedMessage):
            return self._skip(f"a damaged stream message ({message.reason})", message.length)
        kind = message.header(":message-type") or "event"
        if kind == "exception":
            raise self._exception(message.header(":exception-type"), _json_object(message.payload))
        if kind == "error":
            code = message.header(":error-code")
            text = message.header(":error-message") or ""
            raise self._exception(code, {"message": text} if text else {})
        if kind != "event":
            return _EMPTY
        event = message.header(":event-type") or ""
        payload = _json_object(message.payload)
        if payload is not None:
            try:
                return self.feed(event, payload)
            except (ValueError, TypeError, AttributeError, KeyError):
                pass  # valid JSON, but not shaped like the event it claims to be
        return self._skip(f"a malformed {event!r} stream event", len(message.payload))

    def _skip(self, what: str, size: int) -> Sequence[StreamEvent]:
        # Never log the data itself: it is the user's content.
        logger.warning("%s: skipped %s (%d bytes)", self.provider, what, size)
        self.warnings.append(f"skipped {what}")
        return _EMPTY

    def _exception(self, exception_type: str | None, payload: Any) -> Exception:
        if self._redactor is not None:  # provider messages may echo a credential
            payload = self._redactor.scrub_value(payload)
        return map_stream_exception(
            self.provider, exception_type, payload or {}, self.model, self.request_id
        )

    def feed(self, event: str, payload: Mapping[str, Any]) -> Sequence[StreamEvent]:
        """Feed one parsed event; return the unified events it produced."""
        if event == "contentBlockDelta":
            return self._delta(payload)
        if event == "contentBlockStart":
            return self._start(payload)
        if event == "contentBlockStop":
            return self._block_stop(payload)
        if event == "messageStop":
            reason = payload["stopReason"]
            if not isinstance(reason, str):
                raise TypeError("stopReason is not a string")
            self._stop = dict(payload)
            self.complete = True
            return _EMPTY
        if event == "metadata":
            usage = payload.get("usage")
            if not isinstance(usage, Mapping):
                raise TypeError("metadata without usage")
            self._metadata = dict(payload)
            return (UsageEvent(usage=usage_from(usage)),)
        return _EMPTY  # messageStart, and event types added after this was written

    def _index(self, payload: Mapping[str, Any]) -> int:
        index = payload["contentBlockIndex"]
        if not isinstance(index, int) or isinstance(index, bool):
            raise TypeError("contentBlockIndex is not an integer")
        return index

    def _start(self, payload: Mapping[str, Any]) -> Sequence[StreamEvent]:
        index = self._index(payload)
        start = payload["start"]
        use = start.get("toolUse")
        if not isinstance(use, Mapping):
            return _EMPTY  # a start of a kind this adapter does not surface
        name, use_id = use["name"], use["toolUseId"]
        if not isinstance(name, str) or not isinstance(use_id, str):
            raise TypeError("toolUse start without a name and an id")
        data = {"toolUseId": use_id, "name": name}
        if self.json_tool is not None and name == self.json_tool:
            self._blocks[index] = _Block("json", data)
            return _EMPTY
        tool_index = self._tool_calls
        self._tool_calls += 1
        self._blocks[index] = _Block("toolUse", data, tool_index)
        return (ToolCallDeltaEvent(index=tool_index, id=use_id, name=name),)

    def _delta(self, payload: Mapping[str, Any]) -> Sequence[StreamEvent]:
        index = self._index(payload)
        delta = payload["delta"]
        block = self._blocks.get(index)
        if "text" in delta:
            text = delta["text"]
            if not isinstance(text, str):
                raise TypeError("text delta is not a string")
            if block is None:
                block = self._blocks[index] = _Block("text", {})
            if block.kind != "text":
                raise ValueError("a text delta for a block that is not text")
            block.pieces.append(text)
            return (TextDeltaEvent(text=text),) if text else _EMPTY
        if "toolUse" in delta:
            piece = delta["toolUse"]["input"]
            if not isinstance(piece, str):
                raise TypeError("toolUse input delta is not a string")
            if block is None or block.kind not in ("toolUse", "json"):
                raise ValueError("a toolUse delta without its contentBlockStart")
            block.pieces.append(piece)
            if not piece:
                return _EMPTY
            if block.kind == "json":
                return (TextDeltaEvent(text=piece),)
            assert block.tool_index is not None
            return (ToolCallDeltaEvent(index=block.tool_index, arguments_delta=piece),)
        reasoning = delta.get("reasoningContent")
        if isinstance(reasoning, Mapping):
            if block is None:
                block = self._blocks[index] = _Block("reasoning", {})
            if block.kind != "reasoning":
                raise ValueError("a reasoning delta for a block that is not reasoning")
            text = reasoning.get("text")
            if isinstance(text, str) and text:
                block.pieces.append(text)
                return (ReasoningDeltaEvent(text=text),)
            if isinstance(reasoning.get("signature"), str):
                block.data["signature"] = reasoning["signature"]
            if "redactedContent" in reasoning:
                block.data["redactedContent"] = reasoning["redactedContent"]
        return _EMPTY  # citations and delta kinds added after this was written

    def _block_stop(self, payload: Mapping[str, Any]) -> Sequence[StreamEvent]:
        block = self._blocks.get(self._index(payload))
        if block is None or block.stopped:
            return _EMPTY
        block.stopped = True
        if block.kind not in ("toolUse", "json"):
            return _EMPTY
        text = "".join(block.pieces)
        value: Any = {}
        if text.strip():
            try:
                value = json.loads(text)
            except ValueError:
                # Kept as text: the caller sees exactly what the model produced.
                value = text
                self.warnings.append(
                    f"the arguments of tool call {block.data['name']!r} are not valid JSON"
                )
        block.data["input"] = value
        if block.kind == "json":
            return _EMPTY
        assert block.tool_index is not None
        call = ToolCall(
            id=block.data["toolUseId"],
            name=block.data["name"],
            arguments=value if isinstance(value, str) else _dumps(value),
        )
        return (ToolCallEvent(index=block.tool_index, tool_call=call),)

    # -------------------------------------------------------------- results

    @property
    def partial_text(self) -> str:
        """The assistant text delivered so far (JSON output included)."""
        return "".join(
            "".join(b.pieces) for _, b in sorted(self._blocks.items()) if b.kind in ("text", "json")
        )

    def interrupted(self, reason: str) -> StreamInterruptedError:
        """The error for a stream that ended (or broke) before ``messageStop``."""
        return StreamInterruptedError(
            f"{self.provider}: the stream ended before the answer was complete ({reason})",
            partial_text=self.partial_text,
            provider=self.provider,
            model=self.model,
            request_id=self.request_id,
        )

    def answer(self) -> dict[str, Any]:
        """The answer assembled so far, in the shape of a Converse response."""
        content: list[dict[str, Any]] = []
        for _, block in sorted(self._blocks.items()):
            text = "".join(block.pieces)
            if block.kind == "text":
                content.append({"text": text})
            elif block.kind == "reasoning":
                if "redactedContent" in block.data:
                    content.append(
                        {"reasoningContent": {"redactedContent": block.data["redactedContent"]}}
                    )
                else:
                    reasoning: dict[str, Any] = {"text": text}
                    if "signature" in block.data:
                        reasoning["signature"] = block.data["signature"]
                    content.append({"reasoningContent": {"reasoningText": reasoning}})
            elif block.stopped:
                content.append({"toolUse": dict(block.data)})
            else:
                content.append({"toolUse": {**block.data, "partialInput": text}})
        answer: dict[str, Any] = {
            "output": {"message": {"role": "assistant", "content": content}},
            **self._stop,
        }
        if self._metadata is not None:
            answer.update(self._metadata)
        return answer

    def finish(self, *, latency: float = 0.0) -> ModelCompletionResponse:
        """The complete response; ``StreamInterruptedError`` if ``messageStop`` never came."""
        if not self.complete:
            raise self.interrupted("no messageStop was received")
        if self._metadata is None:
            self.warnings.append("the stream ended before its metadata event: usage is not known")
        return parse_converse_response(
            self.answer(),
            provider=self.provider,
            model=self.model,
            latency=latency,
            request_id=self.request_id,
            json_tool=self.json_tool,
            warnings=self.warnings,
            models=self._models,
        )


def _json_object(payload: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(payload) if payload else {}
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
