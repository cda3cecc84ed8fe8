"""Anthropic (Claude) through the Messages API."""

from aiport.providers.anthropic._provider import AnthropicProvider

__all__ = ["AnthropicProvider"]
