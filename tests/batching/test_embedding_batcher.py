"""``EmbeddingBatcher`` end to end: real adapter, real HTTP, the emulator upstream."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiport import ProviderService
from aiport._config import RateLimitConfig, RetryConfig
from aiport._context import CacheControl, CallContext, call_scope
from aiport._errors import MalformedResponseError, ProviderAPIError
from aiport._limits import MemoryLimiter
from aiport._provider import ProviderLayer
from aiport._types import (
    Attempt,
    ModelCompletionOptions,
    ModelEmbeddingOptions,
    ModelEmbeddingResponse,
    Usage,
)
from aiport.layers._batching import EmbeddingBatcher, _largest_remainder, _split_usage
from aiport.layers._ratelimit import RateLimitLayer
from aiport.layers._retry import RetryBudget, RetryLayer
from aiport.providers.openai import OpenAIProvider
from aiport.testing import Emulator, Fault
from aiport.testing._content import count_tokens

from .conftest import EMBEDDING_MODEL, EMBEDDINGS_PATH, settle


def opts(text: str | list[str], **kwargs: Any) -> ModelEmbeddingOptions:
    kwargs.setdefault("model", EMBEDDING_MODEL)
    kwargs.setdefault("dimensions", 16)
    return ModelEmbeddingOptions(input=text, **kwargs)


def bodies(emu: Emulator) -> list[dict[str, Any]]:
    return [r.body for r in emu.requests if r.path == EMBEDDINGS_PATH]


# ---------------------------------------------------------------------- the target


async def test_a_thousand_concurrent_single_text_calls_make_at_most_twenty_requests(
    emu: Emulator, openai: OpenAIProvider
) -> None:
    batcher = EmbeddingBatcher(openai)
    texts = [f"text number {i}" for i in range(1000)]
    batched = await asyncio.gather(*(batcher.embed(opts(t)) for t in texts))

    upstream = emu.count(EMBEDDINGS_PATH)
    assert upstream <= 20  # the target; in practice one request
    assert upstream == batcher.stats.requests
    assert batcher.stats.calls == 1000
    assert sum(len(b["input"]) for b in bodies(emu)) == 1000

    # Each caller's vector is exactly what a request of its own gets.
    alone = await asyncio.gather(*(openai.embed(opts(t)) for t in texts))
    for mine, reference in zip(batched, alone, strict=True):
        assert mine.embeddings == reference.embeddings
        assert len(mine.embeddings) == 1
        assert mine.usage.input_tokens == reference.usage.input_tokens


async def test_a_lone_call_is_sent_unchanged(emu: Emulator, openai: OpenAIProvider) -> None:
    batcher = EmbeddingBatcher(openai, window=0)
    options = opts(["a", "b c"], dimensions=None, provider_options={"user": "u1"})
    response = await batcher.embed(options)
    assert len(response.embeddings) == 2
    assert len(response.embeddings[0]) == 1536
    assert bodies(emu)[0]["input"] == ["a", "b c"]
    assert bodies(emu)[0]["user"] == "u1"
    assert response.usage.input_tokens == 3
    assert response.latency > 0


async def test_a_text_asked_for_several_times_is_sent_once(
    emu: Emulator, openai: OpenAIProvider
) -> None:
    batcher = EmbeddingBatcher(openai)
    texts = ["same", "other", "same", "same"]
    responses = await asyncio.gather(*(batcher.embed(opts(t)) for t in texts))
    assert [b["input"] for b in bodies(emu)] == [["same", "other"]]
    assert batcher.stats.inputs == 2
    reference = (await openai.embed(opts(["same"]))).embeddings[0]
    assert all(responses[i].embeddings == [reference] for i in (0, 2, 3))
    # Each caller owns its vector: changing one in place leaves the others alone.
    responses[0].embeddings[0][0] = 42.0
    assert responses[2].embeddings[0] == reference
    assert sum(r.usage.input_tokens for r in responses) == 2  # what was actually billed

    emu.reset()
    lone = await batcher.embed(opts(["x", "y", "x"]))
    assert [b["input"] for b in bodies(emu)] == [["x", "y"]]
    assert lone.embeddings[0] == lone.embeddings[2]
    assert lone.embeddings[0] is not lone.embeddings[2]


# ---------------------------------------------------------------------- what shares


async def test_different_models_dimensions_or_options_never_share_a_batch(
    emu: Emulator, openai: OpenAIProvider
) -> None:
    batcher = EmbeddingBatcher(openai, window=0.02)
    variants: list[dict[str, Any]] = [
        {},
        {"dimensions": 32},
        {"dimensions": None},
        {"model": "text-embedding-3-large", "dimensions": None},
        {"provider_options": {"user": "a"}},
        {"provider_options": {"user": "b"}},
        {"timeout": 30.0},
    ]
    calls = [
        batcher.embed(opts(f"t{i}-{v}", **variant))
        for i, variant in enumerate(variants)
        for v in range(5)
    ]
    responses = await asyncio.gather(*calls)

    sent = bodies(emu)
    assert len(sent) == len(variants)
    for body in sent:
        assert len(body["input"]) == 5
        prefixes = {text.split("-")[0] for text in body["input"]}
        assert len(prefixes) == 1  # one variant per request
    sizes = {len(r.embeddings[0]) for r in responses}
    assert sizes == {16, 32, 1536, 3072}


async def test_equal_provider_options_share_whatever_their_key_order(
    emu: Emulator, openai: OpenAIProvider
) -> None:
    batcher = EmbeddingBatcher(openai)
    await asyncio.gather(
        batcher.embed(opts("x", provider_options={"user": "a", "encoding_format": "float"})),
        batcher.embed(opts("y", provider_options={"encoding_format": "float", "user": "a"})),
    )
    assert emu.count(EMBEDDINGS_PATH) == 1


async def test_calls_with_options_that_have_no_json_form_go_alone(
    emu: Emulator, openai: OpenAIProvider
) -> None:
    class Inner(ProviderLayer):
        async def embed(self, options: ModelEmbeddingOptions) -> ModelEmbeddingResponse:
            clean = options.model_copy(update={"provider_options": {}})
            return await self.inner.embed(clean)

    batcher = EmbeddingBatcher(Inner(openai))
    odd = {"tag": object()}
    await asyncio.gather(*(batcher.embed(opts(f"t{i}", provider_options=odd)) for i in range(3)))
    assert emu.count(EMBEDDINGS_PATH) == 3
    assert batcher.stats.requests == 3


async def test_calls_with_different_cache_control_never_share(
    emu: Emulator, openai: OpenAIProvider
) -> None:
    batcher = EmbeddingBatcher(openai)

    async def call(text: str, cache: CacheControl | None) -> ModelEmbeddingResponse:
        with call_scope(CallContext(cache=cache)):
            return await batcher.embed(opts(text))

    await asyncio.gather(call("a", None), call("b", CacheControl(read=False)), call("c", None))
    assert sorted(len(b["input"]) for b in bodies(emu)) == [1, 2]


# ---------------------------------------------------------------------- limits


async def test_max_inputs_flushes_full_batches_at_once(
    emu: Emulator, openai: OpenAIProvider
) -> None:
    # A long window: only the size limit can send the full batches before it ends.
    batcher = EmbeddingBatcher(openai, window=5.0, max_inputs=10)
    started = time.monotonic()
    await asyncio.gather(*(batcher.embed(opts(f"text {i}")) for i in range(30)))
    assert time.monotonic() - started < 2.0
    assert [len(b["input"]) for b in bodies(emu)] == [10, 10, 10]


async def test_a_call_larger_than_max_inputs_is_split_and_merged_in_order(
    emu: Emulator, openai: OpenAIProvider
) -> None:
    batcher = EmbeddingBatcher(openai, window=0.001, max_inputs=lambda model: 10)
    texts = [f"sentence {i} with some words" for i in range(25)]
    response = await batcher.embed(opts(texts))

    assert [len(b["input"]) for b in bodies(emu)] == [10, 10, 5]
    reference = await openai.embed(opts(texts))
    assert response.embeddings == reference.embeddings
    assert response.usage == reference.usage
    assert response.cost == pytest.approx(reference.cost)


async def test_max_tokens_bounds_the_estimated_tokens_of_a_request(
    emu: Emulator, openai: OpenAIProvider
) -> None:
    batcher = EmbeddingBatcher(openai, max_tokens=50)
    texts = [f"{i:02d}" + "x" * 38 for i in range(12)]  # ten estimated tokens each
    responses = await asyncio.gather(*(batcher.embed(opts(t)) for t in texts))
    assert [len(b["input"]) for b in bodies(emu)] == [5, 5, 2]
    assert all(len(r.embeddings) == 1 for r in responses)

    # One call alone larger than max_tokens is cut the same way; a text larger than the
    # limit still goes (alone): the provider is the judge of its own limits.
    emu.reset()
    response = await batcher.embed(opts(["y" * 400, "z" * 40]))
    assert [len(b["input"]) for b in bodies(emu)] == [1, 1]
    assert len(response.embeddings) == 2


async def test_a_call_that_would_overflow_the_gathering_batch_sends_it_first(
    emu: Emulator, openai: OpenAIProvider
) -> None:
    batcher = EmbeddingBatcher(openai, window=5.0, max_inputs=4)
    first = asyncio.ensure_future(batcher.embed(opts(["a", "b", "c"])))
    await settle()
    second = asyncio.ensure_future(batcher.embed(opts(["d", "e", "f", "g"])))
    await asyncio.wait_for(asyncio.gather(first, second), 2.0)
    assert [b["input"] for b in bodies(emu)] == [["a", "b", "c"], ["d", "e", "f", "g"]]


def test_arguments_are_checked(openai: OpenAIProvider) -> None:
    with pytest.raises(ValueError, match="window"):
        EmbeddingBatcher(openai, window=-1)
    with pytest.raises(ValueError, match="window"):
        EmbeddingBatcher(openai, window=float("nan"))
    with pytest.raises(ValueError, match="max_inputs"):
        EmbeddingBatcher(openai, max_inputs=0)
    with pytest.raises(ValueError, match="max_tokens"):
        EmbeddingBatcher(openai, max_tokens=0)


# ---------------------------------------------------------------------- usage


async def test_usage_and_cost_split_add_up_to_the_upstream_request(
    emu: Emulator, openai: OpenAIProvider
) -> None:
    batcher = EmbeddingBatcher(openai)
    texts = ["one", "two words", "a somewhat longer text, with punctuation!", "x" * 90]
    responses = await asyncio.gather(*(batcher.embed(opts(t)) for t in texts))

    assert emu.count(EMBEDDINGS_PATH) == 1
    upstream = sum(count_tokens(t) for t in texts)
    assert sum(r.usage.input_tokens for r in responses) == upstream
    assert sum(r.usage.total_tokens for r in responses) == upstream
    assert all(r.usage.output_tokens == 0 for r in responses)
    # In proportion to the callers' sizes: the longest text carries the most.
    shares = [r.usage.input_tokens for r in responses]
    assert shares[3] == max(shares)
    assert shares[0] <= shares[2]
    costs = [r.cost for r in responses]
    assert all(c is not None for c in costs)
    assert sum(c for c in costs if c is not None) == pytest.approx(upstream * 0.02 / 1_000_000)
    # Each response is the caller's own object.
    assert len({id(r) for r in responses}) == len(responses)
    assert len({id(r.raw) for r in responses}) == len(responses)


@given(
    total=st.integers(min_value=0, max_value=10**6),
    weights=st.lists(st.integers(min_value=0, max_value=10**4), min_size=1, max_size=50),
)
def test_largest_remainder_shares_always_sum_to_the_total(total: int, weights: list[int]) -> None:
    shares = _largest_remainder(total, weights)
    assert len(shares) == len(weights)
    if sum(weights):
        assert sum(shares) == total
        for share, weight in zip(shares, weights, strict=True):
            assert abs(share - total * weight / sum(weights)) < 1
    else:
        assert shares == [0] * len(weights)


def test_every_usage_field_is_split() -> None:
    usage = Usage(input_tokens=10, output_tokens=3, cached_input_tokens=4, reasoning_tokens=1)
    parts = _split_usage(usage, [1, 1, 2])
    for name in Usage.model_fields:
        assert sum(getattr(p, name) for p in parts) == getattr(usage, name)


# ---------------------------------------------------------------------- errors


async def test_an_error_of_the_merged_request_reaches_every_caller(
    emu: Emulator, openai: OpenAIProvider
) -> None:
    batcher = EmbeddingBatcher(openai)
    emu.add_fault(Fault.status(500), times=1, path=EMBEDDINGS_PATH)
    results = await asyncio.gather(
        *(batcher.embed(opts(f"t{i}")) for i in range(20)), return_exceptions=True
    )
    assert emu.count(EMBEDDINGS_PATH) == 1
    assert all(isinstance(r, ProviderAPIError) for r in results)
    errors = [r for r in results if isinstance(r, ProviderAPIError)]
    assert {e.status_code for e in errors} == {500}
    assert {e.provider for e in errors} == {"openai"}
    # A copy each: what one caller (or a layer above it) writes on its error stays there.
    assert len({id(e) for e in errors}) == 20
    errors[0].attempts = 7
    assert errors[1].attempts == 1
    assert errors[0].request_id == errors[1].request_id

    # The next batch is not affected.
    ok = await asyncio.gather(*(batcher.embed(opts(f"t{i}")) for i in range(20)))
    assert all(len(r.embeddings) == 1 for r in ok)


async def test_a_failed_chunk_fails_the_call_and_its_other_chunks_are_dropped(
    emu: Emulator, openai: OpenAIProvider
) -> None:
    batcher = EmbeddingBatcher(openai, window=0.001, max_inputs=2)
    emu.add_fault(Fault.status(400, message="bad input"), times=1, path=EMBEDDINGS_PATH)
    with pytest.raises(ProviderAPIError) as caught:
        await batcher.embed(opts(["a", "b", "c", "d", "e"]))
    assert caught.value.status_code == 400
    await asyncio.sleep(0.05)  # the other chunks end quietly (no unretrieved exception)


async def test_a_wrong_number_of_vectors_is_a_malformed_response(openai: OpenAIProvider) -> None:
    class Short(ProviderLayer):
        async def embed(self, options: ModelEmbeddingOptions) -> ModelEmbeddingResponse:
            response = await self.inner.embed(options)
            return response.model_copy(update={"embeddings": response.embeddings[1:]})

    batcher = EmbeddingBatcher(Short(openai))
    results = await asyncio.gather(
        *(batcher.embed(opts(f"t{i}")) for i in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, MalformedResponseError) for r in results)


class _UncopyableError(Exception):
    """An exception that cannot be copied (its constructor wants two arguments)."""

    def __init__(self, a: str, b: str) -> None:
        super().__init__(a)
        self.b = b


async def test_an_exception_that_cannot_be_copied_is_shared(openai: OpenAIProvider) -> None:
    class Broken(ProviderLayer):
        async def embed(self, options: ModelEmbeddingOptions) -> ModelEmbeddingResponse:
            raise _UncopyableError("a", "b")

    batcher = EmbeddingBatcher(Broken(openai))
    results = await asyncio.gather(
        *(batcher.embed(opts(f"t{i}")) for i in range(2)), return_exceptions=True
    )
    assert isinstance(results[0], _UncopyableError)
    assert results[0] is results[1]


async def test_a_bug_below_reaches_every_caller_as_itself(openai: OpenAIProvider) -> None:
    class Broken(ProviderLayer):
        async def embed(self, options: ModelEmbeddingOptions) -> ModelEmbeddingResponse:
            raise KeyError("oops")

    batcher = EmbeddingBatcher(Broken(openai))
    results = await asyncio.gather(
        *(batcher.embed(opts(f"t{i}")) for i in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, KeyError) for r in results)


async def test_retries_below_retry_the_batch_once_and_every_caller_sees_the_attempts(
    emu: Emulator, openai: OpenAIProvider
) -> None:
    retry = RetryLayer(
        openai,
        policy=lambda model: RetryConfig(max_attempts=3, initial_backoff=0.001),
        budget=RetryBudget(ratio=1.0, window=60, min_retries=10),
    )
    batcher = EmbeddingBatcher(retry)
    emu.add_fault(Fault.status(500), times=1, path=EMBEDDINGS_PATH)
    seen: list[list[Attempt]] = []

    async def call(text: str, priority: int) -> ModelEmbeddingResponse:
        context = CallContext(priority=priority)
        seen.append(context.attempts)
        with call_scope(context):
            return await batcher.embed(opts(text))

    responses = await asyncio.gather(*(call(f"t{i}", i) for i in range(10)))
    assert emu.count(EMBEDDINGS_PATH) == 2  # one failed batch, one retry of it
    assert all(len(r.embeddings) == 1 for r in responses)
    for attempts in seen:
        assert [a.outcome for a in attempts] == ["error", "ok"]


async def test_rate_limits_count_the_merged_request(emu: Emulator, openai: OpenAIProvider) -> None:
    # One request a minute and no queueing: only a merged request can serve fifty callers.
    limits = RateLimitConfig(requests_per_minute=1, max_queue_wait=0)
    limited = RateLimitLayer(
        openai,
        limits=lambda model: limits if model is None else None,
        limiter=MemoryLimiter(),
        scope="batching-test",
    )
    batcher = EmbeddingBatcher(limited)
    responses = await asyncio.gather(*(batcher.embed(opts(f"t{i}")) for i in range(50)))
    assert len(responses) == 50
    assert emu.count(EMBEDDINGS_PATH) == 1


# ---------------------------------------------------------------------- cancellation


async def test_a_caller_cancelled_while_gathering_leaves_the_batch(
    emu: Emulator, openai: OpenAIProvider
) -> None:
    batcher = EmbeddingBatcher(openai, window=0.05)
    tasks = [asyncio.ensure_future(batcher.embed(opts(f"t{i}"))) for i in range(10)]
    await settle()
    tasks[3].cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)

    assert isinstance(results[3], asyncio.CancelledError)
    assert all(
        isinstance(r, ModelEmbeddingResponse) and len(r.embeddings) == 1
        for i, r in enumerate(results)
        if i != 3
    )
    sent = bodies(emu)
    assert len(sent) == 1
    assert "t3" not in sent[0]["input"]
    assert len(sent[0]["input"]) == 9


async def test_a_batch_whose_callers_all_left_is_not_sent(
    emu: Emulator, openai: OpenAIProvider
) -> None:
    batcher = EmbeddingBatcher(openai, window=0.01)
    tasks = [asyncio.ensure_future(batcher.embed(opts(f"t{i}"))) for i in range(3)]
    await settle()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.sleep(0.05)
    assert emu.count(EMBEDDINGS_PATH) == 0


async def test_a_caller_cancelled_in_flight_does_not_break_the_others(
    emu: Emulator, openai: OpenAIProvider
) -> None:
    batcher = EmbeddingBatcher(openai, window=0.001)
    emu.add_fault(Fault.slow_first_token(0.2), times=1, path=EMBEDDINGS_PATH)
    tasks = [asyncio.ensure_future(batcher.embed(opts(f"t{i}"))) for i in range(5)]
    await asyncio.sleep(0.05)  # the batch is sent and waiting for its answer
    assert emu.count(EMBEDDINGS_PATH) == 1
    tasks[0].cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[0], asyncio.CancelledError)
    assert all(isinstance(r, ModelEmbeddingResponse) for r in results[1:])
    assert emu.count(EMBEDDINGS_PATH) == 1


async def test_closing_fails_the_calls_gathering_and_in_flight(
    emu: Emulator, openai: OpenAIProvider
) -> None:
    large = "text-embedding-3-large"
    # Calls to the large model are sent at once (one text a request); the others gather.
    batcher = EmbeddingBatcher(
        openai, window=5.0, max_inputs=lambda model: 1 if model == large else 100
    )
    emu.add_fault(Fault.slow_first_token(5.0), times=1, path=EMBEDDINGS_PATH)
    in_flight = asyncio.ensure_future(batcher.embed(opts("late", model=large)))
    await asyncio.sleep(0.05)
    assert emu.count(EMBEDDINGS_PATH) == 1
    gathering = [asyncio.ensure_future(batcher.embed(opts(f"t{i}"))) for i in range(3)]
    await settle()
    await batcher.aclose()
    results = await asyncio.gather(*gathering, in_flight, return_exceptions=True)
    assert all(isinstance(r, ProviderAPIError) and r.reason == "closed" for r in results)
    assert emu.count(EMBEDDINGS_PATH) == 1


async def test_callers_gone_before_their_batch_is_sent_cost_no_request(
    emu: Emulator, openai: OpenAIProvider
) -> None:
    batcher = EmbeddingBatcher(openai, window=5.0, max_inputs=2)
    tasks = [asyncio.ensure_future(batcher.embed(opts(f"t{i}"))) for i in range(2)]
    await asyncio.sleep(0)  # both join; the full batch's task is created, not yet run
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.sleep(0.05)
    assert emu.count(EMBEDDINGS_PATH) == 0


# ---------------------------------------------------------------------- pass-through


async def test_everything_but_embeddings_passes_through(
    emu: Emulator, openai: OpenAIProvider
) -> None:
    batcher = EmbeddingBatcher(openai)
    reply = await batcher.complete(ModelCompletionOptions(model="gpt-4o-mini", messages="hi"))
    assert reply.text == "You said: hi"
    events = [
        e async for e in batcher.stream(ModelCompletionOptions(model="gpt-4o-mini", messages="yo"))
    ]
    assert events[-1].type == "finish"
    assert batcher.models is openai.models
    assert batcher.unwrap() is openai


# ---------------------------------------------------------------------- in a service


async def test_in_a_service_async_and_sync_callers_are_batched_on_their_own_loops(
    emu: Emulator,
) -> None:
    config = {
        "retry": {"max_attempts": 1},
        "providers": {
            "openai": {"type": "openai", "base_url": emu.openai_base_url, "api_key": "k"}
        },
    }
    batchers: list[EmbeddingBatcher] = []

    def layer(inner: Any) -> EmbeddingBatcher:
        batchers.append(EmbeddingBatcher(inner))
        return batchers[-1]

    async with ProviderService(config, env={}, layers=[layer]) as service:
        model = f"openai:{EMBEDDING_MODEL}"
        responses = await asyncio.gather(
            *(service.embed(model=model, input=f"t{i}", dimensions=8) for i in range(200))
        )
        assert emu.count(EMBEDDINGS_PATH) <= 2
        assert all(len(r.embeddings) == 1 for r in responses)
        assert all(len(r.attempts) == 1 for r in responses)

        # The sync API runs on a background loop in another thread: its calls batch there.
        results: list[ModelEmbeddingResponse] = []

        def sync_call(i: int) -> None:
            results.append(service.embed_sync(model=model, input=f"s{i}", dimensions=8))

        def run_threads() -> None:
            threads = [threading.Thread(target=sync_call, args=(i,)) for i in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()

        await asyncio.to_thread(run_threads)
        assert len(results) == 8
        assert all(len(r.embeddings) == 1 for r in results)
        assert len(batchers[0]._states) == 2  # one per loop: the test's and the sync API's
    assert len(batchers) == 1
