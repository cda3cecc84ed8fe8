"""Layers: providers that wrap a provider to add one cross-cutting concern each."""

from aiport.layers._hooks import (
    AttemptEvent,
    ErrorEvent,
    Hook,
    HookEvent,
    Hooks,
    HooksLayer,
    RequestEvent,
    ResponseEvent,
)
from aiport.layers._retry import RetryBudget, RetryLayer

__all__ = [
    "AttemptEvent",
    "ErrorEvent",
    "Hook",
    "HookEvent",
    "Hooks",
    "HooksLayer",
    "RequestEvent",
    "ResponseEvent",
    "RetryBudget",
    "RetryLayer",
]
