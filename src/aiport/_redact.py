"""Scrubbing credentials out of text before it reaches an error, a log or a cache.

Providers echo parts of keys in error bodies, proxies echo headers in HTML error pages,
and exceptions quote URLs. Every string aiport builds from something it did not write
passes through ``Redactor.scrub`` first.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

__all__ = ["MIN_FRAGMENT", "Redactor"]

#: Any run of this many characters of a secret is treated as the secret.
MIN_FRAGMENT = 8
_MASK = "[REDACTED]"

# Shapes of well-known credentials, scrubbed even when we were never told the value
# (a key pasted into a prompt that the provider echoes back in an error).
_KNOWN_SHAPES = re.compile(
    r"(sk-(?:proj-|ant-(?:api|admin)\d{2}-)?[A-Za-z0-9_\-]{16,}"
    r"|AKIA[0-9A-Z]{16}"
    r"|AIza[0-9A-Za-z_\-]{35}"
    r"|(?i:bearer)\s+[A-Za-z0-9._~+/\-]{16,}=*)"
)


class Redactor:
    """Knows the secrets in play and removes them (and any long fragment) from text."""

    __slots__ = ("_fragments", "_secrets")

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self._fragments: set[str] = set()
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str) -> None:
        """Remember ``secret`` (short values are ignored: they would mask ordinary words)."""
        if len(secret) < MIN_FRAGMENT or secret in self._secrets:
            return
        self._secrets.add(secret)
        self._fragments.update(
            secret[i : i + MIN_FRAGMENT] for i in range(len(secret) - MIN_FRAGMENT + 1)
        )

    def scrub(self, text: str) -> str:
        """``text`` with every secret, fragment of one, or credential-shaped token masked."""
        if not text:
            return text
        text = _KNOWN_SHAPES.sub(_MASK, text)
        if not self._fragments or len(text) < MIN_FRAGMENT:
            return text
        covered = bytearray(len(text))
        found = False
        fragments = self._fragments
        for i in range(len(text) - MIN_FRAGMENT + 1):
            if text[i : i + MIN_FRAGMENT] in fragments:
                covered[i : i + MIN_FRAGMENT] = b"\x01" * MIN_FRAGMENT
                found = True
        if not found:
            return text
        out: list[str] = []
        i = 0
        while i < len(text):
            if covered[i]:
                while i < len(text) and covered[i]:
                    i += 1
                out.append(_MASK)
            else:
                out.append(text[i])
                i += 1
        return "".join(out)

    def scrub_value(self, value: Any) -> Any:
        """Scrub every string inside a JSON-like value (dicts, lists, strings)."""
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, dict):
            return {self.scrub(str(k)): self.scrub_value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.scrub_value(v) for v in value]
        return value
