"""A single API key rotated at its source, end to end against the emulator.

What the README ("Rotating a key") promises: aiport resolves a key reference once and keeps
the key until the provider answers 401; it then resolves the reference again, so the next
call uses the new key, without a restart. The call that got the 401 fails with it (a key
is not a token: nothing is retried). Here the reference is ``file:`` with a path relative
to the configuration file, and the emulator accepts only the new key.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aiport import ProviderAuthError, ProviderService
from aiport.testing import Emulator

OLD_KEY = "sk-rotate-old-Xp4Lm8Qz1Wd6Hs3"
NEW_KEY = "sk-rotate-new-Ty7Bn2Kc9Rf5Gv0"
MODEL = "o:gpt-4o-mini"


@pytest.fixture(scope="module")
def rotated_emulator() -> Iterator[Emulator]:
    """The provider after the rotation: the old key is revoked, the new one works."""
    with Emulator(api_keys=[NEW_KEY]).run_in_thread() as emulator:
        yield emulator


@pytest.fixture
def emu(rotated_emulator: Emulator) -> Iterator[Emulator]:
    rotated_emulator.reset()
    yield rotated_emulator
    rotated_emulator.reset()


@pytest.fixture
def project(tmp_path: Path, emu: Emulator) -> Path:
    """A configuration file whose key is ``file:secrets/openai`` (relative to the file)."""
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "openai").write_text(OLD_KEY + "\n")
    config = tmp_path / "aiport.toml"
    config.write_text(
        "[retry]\nmax_attempts = 1\n\n"
        '[providers.o]\ntype = "openai"\n'
        f'base_url = "{emu.openai_base_url}"\n'
        'api_key = "file:secrets/openai"\n'
    )
    return config


def sent_keys(emu: Emulator) -> list[str]:
    return [
        r.headers["authorization"].removeprefix("Bearer ")
        for r in emu.requests
        if r.path == "/v1/chat/completions"
    ]


async def test_the_call_after_a_401_reads_the_rotated_key(emu: Emulator, project: Path) -> None:
    key_file = project.parent / "secrets" / "openai"
    async with ProviderService(project, env={}) as service:
        with pytest.raises(ProviderAuthError) as caught:
            await service.complete(model=MODEL, messages="a")
        assert caught.value.status_code == 401
        assert OLD_KEY not in str(caught.value) and OLD_KEY not in repr(caught.value)
        assert sent_keys(emu) == [OLD_KEY]

        key_file.write_text(NEW_KEY + "\n")  # the operator rotates the key
        reply = await service.complete(model=MODEL, messages="b")
        assert reply.text == "You said: b"
        assert sent_keys(emu) == [OLD_KEY, NEW_KEY]

        # Kept, not read per call: the file may even be gone now.
        key_file.unlink()
        async with service.stream(model=MODEL, messages="c") as stream:
            async for _ in stream:
                pass
        assert stream.response is not None and stream.response.text == "You said: c"
        assert sent_keys(emu) == [OLD_KEY, NEW_KEY, NEW_KEY]


async def test_a_key_already_held_is_replaced_after_the_401_it_earns(
    emu: Emulator, project: Path
) -> None:
    key_file = project.parent / "secrets" / "openai"
    async with ProviderService(project, env={}) as service:
        assert service.validate_provider("o")  # resolves (and keeps) the old key
        key_file.write_text(NEW_KEY + "\n")  # rotated at the source meanwhile

        with pytest.raises(ProviderAuthError) as caught:  # sent with the key held
            await service.complete(model=MODEL, messages="a")
        assert caught.value.status_code == 401

        reply = await service.complete(model=MODEL, messages="b")  # read again
        assert reply.text == "You said: b"
        assert sent_keys(emu) == [OLD_KEY, NEW_KEY]


async def test_a_401_with_the_key_unchanged_keeps_failing_cleanly(
    emu: Emulator, project: Path
) -> None:
    async with ProviderService(project, env={}) as service:
        for text in ("a", "b"):
            with pytest.raises(ProviderAuthError) as caught:
                await service.complete(model=MODEL, messages=text)
            assert caught.value.status_code == 401
        assert sent_keys(emu) == [OLD_KEY, OLD_KEY]  # one request per call, no retry loop
