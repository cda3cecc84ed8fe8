"""``streamGenerateContent?alt=sse``: chunks in, unified stream events and the final
response out. Pure (no I/O).

Each SSE event holds one ``GenerateContentResponse`` chunk: new parts for each candidate,
the usage so far (cumulative) and, on the last chunk, ``finishReason``. Function calls
arrive whole, so each gives a ``ToolCallDeltaEvent`` with all its arguments followed at
once by its ``ToolCallEvent``. The assembler rebuilds the answer a ``generateContent``
call would have given (text parts of the same kind joined, a ``thoughtSignature`` sent in
an empty trailing part attached to the text before it) and ``finish()`` parses it with
``parse_generate_response``, so a stream ends exactly as ``complete`` does.
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
    ToolCallDeltaEvent,
    ToolCallEvent,
    UsageEvent,
)
from aiport.providers.gemini._convert import (
    blocked_prompt_error,
    parse_generate_response,
    parse_usage,
    tool_call_from_part,
)
from aiport.providers.gemini._errors import map_stream_error

__all__ = ["GenerateStreamAssembler"]

logger = logging.getLogger("aiport")
_EMPTY: tuple[StreamEvent, ...] = ()


class _Candidate:
    """What the chunks of one candidate add up to."""

    __slots__ = ("fields", "parts")

    def __init__(self) -> None:
        self.parts: list[dict[str, Any]] = []
        #: The candidate's other fields (finishReason, safetyRatings...), latest wins.
        self.fields: dict[str, Any] = {}

    def add(self, part: Mapping[str, Any]) -> None:
        text = part.get("text")
        last = self.parts[-1] if self.parts else None
        if isinstance(text, str) and last is not None and isinstance(last.get("text"), str):
            same_kind = bool(last.get("thought")) == bool(part.get("thought"))
            signature = part.get("thoughtSignature")
            if same_kind and "thoughtSignature" not in last:
                last["text"] += text
                if signature:
                    last["thoughtSignature"] = signature
                return
            if not text and not signature:
                return  # an empty keep-alive part
        if isinstance(text, str) and not text and not part.get("thoughtSignature"):
            return
        self.parts.append(dict(part))

    def as_wire(self, index: int) -> dict[str, Any]:
        candidate: dict[str, Any] = {}
        if self.parts:
            candidate["content"] = {"parts": self.parts, "role": "model"}
        candidate.update(self.fields)
        candidate["index"] = index
        return candidate


class GenerateStreamAssembler:
    """Turns the chunks of a streamed ``generateContent`` call into unified events.

    Feed each SSE event's data with ``feed_sse`` (or parsed chunks with ``feed``); each
    call returns the unified events produced. ``complete`` turns true once the first
    candidate's ``finishReason`` arrived; ``finish()`` then returns the response (else
    raises ``StreamInterruptedError``). An ``{"error": ...}`` event raises the typed error,
    a blocked prompt ``ContentFilterError``; a malformed event is skipped, logged at
    WARNING and named in the response's warnings.
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
        self._head: dict[str, Any] = {}
        self._candidates: dict[int, _Candidate] = {}
        self._usage: dict[str, Any] | None = None
        self._calls = 0
        #: True once the first candidate's finishReason arrived: the answer is whole.
        self.complete = False

    # -------------------------------------------------------------- feeding

    def feed_sse(self, data: str) -> Sequence[StreamEvent]:
        """Feed one SSE event's ``data`` text."""
        if not data.strip():
            return _EMPTY
        try:
            payload = json.loads(data)
        except ValueError:
            payload = None
        if isinstance(payload, dict):
            try:
                return self.feed(payload)
            except (ValueError, TypeError, AttributeError, KeyError):
                pass  # valid JSON, but not shaped like a chunk
        # Never the data itself in the log: it is the user's content.
        logger.warning("%s: skipped a malformed stream event (%d bytes)", self.provider, len(data))
        self.warnings.append("skipped a malformed stream event")
        return _EMPTY

    def feed(self, chunk: Mapping[str, Any]) -> Sequence[StreamEvent]:
        """Feed one parsed chunk; return the unified events it produced.

        The chunk is checked whole before anything is kept, so a malformed chunk changes
        nothing (``feed_sse`` then skips it).
        """
        if "error" in chunk:
            payload = dict(chunk)
            if self._redactor is not None:  # provider messages may echo a key
                payload = self._redactor.scrub_value(payload)
            raise map_stream_error(self.provider, payload, self.model, self.request_id)
        blocked = blocked_prompt_error(
            chunk, provider=self.provider, model=self.model, request_id=self.request_id
        )
        if blocked is not None:
            raise blocked
        candidates = chunk.get("candidates", [])
        usage = chunk.get("usageMetadata")
        if not isinstance(candidates, list) or (usage is not None and not isinstance(usage, dict)):
            raise TypeError("a chunk's candidates or usage have the wrong type")
        planned: list[tuple[int, dict[str, Any], list[Mapping[str, Any]]]] = []
        for candidate in candidates:
            index = candidate.get("index", 0)
            content = candidate.get("content") or {}
            parts = content.get("parts") or []
            if not isinstance(index, int) or not isinstance(parts, list):
                raise TypeError("a candidate has the wrong shape")
            if not all(isinstance(p, Mapping) for p in parts):
                raise TypeError("a part is not an object")
            fields = {k: v for k, v in candidate.items() if k not in ("content", "index")}
            planned.append((index, fields, parts))
        response_id = chunk.get("responseId")
        if isinstance(response_id, str) and response_id:
            self._head["responseId"] = response_id
        events: list[StreamEvent] = []
        for index, fields, parts in planned:
            events.extend(self._candidate(index, fields, parts))
        for key in ("modelVersion", "promptFeedback", "createTime"):
            if key in chunk:
                self._head[key] = chunk[key]
        if usage is not None and usage != self._usage:
            self._usage = usage
            events.append(UsageEvent(usage=parse_usage(usage)))
        return events

    def _candidate(
        self, index: int, fields: dict[str, Any], parts: list[Mapping[str, Any]]
    ) -> list[StreamEvent]:
        state = self._candidates.get(index)
        if state is None:
            state = self._candidates[index] = _Candidate()
        events: list[StreamEvent] = []
        for part in parts:
            if index == 0:
                events.extend(self._part_events(part))
            state.add(part)
        state.fields.update(fields)
        if index == 0 and fields.get("finishReason"):
            self.complete = True
        return events

    def _part_events(self, part: Mapping[str, Any]) -> list[StreamEvent]:
        text = part.get("text")
        if isinstance(text, str):
            if not text:
                return []
            if part.get("thought") is True:
                return [ReasoningDeltaEvent(text=text)]
            return [TextDeltaEvent(text=text)]
        function_call = part.get("functionCall")
        if not isinstance(function_call, Mapping):
            return []
        position = self._calls
        call = tool_call_from_part(
            function_call, part, response_id=self._head.get("responseId", ""), position=position
        )
        self._calls += 1
        return [
            ToolCallDeltaEvent(
                index=position, id=call.id, name=call.name, arguments_delta=call.arguments
            ),
            ToolCallEvent(index=position, tool_call=call),
        ]

    # -------------------------------------------------------------- results

    @property
    def partial_text(self) -> str:
        """The answer text delivered so far (first candidate, thoughts excluded)."""
        state = self._candidates.get(0)
        if state is None:
            return ""
        return "".join(
            p["text"]
            for p in state.parts
            if isinstance(p.get("text"), str) and not p.get("thought")
        )

    def interrupted(self, reason: str) -> StreamInterruptedError:
        """The error for a stream that ended (or broke) before its finishReason."""
        return StreamInterruptedError(
            f"{self.provider}: the stream ended before the answer was complete ({reason})",
            partial_text=self.partial_text,
            provider=self.provider,
            model=self.model,
            request_id=self.request_id,
        )

    def assembled(self) -> dict[str, Any]:
        """The ``generateContent`` answer the chunks so far add up to (the response's raw)."""
        data: dict[str, Any] = {
            "candidates": [
                state.as_wire(index) for index, state in sorted(self._candidates.items())
            ]
        }
        if self._usage is not None:
            data["usageMetadata"] = self._usage
        for key in ("modelVersion", "responseId", "promptFeedback", "createTime"):
            if key in self._head:
                data[key] = self._head[key]
        return data

    def finish(self, *, latency: float = 0.0) -> ModelCompletionResponse:
        """The complete response; ``StreamInterruptedError`` if no finishReason came."""
        if not self.complete:
            raise self.interrupted("no finishReason was received")
        return parse_generate_response(
            self.assembled(),
            provider=self.provider,
            latency=latency,
            request_id=self.request_id,
            warnings=self.warnings,
            models=self._models,
            requested_model=self.model,
        )
