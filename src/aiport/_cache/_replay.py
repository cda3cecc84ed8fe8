"""A stored response turned back into the stream events a provider would have sent."""

from __future__ import annotations

import re
from collections.abc import Iterator

from aiport._types import (
    ModelCompletionResponse,
    StreamEvent,
    StreamFinishEvent,
    TextDeltaEvent,
    TextPart,
    ToolCall,
    ToolCallDeltaEvent,
    ToolCallEvent,
    Usage,
    UsageEvent,
)

__all__ = ["replay_events"]

#: A word with the whitespace before it, or trailing whitespace: the pieces join back
#: into the text exactly (every character is whitespace or not).
_PIECE = re.compile(r"\s*\S+|\s+")
#: Tool-call arguments are sent in pieces of this many characters, as providers do.
_ARGUMENT_PIECE = 32
#: Usage as a response without any reported has it (no usage event is sent then).
_NO_USAGE = Usage()


def replay_events(response: ModelCompletionResponse) -> Iterator[StreamEvent]:
    """The events of ``response`` in message order, then usage, then the finish.

    Text parts become word-sized ``text-delta`` events; each tool call a first delta
    with its id and name, argument deltas, then the complete ``tool-call`` event
    (``index`` counts tool calls, as in live streams). A consumer that joins the deltas
    gets back exactly the stored text and arguments.
    """
    tool_index = 0
    for part in response.message.parts:
        if isinstance(part, TextPart):
            for piece in _PIECE.findall(part.text):
                yield TextDeltaEvent(text=piece)
        elif isinstance(part, ToolCall):
            yield from _tool_call_events(tool_index, part)
            tool_index += 1
    if response.usage != _NO_USAGE:
        yield UsageEvent(usage=response.usage)
    yield StreamFinishEvent(response=response)


def _tool_call_events(index: int, call: ToolCall) -> Iterator[StreamEvent]:
    arguments = call.arguments
    first, rest = arguments[:_ARGUMENT_PIECE], arguments[_ARGUMENT_PIECE:]
    yield ToolCallDeltaEvent(index=index, id=call.id, name=call.name, arguments_delta=first)
    for start in range(0, len(rest), _ARGUMENT_PIECE):
        yield ToolCallDeltaEvent(index=index, arguments_delta=rest[start : start + _ARGUMENT_PIECE])
    yield ToolCallEvent(index=index, tool_call=call)
