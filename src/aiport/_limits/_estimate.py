"""Token estimates made before a call, to reserve tokens-per-minute room.

Deliberately cheap (no tokenizer, which would cost more than the limiter saves): about
four characters a token for text, a flat cost per image, plus the output the call may
produce. The reservation is corrected to the usage the provider reports when the call
ends, so an estimate only has to be the right size, not exact.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiport._types import (
        ImageGenerationOptions,
        ModelCompletionOptions,
        ModelEmbeddingOptions,
    )

__all__ = [
    "CHARS_PER_TOKEN",
    "DEFAULT_OUTPUT_TOKENS",
    "estimate_completion",
    "estimate_embedding",
    "estimate_image",
]

CHARS_PER_TOKEN = 4
#: Output reserved for a completion that sets no ``max_tokens``.
DEFAULT_OUTPUT_TOKENS = 256
#: What an input image is counted as (OpenAI's cost of a 1024x1024 image in high detail).
IMAGE_TOKENS = 765
#: Role and separators of each message.
_MESSAGE_OVERHEAD_TOKENS = 4


def _tokens(chars: int) -> int:
    return math.ceil(chars / CHARS_PER_TOKEN)


def estimate_completion(
    options: ModelCompletionOptions, *, default_output: int = DEFAULT_OUTPUT_TOKENS
) -> tuple[int, int]:
    """(input tokens, input plus output tokens) a completion may use.

    Input: the text of every message part (tool calls and results included), the tool
    schemas and the response schema. Output: ``max_tokens`` when set, else
    ``default_output``.
    """
    from aiport._types import ImagePart, TextPart, ToolCall, ToolResultPart

    chars = 0
    images = 0
    for message in options.messages:
        if isinstance(message.content, str):
            chars += len(message.content)
            continue
        for part in message.content:
            if isinstance(part, TextPart):
                chars += len(part.text)
            elif isinstance(part, ImagePart):
                images += 1
            elif isinstance(part, ToolCall):
                chars += len(part.name) + len(part.arguments)
            elif isinstance(part, ToolResultPart):
                if isinstance(part.content, str):
                    chars += len(part.content)
                else:
                    chars += sum(len(p.text) for p in part.content if isinstance(p, TextPart))
                    images += sum(1 for p in part.content if isinstance(p, ImagePart))
    for tool in options.tools or ():
        chars += len(tool.name) + len(tool.description) + len(json.dumps(tool.parameters))
    response_format = options.response_format
    if response_format is not None and not isinstance(response_format, str):
        chars += len(json.dumps(response_format.schema_))
    prompt = (
        _tokens(chars) + images * IMAGE_TOKENS + _MESSAGE_OVERHEAD_TOKENS * len(options.messages)
    )
    output = options.max_tokens if options.max_tokens is not None else default_output
    return prompt, prompt + output


def estimate_embedding(options: ModelEmbeddingOptions) -> int:
    """Tokens of an embedding call: its inputs."""
    return _tokens(sum(len(text) for text in options.input))


def estimate_image(options: ImageGenerationOptions) -> int:
    """Tokens of an image generation call, as far as they can be known: its prompt."""
    return _tokens(len(options.prompt))
