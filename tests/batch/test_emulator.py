"""The emulator's batch endpoints over raw HTTP: validation, errors, timing, faults."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from aiport import ProviderService
from aiport._batch import batch_results, get_batch
from aiport._errors import InvalidRequestError
from aiport.testing import Emulator

from .conftest import ANTHROPIC_KEY, OPENAI_KEY, batch_config

OA = {"Authorization": f"Bearer {OPENAI_KEY}"}
AN = {"x-api-key": ANTHROPIC_KEY, "anthropic-version": "2023-06-01"}


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def call(
    http: aiohttp.ClientSession, method: str, url: str, headers: dict[str, str], **kwargs: Any
) -> tuple[int, Any]:
    async with http.request(method, url, headers=headers, **kwargs) as response:
        text = await response.text()
        try:
            return response.status, json.loads(text)
        except ValueError:
            return response.status, text


def form(purpose: str | None, name: str | None, content: bytes = b"{}\n") -> aiohttp.FormData:
    data = aiohttp.FormData(default_to_multipart=True)
    if purpose is not None:
        data.add_field("purpose", purpose)
    if name is not None:
        data.add_field("file", content, filename=name)
    return data


async def upload(emu: Emulator, http: aiohttp.ClientSession, content: bytes) -> str:
    status, body = await call(
        http, "POST", f"{emu.openai_base_url}/files", OA, data=form("batch", "in.jsonl", content)
    )
    assert status == 200
    return str(body["id"])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (form(None, "in.jsonl"), "'purpose'"),
        (form("homework", "in.jsonl"), "Invalid value for 'purpose'"),
        (form("batch", None), "'file'"),
        (form("batch", "in.csv"), "Must be .jsonl"),
    ],
)
async def test_upload_is_checked(
    emu: Emulator, http: aiohttp.ClientSession, data: aiohttp.FormData, message: str
) -> None:
    status, body = await call(http, "POST", f"{emu.openai_base_url}/files", OA, data=data)
    assert status == 400 and message in body["error"]["message"]


async def test_files_can_be_read_back(emu: Emulator, http: aiohttp.ClientSession) -> None:
    status, body = await call(http, "POST", f"{emu.openai_base_url}/files", OA, json={})
    assert status == 400 and "multipart" in body["error"]["message"]
    file_id = await upload(emu, http, b'{"x": 1}\n')
    status, meta = await call(http, "GET", f"{emu.openai_base_url}/files/{file_id}", OA)
    assert (status, meta["purpose"], meta["bytes"]) == (200, "batch", 9)
    status, text = await call(http, "GET", f"{emu.openai_base_url}/files/{file_id}/content", OA)
    assert (status, text) == (200, {"x": 1})
    status, body = await call(http, "GET", f"{emu.openai_base_url}/files/file-nope/content", OA)
    assert status == 404 and "file-nope" in body["error"]["message"]


async def test_batch_creation_is_checked(emu: Emulator, http: aiohttp.ClientSession) -> None:
    other = await call(
        http, "POST", f"{emu.openai_base_url}/files", OA, data=form("user_data", "a.txt")
    )
    good = {"input_file_id": await upload(emu, http, b"{}\n"), "endpoint": "/v1/chat/completions"}
    cases: list[tuple[Any, int, str]] = [
        ("not json", 400, "JSON body"),
        ({"endpoint": "/v1/chat/completions", "completion_window": "24h"}, 400, "input_file_id"),
        ({**good, "endpoint": "/v1/nothing", "completion_window": "24h"}, 400, "/v1/nothing"),
        ({**good, "completion_window": "1h"}, 400, "'24h'"),
        ({**good, "input_file_id": "file-x", "completion_window": "24h"}, 404, "file-x"),
        ({**good, "input_file_id": other[1]["id"], "completion_window": "24h"}, 400, "purpose"),
    ]
    for payload, want, message in cases:
        kwargs: dict[str, Any] = (
            {"json": payload} if isinstance(payload, dict) else {"data": payload}
        )
        status, body = await call(http, "POST", f"{emu.openai_base_url}/batches", OA, **kwargs)
        assert (status, message in body["error"]["message"]) == (want, True), payload


async def test_bad_input_lines_fail_the_batch(emu: Emulator, http: aiohttp.ClientSession) -> None:
    good = {"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {}}
    lines = [
        json.dumps(good),
        "not json",
        "[1]",
        json.dumps({"custom_id": "b"}),
        json.dumps({**good, "method": "GET"}),
        json.dumps({**good, "url": "/v1/embeddings"}),
        json.dumps({**good, "body": "text"}),
        json.dumps(good),
    ]
    file_id = await upload(emu, http, "\n".join(lines).encode())
    payload = {
        "input_file_id": file_id,
        "endpoint": "/v1/chat/completions",
        "completion_window": "24h",
    }
    _, batch = await call(http, "POST", f"{emu.openai_base_url}/batches", OA, json=payload)
    status, failed = await call(http, "GET", f"{emu.openai_base_url}/batches/{batch['id']}", OA)
    assert status == 200 and failed["status"] == "failed" and failed["failed_at"]
    codes = [(e["line"], e["code"]) for e in failed["errors"]["data"]]
    assert codes == [
        (2, "invalid_json_line"),
        (3, "invalid_request"),
        (4, "missing_required_parameter"),
        (5, "invalid_method"),
        (6, "mismatched_endpoint"),
        (7, "invalid_request"),
        (8, "duplicate_custom_id"),
    ]
    async with ProviderService(batch_config(emu), env={}) as service:
        with pytest.raises(InvalidRequestError, match="line 2: This line") as info:
            await batch_results(service, "openai", batch["id"])
    assert info.value.reason == "batch_failed"


async def test_empty_input_and_stream_items(emu: Emulator, http: aiohttp.ClientSession) -> None:
    url = f"{emu.openai_base_url}/batches"
    window = {"endpoint": "/v1/chat/completions", "completion_window": "24h"}
    _, empty = await call(
        http, "POST", url, OA, json={"input_file_id": await upload(emu, http, b"\n"), **window}
    )
    _, failed = await call(http, "GET", f"{url}/{empty['id']}", OA)
    assert failed["errors"]["data"][0]["code"] == "empty_file"
    body = {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    line = {"custom_id": "s", "method": "POST", "url": "/v1/chat/completions", "body": body}
    file_id = await upload(emu, http, json.dumps(line).encode())
    _, batch = await call(http, "POST", url, OA, json={"input_file_id": file_id, **window})
    await call(http, "GET", f"{url}/{batch['id']}", OA)
    _, done = await call(http, "GET", f"{url}/{batch['id']}", OA)
    assert done["request_counts"] == {"total": 1, "completed": 0, "failed": 1}
    assert done["output_file_id"] is None
    _, errors = await call(
        http, "GET", f"{emu.openai_base_url}/files/{done['error_file_id']}/content", OA
    )
    assert "Streaming" in errors["response"]["body"]["error"]["message"]


async def test_auth_and_unknown_paths(emu: Emulator, http: aiohttp.ClientSession) -> None:
    status, _ = await call(http, "GET", f"{emu.openai_base_url}/batches/x", {})
    assert status == 401
    status, _ = await call(
        http, "GET", f"{emu.url}/v1/messages/batches/x", {**AN, "x-api-key": "bad"}
    )
    assert status == 401
    status, body = await call(
        http, "GET", f"{emu.url}/v1/messages/batches/x", {**AN, "anthropic-version": "1999"}
    )
    assert status == 400 and "anthropic-version" in body["error"]["message"]
    assert (await call(http, "GET", f"{emu.openai_base_url}/batches/x/y", OA))[0] == 404
    assert (await call(http, "DELETE", f"{emu.url}/v1/messages/batches/x", AN))[0] == 404
    assert (await call(http, "POST", f"{emu.openai_base_url}/batches/x/cancel", OA))[0] == 404
    # Paths that are not batch endpoints still reach the ordinary routes.
    assert (await call(http, "GET", f"{emu.openai_base_url}/models", OA))[0] == 200


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({}, "requests: Field required"),
        ({"requests": []}, "at least 1 item"),
        ({"requests": [{"custom_id": "bad id", "params": {}}]}, "requests.0.custom_id"),
        ({"requests": [{"custom_id": "a", "params": {}}] * 2}, "duplicate custom_id"),
        ({"requests": [{"custom_id": "a"}]}, "requests.0.params"),
    ],
)
async def test_message_batch_creation_is_checked(
    emu: Emulator, http: aiohttp.ClientSession, payload: dict[str, Any], message: str
) -> None:
    status, body = await call(http, "POST", f"{emu.url}/v1/messages/batches", AN, json=payload)
    assert status == 400 and message in body["error"]["message"]


async def test_message_batch_states(emu: Emulator, http: aiohttp.ClientSession) -> None:
    params = {"model": "claude-sonnet-4-5", "max_tokens": 50, "stream": True, "messages": []}
    payload = {"requests": [{"custom_id": "s", "params": params}]}
    url = f"{emu.url}/v1/messages/batches"
    _, batch = await call(http, "POST", url, AN, json=payload)
    status, body = await call(http, "GET", f"{url}/{batch['id']}/results", AN)
    assert status == 400 and "not finished" in body["error"]["message"]
    for missing in (f"{url}/msgbatch_x", f"{url}/msgbatch_x/results"):
        assert (await call(http, "GET", missing, AN))[0] == 404
    assert (await call(http, "POST", f"{url}/msgbatch_x/cancel", AN))[0] == 404
    await call(http, "GET", f"{url}/{batch['id']}", AN)
    _, ended = await call(http, "GET", f"{url}/{batch['id']}", AN)
    assert ended["request_counts"]["errored"] == 1
    _, line = await call(http, "GET", f"{url}/{batch['id']}/results", AN)
    assert "streamed" in line["result"]["error"]["error"]["message"]


async def test_batches_can_finish_after_seconds() -> None:
    async with (
        Emulator(api_keys={OPENAI_KEY, ANTHROPIC_KEY}, batch_delay=0.2) as emu,
        ProviderService(batch_config(emu), env={}) as service,
    ):
        from aiport._batch import submit_batch

        job = await submit_batch(service, "anthropic:claude-sonnet-4-5", [{"messages": "x"}])
        for _ in range(3):
            assert (await get_batch(service, "anthropic", job.id)).status == "in_progress"
        await asyncio.sleep(0.25)
        assert (await get_batch(service, "anthropic", job.id)).status == "completed"
    with pytest.raises(ValueError, match="batch_delay"):
        Emulator(batch_delay=-1)


async def test_faults_use_each_providers_error_shape(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    fault = {"x-emulator-fault": "429;retry-after=3"}
    status, body = await call(http, "GET", f"{emu.openai_base_url}/batches/x", {**OA, **fault})
    assert status == 429 and body["error"]["type"] == "requests"
    status, body = await call(http, "GET", f"{emu.url}/v1/messages/batches/x", {**AN, **fault})
    assert status == 429 and body["error"]["type"] == "rate_limit_error"
    payload = {"requests": [{"custom_id": "a", "params": {}}]}
    _, batch = await call(http, "POST", f"{emu.url}/v1/messages/batches", AN, json=payload)
    url = f"{emu.url}/v1/messages/batches/{batch['id']}"
    for spec, want in (("stream-error", 529), ("context-length", 400)):
        status, _ = await call(http, "GET", url, {**AN, "x-emulator-fault": spec})
        assert status == want
    headers = {**OA, "x-emulator-fault": "stream-error"}
    data = form("batch", "in.jsonl")
    status, _ = await call(http, "POST", f"{emu.openai_base_url}/files", headers, data=data)
    assert status == 500
