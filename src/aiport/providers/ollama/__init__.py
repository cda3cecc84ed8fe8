"""The Ollama adapter: Ollama's native API (``/api/chat``, ``/api/embed``, ``/api/tags``)."""

from aiport.providers.ollama._provider import OllamaProvider

__all__ = ["OllamaProvider"]
