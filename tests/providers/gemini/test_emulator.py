"""The emulator's Gemini routes refuse what the real API refuses, with Google's messages,
so an adapter bug shows up as the 400 it would cause in production."""

from __future__ import annotations

import json
from typing import Any

import pytest

from aiport._http import HttpClient, HttpResponse, HttpTimeouts
from aiport.testing import Emulator

from .conftest import GEMINI_KEY

TIMEOUTS = HttpTimeouts(connect=5, first_token=10, idle=10, total=20)
TEXT = {"contents": [{"parts": [{"text": "Hi"}]}]}


async def call(
    http: HttpClient,
    emu: Emulator,
    path: str,
    body: Any = None,
    *,
    method: str = "POST",
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    response: HttpResponse = await http.request(
        method,
        f"{emu.gemini_base_url}/v1beta/{path}",
        headers={"x-goog-api-key": GEMINI_KEY, **(headers or {})},
        body=None if body is None else json.dumps(body).encode(),
        timeouts=TIMEOUTS,
    )
    return response.status, json.loads(response.body) if response.body else None


async def refused(http: HttpClient, emu: Emulator, path: str, body: Any) -> str:
    status, answer = await call(http, emu, path, body)
    assert status == 400, answer
    assert answer["error"]["status"] == "INVALID_ARGUMENT"
    message: str = answer["error"]["message"]
    return message


def generate(**extra: Any) -> dict[str, Any]:
    return {**TEXT, **extra}


# --------------------------------------------------------------------------- auth


async def test_auth_answers(http: HttpClient, emu: Emulator) -> None:
    status, answer = await call(http, emu, "models", method="GET", headers={"x-goog-api-key": ""})
    assert (status, answer["error"]["status"]) == (403, "PERMISSION_DENIED")
    status, answer = await call(
        http, emu, "models", method="GET", headers={"x-goog-api-key": "bad"}
    )
    assert status == 400
    assert answer["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    status, answer = await call(
        http,
        emu,
        "models",
        method="GET",
        headers={"x-goog-api-key": "", "authorization": "Bearer nope"},
    )
    assert (status, answer["error"]["status"]) == (401, "UNAUTHENTICATED")
    status, _ = await call(
        http,
        emu,
        "models",
        method="GET",
        headers={"x-goog-api-key": "", "authorization": f"Bearer {GEMINI_KEY}"},
    )
    assert status == 200


# --------------------------------------------------------------------------- models


async def test_models_are_paged_and_found(http: HttpClient, emu: Emulator) -> None:
    status, first = await call(http, emu, "models?pageSize=4", method="GET")
    assert status == 200
    assert len(first["models"]) == 4
    names = [m["name"] for m in first["models"]]
    token = first["nextPageToken"]
    while token:
        _, page = await call(http, emu, f"models?pageSize=4&pageToken={token}", method="GET")
        names += [m["name"] for m in page["models"]]
        token = page.get("nextPageToken")
    assert "models/gemini-embedding-001" in names
    assert len(names) == len(set(names))
    status, model = await call(http, emu, "models/gemini-2.5-pro", method="GET")
    assert (status, model["outputTokenLimit"]) == (200, 65_536)
    status, _ = await call(http, emu, "models/gpt-4o", method="GET")
    assert status == 404


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("models/gemini-embedding-001:generateContent", TEXT),
        ("models/gemini-2.5-flash:embedContent", {"content": {"parts": [{"text": "x"}]}}),
        ("models/gemini-2.5-flash:predict", {"instances": [{"prompt": "x"}]}),
        ("models/gemini-2.5-flash:fly", TEXT),
    ],
)
async def test_methods_a_model_lacks_are_404(
    http: HttpClient, emu: Emulator, path: str, body: Any
) -> None:
    status, answer = await call(http, emu, path, body)
    assert status == 404
    assert answer["error"]["status"] == "NOT_FOUND"


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"contents": []}, "contents is not specified"),
        (generate(extra=1), 'Unknown name "extra": Cannot find field.'),
        (
            generate(generationConfig={"maxTokens": 5}),
            "Unknown name \"maxTokens\" at 'generation_config'",
        ),
        ({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}, "valid role"),
        ({"contents": [{"parts": []}]}, "contents.parts must not be empty"),
        (
            {"contents": [{"parts": [{"text": "a", "inlineData": {}}]}]},
            "required oneof field 'data'",
        ),
        (
            {"contents": [{"parts": [{"inlineData": {"mimeType": "image/png", "data": "%%"}}]}]},
            "Base64",
        ),
        (generate(generationConfig={"stopSequences": list("abcdef")}), "must not exceed 5"),
        (generate(generationConfig={"temperature": 3}), "temperature"),
        (generate(generationConfig={"responseMimeType": "text/csv"}), "allowed mimetypes"),
        (
            generate(generationConfig={"responseSchema": {"type": "STRING"}}),
            "response_mime_type must be",
        ),
        (
            generate(
                generationConfig={
                    "responseMimeType": "application/json",
                    "responseSchema": {
                        "type": "OBJECT",
                        "properties": {"a": {"type": "STRING"}},
                        "additionalProperties": False,
                    },
                }
            ),
            'Unknown name "additionalProperties"',
        ),
        (
            generate(
                generationConfig={
                    "responseMimeType": "application/json",
                    "responseSchema": {"type": "OBJECT"},
                }
            ),
            "should be non-empty for OBJECT type",
        ),
        (
            generate(
                generationConfig={
                    "responseMimeType": "application/json",
                    "responseSchema": {"type": "ARRAY"},
                }
            ),
            "items: missing field",
        ),
        (
            generate(
                generationConfig={
                    "responseMimeType": "application/json",
                    "responseSchema": {"type": "STRING", "format": "uri"},
                }
            ),
            "only 'enum' and 'date-time' are supported for STRING type",
        ),
        (
            generate(
                generationConfig={
                    "responseMimeType": "application/json",
                    "responseSchema": {
                        "type": "OBJECT",
                        "properties": {"a": {"type": "STRING"}},
                        "required": ["b"],
                    },
                }
            ),
            "property is not defined",
        ),
        (generate(tools=[{"functionDeclarations": [{"name": "1bad"}]}]), "Invalid function name"),
        (
            generate(
                tools=[{"functionDeclarations": [{"name": "f"}]}],
                toolConfig={
                    "functionCallingConfig": {"mode": "AUTO", "allowedFunctionNames": ["f"]}
                },
            ),
            "only allowed when mode is ANY",
        ),
        (
            generate(
                tools=[{"functionDeclarations": [{"name": "f"}]}],
                generationConfig={"responseMimeType": "application/json"},
            ),
            "Function calling with a response mime type",
        ),
        (
            {
                "contents": [
                    {"role": "user", "parts": [{"text": "Hi"}]},
                    {
                        "role": "model",
                        "parts": [
                            {"functionCall": {"name": "f", "args": {}}},
                            {"functionCall": {"name": "g"}},
                        ],
                    },
                    {
                        "role": "user",
                        "parts": [{"functionResponse": {"name": "f", "response": {}}}],
                    },
                ]
            },
            "number of function response parts is equal",
        ),
        (
            {
                "contents": [
                    {"role": "user", "parts": [{"text": "Hi"}]},
                    {"role": "model", "parts": [{"text": "Let me see"}]},
                    {"role": "model", "parts": [{"functionCall": {"name": "f"}}]},
                ]
            },
            "function call turn comes immediately after a user turn",
        ),
    ],
)
async def test_refusals(http: HttpClient, emu: Emulator, body: dict[str, Any], needle: str) -> None:
    message = await refused(http, emu, "models/gemini-2.5-flash:generateContent", body)
    assert needle in message


