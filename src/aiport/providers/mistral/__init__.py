"""The Mistral AI adapter: chat (tools, vision, JSON output, prefill) and embeddings."""

from aiport.providers.mistral._provider import MistralProvider

__all__ = ["MistralProvider"]
