"""The OpenAI models aiport knows, with their limits and list prices.

Prices are US dollars per million tokens at the standard tier, as published by OpenAI
(August 2025). Any model id not listed here is still passed through to the API; it just
has no limits or cost attached. OpenAI-compatible servers have no catalogue.
"""

from __future__ import annotations

from aiport._types import ModelCapabilities, ProviderModel

__all__ = ["known_models"]

_CHAT = ModelCapabilities(chat=True, streaming=True, tools=True, vision=True, json_output=True)
_EMBEDDINGS = ModelCapabilities(embeddings=True)
_IMAGES = ModelCapabilities(images=True)

# id: (description, context window, max output, input, cached input, output)
_CHAT_MODELS: dict[str, tuple[str, int, int, float, float, float]] = {
    "gpt-4o": ("GPT-4o: fast, multimodal flagship", 128_000, 16_384, 2.50, 1.25, 10.00),
    "gpt-4o-mini": ("GPT-4o mini: small and cheap", 128_000, 16_384, 0.15, 0.075, 0.60),
    "gpt-4.1": ("GPT-4.1: long context, strong at code", 1_047_576, 32_768, 2.00, 0.50, 8.00),
    "gpt-4.1-mini": ("GPT-4.1 mini", 1_047_576, 32_768, 0.40, 0.10, 1.60),
    "gpt-4.1-nano": ("GPT-4.1 nano: the fastest GPT-4.1", 1_047_576, 32_768, 0.10, 0.025, 0.40),
    "o3": ("o3: reasoning model", 200_000, 100_000, 2.00, 0.50, 8.00),
    "o4-mini": ("o4-mini: fast reasoning model", 200_000, 100_000, 1.10, 0.275, 4.40),
    "gpt-5": ("GPT-5: reasoning flagship", 400_000, 128_000, 1.25, 0.125, 10.00),
    "gpt-5-mini": ("GPT-5 mini", 400_000, 128_000, 0.25, 0.025, 2.00),
}

# id: (description, context window in tokens, price per million input tokens)
_EMBEDDING_MODELS: dict[str, tuple[str, int, float]] = {
    "text-embedding-3-small": ("1536 dimensions (shortenable)", 8_191, 0.02),
    "text-embedding-3-large": ("3072 dimensions (shortenable)", 8_191, 0.13),
    "text-embedding-ada-002": ("1536 dimensions", 8_191, 0.10),
}


def known_models(provider: str) -> dict[str, ProviderModel]:
    """The catalogue for a provider of type ``openai`` named ``provider``."""
    models: dict[str, ProviderModel] = {}
    for model_id, (
        description,
        window,
        max_out,
        price_in,
        price_cached,
        price_out,
    ) in _CHAT_MODELS.items():
        models[model_id] = ProviderModel(
            id=model_id,
            provider=provider,
            description=description,
            capabilities=_CHAT,
            context_window=window,
            max_output_tokens=max_out,
            input_price_per_million=price_in,
            cached_input_price_per_million=price_cached,
            output_price_per_million=price_out,
        )
    for model_id, (description, window, price_in) in _EMBEDDING_MODELS.items():
        models[model_id] = ProviderModel(
            id=model_id,
            provider=provider,
            description=f"Embeddings, {description}",
            capabilities=_EMBEDDINGS,
            context_window=window,
            input_price_per_million=price_in,
            # Embeddings produce no output tokens; a zero price lets `cost` be computed.
            output_price_per_million=0.0,
        )
    # gpt-image-1 is billed per token (text input; image output); DALL-E per image, so
    # those have no token prices.
    models["gpt-image-1"] = ProviderModel(
        id="gpt-image-1",
        provider=provider,
        description="GPT Image 1: image generation, billed per token",
        capabilities=_IMAGES,
        input_price_per_million=5.00,
        cached_input_price_per_million=1.25,
        output_price_per_million=40.00,
    )
    models["dall-e-3"] = ProviderModel(
        id="dall-e-3",
        provider=provider,
        description="DALL-E 3: image generation, billed per image",
        capabilities=_IMAGES,
    )
    models["dall-e-2"] = ProviderModel(
        id="dall-e-2",
        provider=provider,
        description="DALL-E 2: image generation, billed per image",
        capabilities=_IMAGES,
    )
    return models
