"""boto3 (the official SDK, used here only as a reference parser) reads the emulator's
Converse, ConverseStream and InvokeModel answers and errors, and its requests pass the
emulator's own SigV4 verification: the emulator cannot drift from the real wire format."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest

from aiport.testing import Emulator, Fault

from .conftest import ACCEPTED, ACCESS_KEY_ID, CLAUDE, COHERE, REGION, SECRET_KEY, TITAN

boto3 = pytest.importorskip("boto3")
botocore_config = pytest.importorskip("botocore.config")
botocore_exceptions = pytest.importorskip("botocore.exceptions")

USER = [{"role": "user", "content": [{"text": "What is the weather in Paris?"}]}]
TOOLS = {
    "tools": [
        {
            "toolSpec": {
                "name": "get_weather",
                "inputSchema": {
                    "json": {
                        "type": "object",
                        "properties": {"city": {"type": "string"}},
                        "required": ["city"],
                    }
                },
            }
        }
    ]
}


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(api_keys=ACCEPTED).run_in_thread() as emu:
        yield emu


@pytest.fixture
def client(emulator: Emulator) -> Any:
    return boto3.client(
        "bedrock-runtime",
        endpoint_url=emulator.bedrock_endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_KEY,
        config=botocore_config.Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )


def test_converse(client: Any) -> None:
    answer = client.converse(
        modelId=CLAUDE,
        messages=USER,
        system=[{"text": "Be brief."}],
        inferenceConfig={"maxTokens": 100},
    )
    assert answer["output"]["message"] == {
        "role": "assistant",
        "content": [{"text": "You said: What is the weather in Paris?"}],
    }
    assert answer["stopReason"] == "end_turn"
    assert answer["usage"]["totalTokens"] == (
        answer["usage"]["inputTokens"] + answer["usage"]["outputTokens"]
    )
    assert answer["metrics"]["latencyMs"] > 0
    assert answer["ResponseMetadata"]["RequestId"]


def test_converse_tool_use(client: Any) -> None:
    answer = client.converse(modelId=CLAUDE, messages=USER, toolConfig=TOOLS)
    assert answer["stopReason"] == "tool_use"
    (block,) = answer["output"]["message"]["content"]
    assert block["toolUse"]["name"] == "get_weather"
    assert block["toolUse"]["input"] == {"city": "example"}


def test_converse_stream(client: Any) -> None:
    answer = client.converse_stream(
        modelId=CLAUDE,
        messages=USER,
        toolConfig=TOOLS,
        additionalModelRequestFields={"thinking": {"type": "enabled", "budget_tokens": 1024}},
    )
    events = list(answer["stream"])
    kinds = [next(iter(e)) for e in events]
    assert kinds[0] == "messageStart" and kinds[-2:] == ["messageStop", "metadata"]
    reasoning = "".join(
        e["contentBlockDelta"]["delta"]["reasoningContent"].get("text", "")
        for e in events
        if "reasoningContent" in e.get("contentBlockDelta", {}).get("delta", {})
    )
    assert reasoning == "Thinking about: What is the weather in Paris?"
    (start,) = [e["contentBlockStart"] for e in events if "contentBlockStart" in e]
    assert start["start"]["toolUse"]["name"] == "get_weather"
    arguments = "".join(
        e["contentBlockDelta"]["delta"]["toolUse"]["input"]
        for e in events
        if "toolUse" in e.get("contentBlockDelta", {}).get("delta", {})
    )
    assert json.loads(arguments) == {"city": "example"}
    assert events[-2]["messageStop"]["stopReason"] == "tool_use"
    assert events[-1]["metadata"]["usage"]["outputTokens"] > 0


def test_converse_stream_exception(client: Any, emulator: Emulator) -> None:
    emulator.add_fault(Fault.stream_error(2, error_type="throttlingException"))
    answer = client.converse_stream(modelId=CLAUDE, messages=USER)
    with pytest.raises(botocore_exceptions.EventStreamError) as info:
        list(answer["stream"])
    assert info.value.response["Error"]["Code"] == "throttlingException"


def test_invoke_model_titan(client: Any) -> None:
    answer = client.invoke_model(
        modelId=TITAN, body=json.dumps({"inputText": "hello world", "dimensions": 512})
    )
    body = json.loads(answer["body"].read())
    assert len(body["embedding"]) == 512 and body["inputTextTokenCount"] == 2
    headers = answer["ResponseMetadata"]["HTTPHeaders"]
    assert headers["x-amzn-bedrock-input-token-count"] == "2"
    assert answer["contentType"] == "application/json"


def test_invoke_model_cohere(client: Any) -> None:
    answer = client.invoke_model(
        modelId=COHERE,
        body=json.dumps({"texts": ["a", "b"], "input_type": "search_document"}),
    )
    body = json.loads(answer["body"].read())
    assert body["response_type"] == "embeddings_floats"
    assert [len(v) for v in body["embeddings"]] == [1024, 1024]


def test_invoke_model_nova_canvas(client: Any) -> None:
    body = {
        "taskType": "TEXT_IMAGE",
        "textToImageParams": {"text": "a cat"},
        "imageGenerationConfig": {"numberOfImages": 1},
    }
    answer = client.invoke_model(modelId="amazon.nova-canvas-v1:0", body=json.dumps(body))
    (image,) = json.loads(answer["body"].read())["images"]
    assert base64.b64decode(image).startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("fault", "code", "status"),
    [
        (Fault.status(403), "AccessDeniedException", 403),
        (Fault.status(429), "ThrottlingException", 429),
        (Fault.context_length(), "ValidationException", 400),
        (Fault.status(503), "ServiceUnavailableException", 503),
    ],
)
def test_errors(client: Any, emulator: Emulator, fault: Fault, code: str, status: int) -> None:
    emulator.add_fault(fault)
    with pytest.raises(botocore_exceptions.ClientError) as info:
        client.converse(modelId=CLAUDE, messages=USER)
    error = info.value.response
    assert error["Error"]["Code"] == code
    assert error["ResponseMetadata"]["HTTPStatusCode"] == status
    assert error["Error"]["Message"]


def test_a_wrong_secret_is_refused_by_the_emulators_signature_check(emulator: Emulator) -> None:
    client = boto3.client(
        "bedrock-runtime",
        endpoint_url=emulator.bedrock_endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key="wrong/secret+0123456789abcdefghijklmnopq",
        config=botocore_config.Config(retries={"total_max_attempts": 1}),
    )
    with pytest.raises(botocore_exceptions.ClientError) as info:
        client.converse(modelId=CLAUDE, messages=USER)
    assert info.value.response["Error"]["Code"] == "InvalidSignatureException"
