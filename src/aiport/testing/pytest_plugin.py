"""pytest fixtures for the aiport emulator (registered as the ``aiport`` pytest11 plugin).

The emulator runs on its own event loop in a thread, so the fixtures work the same for
sync tests and for async tests under any async plugin (none is required).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from aiport.testing import Emulator


@pytest.fixture
def aiport_emulator() -> Iterator[Emulator]:
    """A fresh emulator for one test, stopped afterwards."""
    with Emulator().run_in_thread() as emu:
        yield emu


@pytest.fixture(scope="session")
def aiport_emulator_session() -> Iterator[Emulator]:
    """One emulator shared by the whole session; call ``reset()`` between uses if needed."""
    with Emulator().run_in_thread() as emu:
        yield emu
