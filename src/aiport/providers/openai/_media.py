"""OpenAI embeddings and images: pure conversions (no I/O).

Embeddings ask OpenAI itself for base64 float32 vectors (decoded with ``array``, about
10x faster than parsing JSON floats) and compatible servers for plain floats.
"""

from __future__ import annotations

import array
import base64
import sys
from collections.abc import Mapping
from typing import Any

from aiport._errors import MalformedResponseError
from aiport._types import (
    GeneratedImage,
    ImageGenerationOptions,
    ImageGenerationResponse,
    ModelEmbeddingOptions,
    ModelEmbeddingResponse,
    ProviderModel,
    Usage,
)
from aiport.providers.openai._convert import _int, lookup_model, parse_usage

__all__ = [
    "build_embedding_request",
    "build_image_request",
    "decode_embedding",
    "is_gpt_image",
    "parse_embedding_response",
    "parse_image_response",
]

_IMAGE_MEDIA_TYPES = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "jpg": "image/jpeg",
    "webp": "image/webp",
}

# --------------------------------------------------------------------------- embeddings


def build_embedding_request(options: ModelEmbeddingOptions, *, compatible: bool) -> dict[str, Any]:
    """The ``/embeddings`` body: base64 vectors from OpenAI (a quarter of the bytes of
    JSON floats, and decoded far faster), JSON floats from compatible servers."""
    body: dict[str, Any] = {
        "model": options.model,
        "input": options.input,
        "encoding_format": "float" if compatible else "base64",
    }
    if options.dimensions is not None:
        body["dimensions"] = options.dimensions
    if options.provider_options:
        body.update(options.provider_options)
    return body


def decode_embedding(value: Any) -> list[float]:
    """One vector from the wire: a list of floats, or base64 little-endian float32."""
    if isinstance(value, list):
        return value
    if isinstance(value, str):
        vector = array.array("f")
        vector.frombytes(base64.b64decode(value))
        if sys.byteorder == "big":
            vector.byteswap()
        return vector.tolist()
    raise TypeError(f"an embedding must be a list or a base64 string, not {type(value).__name__}")


def parse_embedding_response(
    data: dict[str, Any],
    *,
    provider: str,
    model: str,
    latency: float,
    request_id: str | None,
    models: Mapping[str, ProviderModel],
) -> ModelEmbeddingResponse:
    """An ``/embeddings`` answer -> vectors in input order (sorted by ``index``).

    ``raw`` is the answer without its ``data`` (the vectors are in ``embeddings``).
    """
    try:
        ordered = sorted(data["data"], key=lambda item: item.get("index", 0))
        vectors = [decode_embedding(item.get("embedding")) for item in ordered]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        # A missing or odd data list, a vector of the wrong type, broken base64.
        raise MalformedResponseError(
            f"{provider} answered with embeddings aiport could not read ({type(exc).__name__})",
            provider=provider,
            model=model,
            request_id=request_id,
        ) from exc
    usage = parse_usage(data.get("usage"))
    reported = data.get("model") or model
    row = lookup_model(models, reported, model)
    return ModelEmbeddingResponse.model_construct(
        model=reported,
        provider=provider,
        embeddings=vectors,
        usage=usage,
        latency=latency,
        cost=row.cost(usage) if row is not None else None,
        request_id=request_id,
        raw={k: v for k, v in data.items() if k != "data"},
    )


# --------------------------------------------------------------------------- images


def is_gpt_image(model: str) -> bool:
    """``gpt-image*`` models always answer base64 and refuse ``response_format``."""
    return model.startswith("gpt-image")


def build_image_request(options: ImageGenerationOptions) -> dict[str, Any]:
    """The ``/images/generations`` body.

    ``output="url"`` asks DALL-E for URLs; anything else asks for the bytes (URLs
    expire after an hour). ``gpt-image`` models always answer with bytes, even when a
    URL was asked for.
    """
    body: dict[str, Any] = {"model": options.model, "prompt": options.prompt, "n": options.n}
    if options.size is not None:
        body["size"] = options.size
    if options.quality is not None:
        body["quality"] = options.quality
    if options.style is not None:
        body["style"] = options.style
    if not is_gpt_image(options.model):
        body["response_format"] = "url" if options.output == "url" else "b64_json"
    if options.provider_options:
        body.update(options.provider_options)
    return body


def parse_image_response(
    data: dict[str, Any],
    *,
    provider: str,
    options: ImageGenerationOptions,
    latency: float,
    request_id: str | None,
    models: Mapping[str, ProviderModel],
) -> ImageGenerationResponse:
    """An ``/images/generations`` answer -> images (bytes decoded) with their media type.

    ``raw`` is the answer without the image data.
    """
    output_format = data.get("output_format") or options.provider_options.get("output_format")
    media_type = _IMAGE_MEDIA_TYPES.get(str(output_format).lower(), "image/png")
    images: list[GeneratedImage] = []
    items = data.get("data")
    try:
        for item in items if isinstance(items, list) else ():
            b64 = item.get("b64_json")
            images.append(
                GeneratedImage.model_construct(
                    data=base64.b64decode(b64) if b64 else None,
                    url=item.get("url"),
                    media_type=media_type,
                    revised_prompt=item.get("revised_prompt"),
                )
            )
    except (ValueError, AttributeError) as exc:
        raise MalformedResponseError(
            f"{provider} answered with images aiport could not read ({exc})",
            provider=provider,
            model=options.model,
            request_id=request_id,
        ) from exc
    usage_data = data.get("usage")
    usage = Usage()
    if isinstance(usage_data, Mapping):
        prompt = _int(usage_data.get("input_tokens"))
        output = _int(usage_data.get("output_tokens"))
        usage = Usage(
            input_tokens=prompt,
            output_tokens=output,
            total_tokens=_int(usage_data.get("total_tokens")) or prompt + output,
        )
    row = lookup_model(models, options.model, None)
    cost = row.cost(usage) if row is not None and usage_data else None
    return ImageGenerationResponse.model_construct(
        model=options.model,
        provider=provider,
        images=images,
        usage=usage,
        latency=latency,
        cost=cost,
        request_id=request_id,
        raw={k: v for k, v in data.items() if k != "data"},
    )