async def test_snake_case_fields_are_accepted(http: HttpClient, emu: Emulator) -> None:
    body = {
        "contents": [{"role": "user", "parts": [{"text": "Hi"}]}],
        "system_instruction": {"parts": [{"text": "Rules"}]},
        "generation_config": {
            "max_output_tokens": 1,
            "thinking_config": {"include_thoughts": True},
        },
    }
    status, answer = await call(http, emu, "models/gemini-2.5-flash:generateContent", body)
    assert status == 200
    assert answer["candidates"][0]["finishReason"] == "MAX_TOKENS"


async def test_count_tokens(http: HttpClient, emu: Emulator) -> None:
    status, answer = await call(http, emu, "models/gemini-2.5-flash:countTokens", TEXT)
    assert (status, answer["totalTokens"]) == (200, 4)


async def test_json_enum_and_candidates(http: HttpClient, emu: Emulator) -> None:
    config = {
        "responseMimeType": "text/x.enum",
        "responseSchema": {"type": "STRING", "enum": ["yes", "no"]},
        "candidateCount": 2,
    }
    status, answer = await call(
        http, emu, "models/gemini-2.5-flash:generateContent", generate(generationConfig=config)
    )
    assert status == 200
    assert [c["content"]["parts"][0]["text"] for c in answer["candidates"]] == ["yes", "yes"]
    assert answer["usageMetadata"]["candidatesTokenCount"] == 2


