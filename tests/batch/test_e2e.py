"""Both Batch APIs end to end over HTTP: submit, poll, results in order, errors, resume, cancel."""

from __future__ import annotations

from typing import Any

import pytest

from aiport import ProviderService
from aiport._batch import (
    BatchItemResult,
    BatchJob,
    batch_results,
    cancel_batch,
    get_batch,
    run_batch,
    submit_batch,
    wait_batch,
)
from aiport._errors import InvalidRequestError, ProviderAPIError, ProviderAuthError
from aiport.testing import Emulator

from .conftest import ANTHROPIC_KEY, OPENAI_KEY, FakeSleep, batch_config

COUNT = 25


def questions(count: int = COUNT) -> list[dict[str, Any]]:
    return [{"messages": f"question number {i}"} for i in range(count)]


def assert_answers(results: list[BatchItemResult], count: int = COUNT) -> None:
    assert [r.index for r in results] == list(range(count))
    for i, result in enumerate(results):
        assert result.ok and result.error is None
        assert result.unwrap().text == f"You said: question number {i}"


async def test_run_batch_returns_results_in_input_order(
    service: ProviderService, model: str, fake_sleep: FakeSleep, emu: Emulator
) -> None:
    submitted: list[BatchJob] = []
    results = await run_batch(
        service, model, questions(), sleep=fake_sleep, on_submit=submitted.append
    )
    assert_answers(results)
    assert [r.custom_id for r in results] == [f"aiport-{i}" for i in range(COUNT)]
    # The default delay: one poll sees the batch running, the next sees it done.
    assert len(fake_sleep.waits) == 1
    assert submitted[0].status in ("validating", "in_progress")
    response = results[0].unwrap()
    assert response.provider == model.partition(":")[0]
    assert response.usage.output_tokens > 0
    # One batch, not 25 calls.
    assert emu.count("/v1/chat/completions") == emu.count("/v1/messages") == 0


async def test_status_goes_from_in_progress_to_completed(
    service: ProviderService, model: str
) -> None:
    job = await submit_batch(service, model, questions(3))
    assert not job.done
    assert job.provider == model.partition(":")[0]
    assert job.model is not None and job.model in model
    assert job.created_at is not None and job.ended_at is None
    running = await get_batch(service, model, job.id)
    assert running.status == "in_progress"
    done = await get_batch(service, job.provider, job.id)  # by provider name too
    assert done.status == "completed" and done.done
    assert (done.counts.total, done.counts.succeeded, done.counts.failed) == (3, 3, 0)
    assert done.ended_at is not None


async def test_results_of_a_running_batch_are_refused(model: str) -> None:
    async with (
        Emulator(api_keys={OPENAI_KEY, ANTHROPIC_KEY}, batch_delay=100) as emu,
        ProviderService(batch_config(emu), env={}) as service,
    ):
        job = await submit_batch(service, model, questions(2))
        with pytest.raises(InvalidRequestError) as info:
            await batch_results(service, model, job.id)
    assert info.value.reason == "batch_not_finished"


async def test_failed_items_carry_typed_errors(
    service: ProviderService, model: str, fake_sleep: FakeSleep
) -> None:
    requests: list[Any] = questions(6)
    requests[2] = {
        "messages": "to a model that does not exist",
        "provider_options": {"model": "fail"},
    }
    # A body the provider refuses: a temperature OpenAI rejects, a negative max_tokens.
    invalid = {"temperature": 5} if model.startswith("openai") else {"max_tokens": -1}
    requests[4] = {"messages": "invalid", "provider_options": invalid}
    results = await run_batch(service, model, requests, sleep=fake_sleep)
    assert [r.ok for r in results] == [True, True, False, True, False, True]
    missing, refused = results[2], results[4]
    assert missing.error is not None and refused.error is not None
    assert missing.error["code"] == "PROVIDER_API_ERROR"
    assert missing.error["reason"] == "invalid_request"
    assert missing.error["type"] in ("model_not_found", "not_found_error")
    assert "fail" in missing.error["message"]
    error = missing.exception(provider="p")
    assert isinstance(error, InvalidRequestError) and error.provider == "p"
    with pytest.raises(InvalidRequestError):
        refused.unwrap()
    if model.startswith("openai"):
        assert (missing.error["status"], refused.error["status"]) == (404, 400)
    assert results[5].unwrap().text == "You said: question number 5"


async def test_counts_report_failed_items(service: ProviderService, model: str) -> None:
    requests: list[Any] = [*questions(2), {"messages": "x", "provider_options": {"model": "fail"}}]
    job = await submit_batch(service, model, requests)
    done = await wait_batch(service, model, job.id, poll_interval=0.01)
    assert (done.counts.total, done.counts.succeeded, done.counts.failed) == (3, 2, 1)


