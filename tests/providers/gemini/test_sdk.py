"""The official ``google-genai`` SDK, pointed at the emulator, accepts its answers.

The SDK is a reference parser here (a dev-only dependency): if the emulator's bodies,
streams or errors drifted from the real Gemini API, the SDK would fail to read them.
Its 3.x releases default to API version ``v1``; the emulator serves ``v1beta`` (what
aiport uses), so the client is told so.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel

from aiport.testing import Emulator, Fault

from .conftest import GEMINI_KEY

genai = pytest.importorskip("google.genai")
types = pytest.importorskip("google.genai.types")
errors = pytest.importorskip("google.genai.errors")


class Weather(BaseModel):
    city: str
    celsius: int


@pytest.fixture(scope="module")
def threaded() -> Iterator[Emulator]:
    with Emulator(api_keys={GEMINI_KEY}).run_in_thread() as emulator:
        yield emulator


@pytest.fixture
def emulator(threaded: Emulator) -> Iterator[Emulator]:
    threaded.reset()
    yield threaded
    threaded.reset()


@pytest.fixture
def client(emulator: Emulator) -> Any:
    options = types.HttpOptions(
        base_url=emulator.gemini_base_url,
        api_version="v1beta",
        retry_options=types.HttpRetryOptions(attempts=1),
    )
    return genai.Client(api_key=GEMINI_KEY, http_options=options)


def test_generate_content(client: Any, emulator: Emulator) -> None:
    response = client.models.generate_content(
        model="gemini-2.5-flash",
        contents="Hello there",
        config=types.GenerateContentConfig(system_instruction="Be brief.", max_output_tokens=50),
    )
    assert response.text == "You said: Hello there"
    assert response.candidates[0].finish_reason == types.FinishReason.STOP
    assert response.model_version == "gemini-2.5-flash"
    assert response.response_id
    usage = response.usage_metadata
    assert (usage.prompt_token_count, usage.candidates_token_count) == (8, 4)
    assert usage.total_token_count == 12
    assert usage.prompt_tokens_details[0].modality == types.MediaModality.TEXT
    assert emulator.requests[-1].headers["x-goog-api-key"] == GEMINI_KEY


def test_generate_content_stream(client: Any) -> None:
    chunks = list(
        client.models.generate_content_stream(model="gemini-2.5-flash", contents="Hello there")
    )
    assert "".join(chunk.text for chunk in chunks) == "You said: Hello there"
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert [c.usage_metadata.candidates_token_count for c in chunks] == [1, 2, 3, 4]
    assert len({c.response_id for c in chunks}) == 1


def test_function_calls_and_automatic_function_calling(client: Any) -> None:
    def get_weather(city: str) -> str:
        """Weather in a city."""
        return "sunny"

    manual = client.models.generate_content(
        model="gemini-2.5-flash",
        contents="Weather in Paris?",
        config=types.GenerateContentConfig(
            tools=[get_weather],
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        ),
    )
    [call] = manual.function_calls
    assert (call.name, call.args) == ("get_weather", {"city": "example"})
    # The SDK runs the function and sends its result back; the emulator answers from it.
    chat = client.chats.create(
        model="gemini-3-pro-preview", config=types.GenerateContentConfig(tools=[get_weather])
    )
    reply = chat.send_message("Weather in Paris?")
    assert reply.text == "Tool results: sunny"


def test_json_schema_output(client: Any) -> None:
    response = client.models.generate_content(
        model="gemini-2.5-flash",
        contents="Weather?",
        config=types.GenerateContentConfig(
            response_mime_type="application/json", response_schema=Weather
        ),
    )
    assert response.parsed == Weather(city="example", celsius=1)


def test_thinking_parts(client: Any) -> None:
    response = client.models.generate_content(
        model="gemini-2.5-flash",
        contents="Hi",
        config=types.GenerateContentConfig(
            thinking_config=types.ThinkingConfig(include_thoughts=True)
        ),
    )
    parts = response.candidates[0].content.parts
    assert [(p.thought, p.text) for p in parts] == [
        (True, "Thinking about: Hi"),
        (None, "You said: Hi"),
    ]
    assert response.usage_metadata.thoughts_token_count == 3


def test_embeddings(client: Any, emulator: Emulator) -> None:
    response = client.models.embed_content(
        model="gemini-embedding-001",
        contents=["first", "second"],
        config=types.EmbedContentConfig(output_dimensionality=16, task_type="RETRIEVAL_QUERY"),
    )
    assert [len(e.values) for e in response.embeddings] == [16, 16]
    assert emulator.requests[-1].path.endswith(":batchEmbedContents")


def test_gemini_image_model(client: Any) -> None:
    response = client.models.generate_content(
        model="gemini-2.5-flash-image",
        contents="a cat",
        config=types.GenerateContentConfig(response_modalities=["IMAGE"]),
    )
    inline = response.candidates[0].content.parts[0].inline_data
    assert inline.mime_type == "image/png"
    assert inline.data.startswith(b"\x89PNG")
    assert response.usage_metadata.candidates_token_count == 1290


def test_prompt_block(client: Any) -> None:
    response = client.models.generate_content(model="gemini-2.5-flash", contents="BLOCK_PROMPT")
    assert response.prompt_feedback.block_reason == types.BlockedReason.SAFETY
    assert response.candidates is None
    output = client.models.generate_content(model="gemini-2.5-flash", contents="BLOCK_OUTPUT")
    assert output.candidates[0].finish_reason == types.FinishReason.SAFETY


def test_list_and_get_models(client: Any) -> None:
    names = [model.name for model in client.models.list(config={"page_size": 5})]
    assert "models/gemini-2.5-flash" in names
    assert "models/imagen-4.0-generate-001" in names
    model = client.models.get(model="gemini-embedding-001")
    assert model.input_token_limit == 2048
    assert "embedContent" in model.supported_actions


def test_errors(client: Any, emulator: Emulator) -> None:
    emulator.add_fault(Fault.status(429, retry_after="3"))
    with pytest.raises(errors.ClientError) as info:
        client.models.generate_content(model="gemini-2.5-flash", contents="Hi")
    assert info.value.code == 429
    assert info.value.status == "RESOURCE_EXHAUSTED"
    assert {
        "@type": "type.googleapis.com/google.rpc.RetryInfo",
        "retryDelay": "3s",
    } in info.value.details["error"]["details"]
    emulator.add_fault(Fault.stream_error(after_events=1, error_type="UNAVAILABLE"))
    with pytest.raises(errors.ServerError) as server:
        list(
            client.models.generate_content_stream(model="gemini-2.5-flash", contents="Hello there")
        )
    assert server.value.code == 503
    wrong = genai.Client(
        api_key="AIzaSy-wrong",
        http_options=types.HttpOptions(base_url=emulator.gemini_base_url, api_version="v1beta"),
    )
    with pytest.raises(errors.ClientError) as denied:
        wrong.models.generate_content(model="gemini-2.5-flash", contents="Hi")
    assert denied.value.code == 400
    assert denied.value.message == "API key not valid. Please pass a valid API key."


def test_every_body_the_emulator_answers_is_a_valid_sdk_type(emulator: Emulator) -> None:
    """The SDK's response types forbid unknown fields: no emulator field is made up."""
    import httpx

    headers = {"x-goog-api-key": GEMINI_KEY}
    base = emulator.gemini_base_url + "/v1beta/models/"
    requests = [
        ("gemini-2.5-flash:generateContent", {"contents": [{"parts": [{"text": "Hi"}]}]}),
        (
            "gemini-3-pro-preview:generateContent",
            {
                "contents": [{"parts": [{"text": "Hi"}]}],
                "tools": [
                    {
                        "functionDeclarations": [
                            {"name": "f", "parametersJsonSchema": {"type": "object"}}
                        ]
                    }
                ],
                "cachedContent": "cachedContents/x",
                "generationConfig": {
                    "thinkingConfig": {"includeThoughts": True},
                    "candidateCount": 2,
                },
            },
        ),
        ("gemini-2.5-flash:generateContent", {"contents": [{"parts": [{"text": "BLOCK_OUTPUT"}]}]}),
    ]
    for path, payload in requests:
        answer = httpx.post(base + path, json=payload, headers=headers).json()
        types.GenerateContentResponse.model_validate(answer)
    stream = httpx.post(
        base + "gemini-2.5-flash:streamGenerateContent?alt=sse",
        json={"contents": [{"parts": [{"text": "Hello there"}]}]},
        headers=headers,
    )
    assert stream.headers["content-type"].startswith("text/event-stream")
    chunks = [
        json.loads(line[6:]) for line in stream.text.split("\r\n") if line.startswith("data: ")
    ]
    assert len(chunks) == 4
    for chunk in chunks:
        types.GenerateContentResponse.model_validate(chunk)
    # Without alt=sse the API streams one JSON array.
    array = httpx.post(
        base + "gemini-2.5-flash:streamGenerateContent",
        json={"contents": [{"parts": [{"text": "Hello there"}]}]},
        headers=headers,
    ).json()
    for item in (*array, *chunks):
        del item["responseId"]  # derived from the request's arrival number
    assert array == chunks
    embedded = httpx.post(
        base + "text-embedding-004:embedContent",
        json={"content": {"parts": [{"text": "x"}]}},
        headers=headers,
    ).json()
    types.ContentEmbedding.model_validate(embedded["embedding"])
