"""Fixtures of the key rotation tests: fresh keys, an emulator accepting a chosen set.

Redis comes from the resilience tests' fixtures (``AIPORT_TEST_REDIS_URL`` or a private
``redis-server``; skipped without one unless ``AIPORT_TEST_REQUIRE_REDIS=1``).
"""

from __future__ import annotations

import uuid

from tests.resilience.conftest import (  # noqa: F401  (fixtures)
    redis_prefix,
    redis_server_factory,
    redis_url,
)


def new_key(tag: str) -> str:
    """A key no other test uses (its rate-limit buckets start empty, even in Redis)."""
    return f"sk-rot-{tag}-{uuid.uuid4().hex[:20]}"