async def test_resume_by_batch_id_in_another_service(
    emu: Emulator, model: str, fake_sleep: FakeSleep
) -> None:
    async with ProviderService(batch_config(emu), env={}) as first:
        job = await submit_batch(first, model, questions())
        await get_batch(first, model, job.id)
    # A new service (another process, after a crash) only needs the id.
    async with ProviderService(batch_config(emu), env={}) as second:
        results = await run_batch(second, model, batch_id=job.id, sleep=fake_sleep)
    assert_answers(results)
    assert emu.count("/v1/files") + emu.count("/v1/messages/batches") == 1  # not resubmitted


async def test_own_custom_ids_keep_input_order(
    emu: Emulator, model: str, fake_sleep: FakeSleep
) -> None:
    ids = [f"q-{(i * 7) % COUNT:02d}" for i in range(COUNT)]  # unique, not sorted
    jobs: list[BatchJob] = []
    async with ProviderService(batch_config(emu), env={}) as first:
        results = await run_batch(
            first, model, questions(), custom_ids=ids, sleep=fake_sleep, on_submit=jobs.append
        )
    assert [r.custom_id for r in results] == ids
    assert_answers(results)
    async with ProviderService(batch_config(emu), env={}) as second:
        again = await batch_results(second, model, jobs[0].id, custom_ids=ids)
        unordered = await batch_results(second, model, jobs[0].id)
    assert [r.custom_id for r in again] == ids
    assert_answers(again)
    # Without the ids, every result is still there, matched by its custom id.
    by_id = {r.custom_id: r for r in unordered}
    assert sorted(by_id) == sorted(ids)
    assert all(by_id[cid].unwrap().text.endswith(f" {i}") for i, cid in enumerate(ids))
    if model.startswith("openai"):
        # OpenAI keeps the input file: its order is recovered without the ids.
        assert [r.custom_id for r in unordered] == ids


async def test_extra_and_missing_custom_ids(service: ProviderService, model: str) -> None:
    job = await submit_batch(service, model, questions(2), custom_ids=["a", "b"])
    await wait_batch(service, model, job.id, poll_interval=0.01)
    results = await batch_results(service, model, job.id, custom_ids=["b", "zzz"])
    assert [(r.index, r.custom_id, r.ok) for r in results] == [
        (0, "b", True),
        (1, "zzz", False),
        (2, "a", True),
    ]
    assert results[1].error is not None and results[1].error["reason"] == "batch_result_missing"


async def test_cancel(service: ProviderService, model: str, fake_sleep: FakeSleep) -> None:
    job = await submit_batch(service, model, questions(4))
    cancelling = await cancel_batch(service, model, job.id)
    assert cancelling.status == "cancelling" and not cancelling.done
    done = await wait_batch(service, model, job.id, sleep=fake_sleep)
    assert done.status == "cancelled" and done.ended_at is not None
    results = await batch_results(service, model, job.id)
    assert [r.custom_id for r in results] == [f"aiport-{i}" for i in range(4)]
    for result in results:
        assert result.error is not None and result.error["reason"] == "batch_cancelled"
        error = result.exception()
        assert type(error) is ProviderAPIError and error.retryable
    with pytest.raises(InvalidRequestError):
        await cancel_batch(service, model, job.id)  # a finished batch cannot be cancelled


async def test_unknown_batch_is_not_found(service: ProviderService, model: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        await get_batch(service, model, "batch_does_not_exist")
    assert info.value.status_code == 404


async def test_wrong_key_is_an_auth_error(emu: Emulator, model: str) -> None:
    config = batch_config(emu)
    config["providers"][model.partition(":")[0]]["api_key"] = "sk-wrong-key-0000"
    async with ProviderService(config, env={}) as service:
        with pytest.raises(ProviderAuthError):
            await submit_batch(service, model, questions(1))
    assert all("sk-wrong-key-0000" not in r.path for r in emu.requests)


async def test_warnings_are_summarised_once(service: ProviderService) -> None:
    requests = [{"messages": f"q {i}", "seed": 7} for i in range(5)]
    job = await submit_batch(service, "anthropic:claude-sonnet-4-5", requests)
    assert job.warnings == ["5 requests: seed is not supported by Anthropic and was not sent"]


async def test_batch_ids_cannot_leave_the_batch_path(
    service: ProviderService, emu: Emulator, model: str
) -> None:
    with pytest.raises(InvalidRequestError):
        await get_batch(service, model, "../files/x")
    prefix = "/v1/batches/" if model.startswith("openai") else "/v1/messages/batches/"
    assert [r.path for r in emu.requests] == [prefix + "../files/x"]  # one encoded segment
