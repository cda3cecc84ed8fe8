"""The OpenAI adapter (Chat Completions, embeddings, images), also for OpenAI-compatible
servers (``OpenAIProvider(compatible=True)``)."""

from aiport.providers.openai._provider import OpenAIProvider

__all__ = ["OpenAIProvider"]
