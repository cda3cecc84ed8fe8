"""The key pool on its own: fingerprints, turns, setting aside and resting, resolution."""

from __future__ import annotations

import hashlib
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from aiport import ProviderAuthError
from aiport._credentials import (
    KeyPool,
    SecretReference,
    current_key_selection,
    key_fingerprint,
    selecting,
)
from aiport._limits import limit_scope
from aiport._secrets import SecretResolver


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def pool_of(
    values: list[str], rotation: str = "round-robin", env: dict[str, str] | None = None
) -> tuple[KeyPool, Clock]:
    resolver = SecretResolver(env=env or {}, plugins=False)
    references = [
        SecretReference(SecretStr(v), resolver, what=f"API key api_keys[{i}] of provider 'p'")
        for i, v in enumerate(values)
    ]
    clock = Clock()
    return KeyPool("p", references, rotation=rotation, clock=clock), clock  # type: ignore[arg-type]


def test_fingerprint_is_a_short_hash_and_the_last_four_characters() -> None:
    key = "sk-proj-abcdefghijklmnopqrstuvwxyz"
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    assert key_fingerprint(key) == f"key#{digest}…wxyz"
    assert key_fingerprint("short-key") == "key#" + hashlib.sha256(b"short-key").hexdigest()[:8]
    assert key_fingerprint(key) != key_fingerprint(key[:-1] + "Z")


@given(st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=12, max_size=120))
def test_a_fingerprint_holds_no_eight_character_piece_of_its_key(key: str) -> None:
    shown = key_fingerprint(key)
    assert not any(key[i : i + 8] in shown for i in range(len(key) - 7))
    assert len(shown) == len("key#") + 8 + 1 + 4


async def test_round_robin_turns_and_failover_order() -> None:
    pool, _ = pool_of(["k1-aaaaaaaaaaaa", "k2-bbbbbbbbbbbb", "k3-cccccccccccc"])
    starts = [pool.order()[0].index for _ in range(6)]
    assert starts == [0, 1, 2, 0, 1, 2]
    assert [k.index for k in pool.order()] == [0, 1, 2]
    assert [k.index for k in pool.order()] == [1, 2, 0]
    failover, _ = pool_of(["k1-aaaaaaaaaaaa", "k2-bbbbbbbbbbbb"], "failover")
    assert [[k.index for k in failover.order()] for _ in range(3)] == [[0, 1]] * 3


async def test_a_set_aside_key_comes_back_after_the_cooldown_and_is_resolved_again() -> None:
    env = {"K1": "first-value-aaaaaaa"}
    pool, clock = pool_of(["env:K1", "k2-bbbbbbbbbbbb"], "failover", env=env)
    first, second = pool.keys
    assert await first.secret() == SecretStr("first-value-aaaaaaa")
    assert pool.set_aside(first) == 300
    selection = pool.select(pool.order())
    assert selection is not None and selection.candidates == (second,)
    env["K1"] = "second-value-bbbbbbb"
    clock.now += 299
    assert pool.select(pool.order()).candidates == (second,)  # type: ignore[union-attr]
    clock.now += 2
    assert pool.select(pool.order()).candidates == (first, second)  # type: ignore[union-attr]
    assert (await first.secret()).get_secret_value() == "second-value-bbbbbbb"
    assert first.fingerprint == key_fingerprint("second-value-bbbbbbb")
    assert first.scope == limit_scope("p", "second-value-bbbbbbb")


async def test_resting_keys_and_the_soonest_rest() -> None:
    pool, clock = pool_of(["k1-aaaaaaaaaaaa", "k2-bbbbbbbbbbbb"])
    assert pool.rest(pool.keys[0], 5.0) == 5.0
    assert pool.rest(pool.keys[1], None) == 1.0  # no Retry-After: a second
    assert pool.rest(pool.keys[1], 10_000) == 600  # capped
    assert pool.soonest_rest() == pytest.approx(5.0)
    # A call finding every key resting is told so (no selection), not given one of them.
    assert pool.select(pool.order()) is None
    clock.now += 5
    selection = pool.select(pool.order())
    assert selection is not None and [k.index for k in selection.candidates] == [0]
    # Keys already tried in this call are never offered again.
    assert pool.select(pool.order(), {pool.keys[0]}) is None


async def test_when_every_key_is_set_aside_the_oldest_gets_a_last_try() -> None:
    pool, clock = pool_of(["k1-aaaaaaaaaaaa", "k2-bbbbbbbbbbbb", "k3-cccccccccccc"])
    for key in (pool.keys[1], pool.keys[2], pool.keys[0]):
        await key.secret()
        pool.set_aside(key)
        clock.now += 1
    selection = pool.select(pool.order())
    assert selection is not None and selection.last_resort
    await selection.narrow_to_replaced()
    assert [k.index for k in selection.candidates] == [1]
    pool.served(pool.keys[1])
    assert pool.keys[1].usable(clock.now) and pool.keys[1].refused is None


async def test_the_pool_gives_the_selected_key_and_otherwise_the_first_usable() -> None:
    pool, _ = pool_of(["env:MISSING", "k2-bbbbbbbbbbbb", "k3-cccccccccccc"], "failover")
    # Outside a selection (Batch API calls, the cache scope): the first key that resolves.
    assert (await pool.get()).get_secret_value() == "k2-bbbbbbbbbbbb"
    selection = pool.select(pool.order())
    assert selection is not None
    with selecting(selection):
        assert current_key_selection() is selection
        # Nobody chose (no rate-limit layer): the first candidate that resolves is chosen,
        # the one that does not is set aside and remembered.
        assert (await pool.get()).get_secret_value() == "k2-bbbbbbbbbbbb"
        assert selection.chosen is pool.keys[1]
        assert [k.index for k, _ in selection.unresolved] == [0]
        selection.chosen = pool.keys[2]
        assert (await pool.get()).get_secret_value() == "k3-cccccccccccc"
    assert current_key_selection() is None
    assert not pool.keys[0].usable(pool.clock())


async def test_check_resolves_every_key_and_names_the_one_that_fails() -> None:
    pool, _ = pool_of(["k1-aaaaaaaaaaaa", "env:NOPE"])
    with pytest.raises(ProviderAuthError, match=r"api_keys\[1\].*NOPE is not set"):
        await pool.check()


async def test_a_refused_secret_is_resolved_again() -> None:
    env = {"K": "value-one-aaaaaaaa"}
    pool, _ = pool_of(["env:K", "k2-bbbbbbbbbbbb"], env=env)
    await pool.keys[0].secret()
    env["K"] = "value-two-bbbbbbbb"
    pool.invalidate_secret("value-one-aaaaaaaa")
    assert (await pool.keys[0].secret()).get_secret_value() == "value-two-bbbbbbbb"


def test_nothing_secret_in_the_repr() -> None:
    pool, _ = pool_of(["k1-aaaaaaaaaaaaZZZZ", "k2-bbbbbbbbbbbbYYYY"])
    assert "aaaaaaaa" not in repr(pool) and "api_keys[0]" in repr(pool)
    with pytest.raises(ValueError, match="rotation"):
        KeyPool("p", [pool.keys[0].reference], rotation="random")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one"):
        KeyPool("p", [])
