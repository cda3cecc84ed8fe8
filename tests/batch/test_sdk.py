"""The official SDKs accept the emulator's batch objects and drive its Batch APIs."""

from __future__ import annotations

import json

import anthropic
import openai
from anthropic.types.messages import MessageBatch, MessageBatchIndividualResponse

from aiport import ProviderService
from aiport._batch import cancel_batch, get_batch, submit_batch
from aiport.testing import Emulator

from .conftest import ANTHROPIC_KEY, OPENAI_KEY


async def test_openai_batch_objects_validate(service: ProviderService) -> None:
    job = await submit_batch(service, "openai:gpt-4o-mini", [{"messages": "hi"}] * 3)
    stages = [job, await get_batch(service, "openai", job.id)]
    stages.append(await get_batch(service, "openai", job.id))
    for stage in stages:
        batch = openai.types.Batch.model_validate(stage.raw)
        assert batch.status == stage.status
    done = openai.types.Batch.model_validate(stages[-1].raw)
    assert done.request_counts is not None and done.request_counts.completed == 3
    assert done.output_file_id and done.error_file_id is None
    assert done.usage is not None and done.usage.output_tokens > 0
    cancelled = await submit_batch(service, "openai:gpt-4o-mini", [{"messages": "hi"}])
    stopping = await cancel_batch(service, "openai", cancelled.id)
    assert openai.types.Batch.model_validate(stopping.raw).cancelling_at is not None


async def test_anthropic_batch_objects_validate(service: ProviderService) -> None:
    job = await submit_batch(service, "anthropic:claude-sonnet-4-5", [{"messages": "hi"}] * 3)
    stages = [job, await get_batch(service, "anthropic", job.id)]
    stages.append(await get_batch(service, "anthropic", job.id))
    statuses = [MessageBatch.model_validate(s.raw).processing_status for s in stages]
    assert statuses == ["in_progress", "in_progress", "ended"]
    ended = MessageBatch.model_validate(stages[-1].raw)
    assert ended.request_counts.succeeded == 3 and ended.results_url
    assert ended.ended_at is not None and ended.ended_at == stages[-1].ended_at


async def test_openai_sdk_runs_a_batch(emu: Emulator) -> None:
    lines = [
        {
            "custom_id": f"r{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"n{i}"}]},
        }
        for i in range(3)
    ]
    content = "".join(json.dumps(line) + "\n" for line in lines).encode()
    client = openai.AsyncOpenAI(base_url=emu.openai_base_url, api_key=OPENAI_KEY, max_retries=0)
    async with client:
        uploaded = await client.files.create(file=("in.jsonl", content), purpose="batch")
        assert uploaded.purpose == "batch" and uploaded.bytes == len(content)
        assert (await client.files.retrieve(uploaded.id)).filename == "in.jsonl"
        batch = await client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        assert batch.status == "validating"
        for _ in range(2):
            batch = await client.batches.retrieve(batch.id)
        assert batch.status == "completed"
        assert batch.output_file_id is not None
        output = await client.files.content(batch.output_file_id)
        results = [json.loads(line) for line in output.text.splitlines()]
    answers = {r["custom_id"]: r["response"]["body"] for r in results}
    assert sorted(answers) == ["r0", "r1", "r2"]
    for custom_id, body in answers.items():
        completion = openai.types.chat.ChatCompletion.model_validate(body)
        assert completion.choices[0].message.content == f"You said: n{custom_id[1:]}"
    assert all(r["id"].startswith("batch_req_") and r["error"] is None for r in results)


async def test_anthropic_sdk_runs_a_batch(emu: Emulator) -> None:
    client = anthropic.AsyncAnthropic(
        base_url=emu.anthropic_base_url, api_key=ANTHROPIC_KEY, max_retries=0
    )
    async with client:
        batch = await client.messages.batches.create(
            requests=[
                {
                    "custom_id": f"r{i}",
                    "params": {
                        "model": "claude-sonnet-4-5",
                        "max_tokens": 100,
                        "messages": [{"role": "user", "content": f"n{i}"}],
                    },
                }
                for i in range(3)
            ]
        )
        while batch.processing_status != "ended":
            batch = await client.messages.batches.retrieve(batch.id)
        results = [r async for r in await client.messages.batches.results(batch.id)]
    assert sorted(r.custom_id for r in results) == ["r0", "r1", "r2"]
    for result in results:
        assert isinstance(result, MessageBatchIndividualResponse)
        assert result.result.type == "succeeded"
        text = result.result.message.content[0]
        assert text.type == "text" and text.text == f"You said: n{result.custom_id[1:]}"


async def test_anthropic_errored_lines_validate(service: ProviderService, emu: Emulator) -> None:
    job = await submit_batch(
        service,
        "anthropic:claude-sonnet-4-5",
        [{"messages": "x", "provider_options": {"model": "fail"}}],
    )
    await get_batch(service, "anthropic", job.id)
    await get_batch(service, "anthropic", job.id)
    client = anthropic.AsyncAnthropic(
        base_url=emu.anthropic_base_url, api_key=ANTHROPIC_KEY, max_retries=0
    )
    async with client:
        results = [r async for r in await client.messages.batches.results(job.id)]
    assert results[0].result.type == "errored"
    assert results[0].result.error.error.type == "not_found_error"