async def test_embedding_refusals(http: HttpClient, emu: Emulator) -> None:
    one = {"content": {"parts": [{"text": "x"}]}}
    message = await refused(
        http, emu, "models/text-embedding-004:embedContent", {**one, "outputDimensionality": 769}
    )
    assert "between 1 and 768" in message
    message = await refused(
        http, emu, "models/text-embedding-004:embedContent", {**one, "taskType": "NOPE"}
    )
    assert "task_type" in message
    message = await refused(
        http,
        emu,
        "models/text-embedding-004:batchEmbedContents",
        {"requests": [{"model": "models/gemini-embedding-001", **one}]},
    )
    assert "does not match the model in the URL" in message
    message = await refused(
        http,
        emu,
        "models/text-embedding-004:batchEmbedContents",
        {"requests": [{"model": "models/text-embedding-004", **one}] * 101},
    )
    assert "at most 100 requests" in message


async def test_imagen_refusals(http: HttpClient, emu: Emulator) -> None:
    path = "models/imagen-4.0-generate-001:predict"
    prompt = {"instances": [{"prompt": "cat"}]}
    assert "sampleCount" in await refused(
        http, emu, path, {**prompt, "parameters": {"sampleCount": 5}}
    )
    assert "aspect ratio" in await refused(
        http, emu, path, {**prompt, "parameters": {"aspectRatio": "2:1"}}
    )
    status, answer = await call(http, emu, path, prompt)
    assert status == 200
    assert len(answer["predictions"]) == 4  # Imagen's default sampleCount


async def test_signatures_are_checked_on_gemini_3(http: HttpClient, emu: Emulator) -> None:
    tools = [{"functionDeclarations": [{"name": "f", "parametersJsonSchema": {"type": "object"}}]}]
    status, first = await call(
        http, emu, "models/gemini-3-pro-preview:generateContent", generate(tools=tools)
    )
    assert status == 200
    part = first["candidates"][0]["content"]["parts"][0]
    signature = part["thoughtSignature"]

    def history(signature: str | None) -> dict[str, Any]:
        call_part: dict[str, Any] = {"functionCall": part["functionCall"]}
        if signature is not None:
            call_part["thoughtSignature"] = signature
        return {
            "contents": [
                {"role": "user", "parts": [{"text": "Hi"}]},
                {"role": "model", "parts": [call_part]},
                {
                    "role": "user",
                    "parts": [{"functionResponse": {"name": "f", "response": {"output": "ok"}}}],
                },
            ],
            "tools": tools,
        }

    path = "models/gemini-3-pro-preview:generateContent"
    status, answer = await call(http, emu, path, history(signature))
    assert (status, answer["candidates"][0]["content"]["parts"][0]["text"]) == (
        200,
        "Tool results: ok",
    )
    # The URL-safe base64 alphabet (what pydantic-based SDKs send back) is the same bytes.
    urlsafe = signature.replace("+", "-").replace("/", "_")
    assert (await call(http, emu, path, history(urlsafe)))[0] == 200
    assert (await call(http, emu, path, history("skip_thought_signature_validator")))[0] == 200
    assert "missing a thought_signature" in await refused(http, emu, path, history(None))
    assert "Corrupted thought signature" in await refused(http, emu, path, history("AAAA"))
    # Older models take a history without signatures.
    status, _ = await call(http, emu, "models/gemini-2.5-flash:generateContent", history(None))
    assert status == 200
