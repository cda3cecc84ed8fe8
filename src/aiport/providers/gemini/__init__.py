"""Google Gemini through the Gemini API (Generative Language API): generateContent,
streaming, embeddings and Imagen."""

from aiport.providers.gemini._provider import GeminiProvider

__all__ = ["GeminiProvider"]
