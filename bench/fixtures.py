"""The fixed bodies of the benchmark upstream, and what clients must get back from them.

Standard library only: the upstream and every client venv import this module.

- Chat completion: a realistic OpenAI answer (about 900 bytes) whose content is ``TEXT``.
- Stream: ``STREAM_CHUNKS`` content chunks whose pieces add up to ``TEXT``, then a usage
  chunk, then ``[DONE]`` (the shape OpenAI sends with ``stream_options.include_usage``).
- Embedding: one vector of ``EMBED_DIM`` floats, as JSON floats or, for clients that ask
  with ``encoding_format: "base64"``, as base64 little-endian float32 (what OpenAI does).
"""

from __future__ import annotations

import base64
import json
import math
import struct

__all__ = [
    "CHAT_BODY",
    "CHAT_MODEL",
    "EMBED_BODY_BASE64",
    "EMBED_BODY_FLOAT",
    "EMBED_DIM",
    "EMBED_MODEL",
    "PROMPT",
    "STREAM_BODY",
    "STREAM_CHUNKS",
    "TEXT",
    "VECTOR",
    "embed_body",
]

CHAT_MODEL = "gpt-4o"
EMBED_MODEL = "text-embedding-3-small"
PROMPT = "Explain in three sentences why connection pooling matters for API clients."

#: The assistant's answer (300 characters), in every chat response and stream.
TEXT = (
    "Connection pooling keeps TCP connections open between calls, so each request skips "
    "the handshake and slow start. For an API client that makes thousands of small calls "
    "this removes most of the fixed cost per call. It also bounds how many sockets one "
    "process opens, which protects both ends in a burst."
)
assert len(TEXT) == 300, len(TEXT)

STREAM_CHUNKS = 50
EMBED_DIM = 1536

_CREATED = 1_760_000_000
_USAGE = {
    "prompt_tokens": 19,
    "completion_tokens": 61,
    "total_tokens": 80,
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 0,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
}


def _dumps(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


CHAT_BODY: bytes = _dumps(
    {
        "id": "chatcmpl-bench0001",
        "object": "chat.completion",
        "created": _CREATED,
        "model": "gpt-4o-2024-08-06",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": TEXT,
                    "refusal": None,
                    "annotations": [],
                },
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": _USAGE,
        "service_tier": "default",
        "system_fingerprint": "fp_bench",
    }
)


def _stream_body() -> bytes:
    size = len(TEXT) // STREAM_CHUNKS
    pieces = [TEXT[i * size : (i + 1) * size] for i in range(STREAM_CHUNKS)]
    pieces[-1] += TEXT[STREAM_CHUNKS * size :]
    head = {
        "id": "chatcmpl-bench0002",
        "object": "chat.completion.chunk",
        "created": _CREATED,
        "model": "gpt-4o-2024-08-06",
        "service_tier": "default",
        "system_fingerprint": "fp_bench",
    }
    events: list[bytes] = []
    for i, piece in enumerate(pieces):
        delta: dict[str, object] = {"content": piece}
        if i == 0:
            delta = {"role": "assistant", "content": piece, "refusal": None}
        last = i == len(pieces) - 1
        chunk = {
            **head,
            "choices": [
                {
                    "index": 0,
                    "delta": delta,
                    "logprobs": None,
                    "finish_reason": "stop" if last else None,
                }
            ],
            "usage": None,
        }
        events.append(b"data: " + _dumps(chunk) + b"\n\n")
    events.append(b"data: " + _dumps({**head, "choices": [], "usage": _USAGE}) + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    return b"".join(events)


STREAM_BODY: bytes = _stream_body()

#: The fixture vector (deterministic). The base64 form carries it as float32, so clients
#: compare decoded values with a tolerance.
VECTOR: list[float] = [round(math.sin(i * 0.7) * 0.05, 9) for i in range(EMBED_DIM)]


def _embed_body(embedding: object) -> bytes:
    return _dumps(
        {
            "object": "list",
            "data": [{"object": "embedding", "index": 0, "embedding": embedding}],
            "model": EMBED_MODEL,
            "usage": {"prompt_tokens": 4, "total_tokens": 4},
        }
    )


def embed_body(inputs: int, *, as_base64: bool) -> bytes:
    """An embeddings answer with the fixture vector for each of ``inputs`` texts."""
    vector: object = _VECTOR_BASE64 if as_base64 else VECTOR
    return _dumps(
        {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": vector} for i in range(inputs)
            ],
            "model": EMBED_MODEL,
            "usage": {"prompt_tokens": 4 * inputs, "total_tokens": 4 * inputs},
        }
    )


EMBED_BODY_FLOAT: bytes = _embed_body(VECTOR)
_VECTOR_BASE64 = base64.b64encode(struct.pack(f"<{EMBED_DIM}f", *VECTOR)).decode()
EMBED_BODY_BASE64: bytes = _embed_body(_VECTOR_BASE64)
