"""Layers: providers that wrap a provider to add one cross-cutting concern each."""

from aiport.layers._hooks import (
    ErrorEvent,
    Hook,
    HookEvent,
    Hooks,
    HooksLayer,
    RequestEvent,
    ResponseEvent,
)

__all__ = [
    "ErrorEvent",
    "Hook",
    "HookEvent",
    "Hooks",
    "HooksLayer",
    "RequestEvent",
    "ResponseEvent",
]
