"""Embedding and image models through InvokeModel (``POST /model/{id}/invoke``): pure
conversions.

Each model family has its own body, chosen by the model id:

- Amazon Titan text embeddings (``amazon.titan-embed-text-v2:0``, ``-v1``): one text per
  call, ``{"inputText", "dimensions", "normalize"}`` -> ``{"embedding",
  "inputTextTokenCount"}``. ``dimensions`` (256, 512 or 1024) is v2 only.
- Cohere Embed on Bedrock (``cohere.embed-english-v3``, ``-multilingual-v3``,
  ``cohere.embed-v4:0``): up to 96 texts per call, ``{"texts", "input_type"}`` ->
  ``{"embeddings"}`` (a list of vectors, or ``{"float": [...]}`` when
  ``embedding_types`` was asked for). ``input_type`` defaults to ``search_document``
  (give ``provider_options={"input_type": "search_query"}`` for queries);
  ``dimensions`` is sent as ``output_dimension`` (v4 only).

``provider_options`` are merged into each body (``{"normalize": False}``,
``{"truncate": "END"}``...).

Image generation: Amazon Nova Canvas (``amazon.nova-canvas-v1:0``) and Titan Image
Generator (``amazon.titan-image-generator-v2:0``, ``-v1``) share one body:
``{"taskType": "TEXT_IMAGE", "textToImageParams": {"text"}, "imageGenerationConfig":
{"numberOfImages", "width", "height", "quality"}}`` -> ``{"images": [<base64 PNG>]}``.
``quality`` ``hd``/``high`` is ``premium``, ``standard``/``medium``/``low`` is
``standard``; ``style`` (Nova Canvas) goes to ``textToImageParams``. Bedrock answers
bytes only, so ``output="url"`` still gives bytes. ``provider_options`` keys of
``imageGenerationConfig`` (``cfgScale``, ``seed``) and of ``textToImageParams``
(``negativeText``...) go there; any other key to the top level.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from aiport._types import ImageGenerationOptions, ModelEmbeddingOptions

__all__ = [
    "COHERE_BATCH",
    "EmbeddingFamily",
    "cohere_body",
    "embedding_family",
    "image_body",
    "is_image_model",
    "parse_cohere",
    "parse_images",
    "parse_titan",
    "titan_body",
]

EmbeddingFamily = Literal["titan", "cohere"]
#: Most texts Cohere Embed takes in one call on Bedrock.
COHERE_BATCH = 96


def embedding_family(model: str) -> EmbeddingFamily | None:
    """Which request format ``model`` speaks, from its id (inference profiles included)."""
    lowered = model.lower()
    if "titan-embed" in lowered:
        return "titan"
    if "cohere.embed" in lowered:
        return "cohere"
    return None


def titan_body(text: str, options: ModelEmbeddingOptions) -> dict[str, Any]:
    """The Titan text embeddings body for one text."""
    body: dict[str, Any] = {"inputText": text}
    if options.dimensions is not None:
        body["dimensions"] = options.dimensions
    body.update(options.provider_options)
    return body


def cohere_body(texts: Sequence[str], options: ModelEmbeddingOptions) -> dict[str, Any]:
    """The Cohere Embed body for up to ``COHERE_BATCH`` texts."""
    body: dict[str, Any] = {"texts": list(texts), "input_type": "search_document"}
    if options.dimensions is not None:
        body["output_dimension"] = options.dimensions
    body.update(options.provider_options)
    return body


def _vector(value: Any) -> list[float]:
    if not isinstance(value, list) or not all(
        isinstance(x, int | float) and not isinstance(x, bool) for x in value
    ):
        raise TypeError("an embedding is not a list of numbers")
    return [float(x) for x in value]


def parse_titan(data: Mapping[str, Any]) -> tuple[list[float], int]:
    """(vector, input tokens) of a Titan answer; ``TypeError``/``KeyError`` if malformed."""
    vector = data.get("embedding")
    if vector is None:
        by_type = data.get("embeddingsByType")
        vector = by_type.get("float") if isinstance(by_type, Mapping) else None
    tokens = data.get("inputTextTokenCount")
    return _vector(vector), tokens if isinstance(tokens, int) else 0


def parse_cohere(data: Mapping[str, Any], count: int) -> list[list[float]]:
    """The ``count`` vectors of a Cohere answer; ``TypeError``/``ValueError`` if malformed.

    ``embeddings`` is a list of vectors (``embeddings_floats``), or by type
    (``embeddings_by_type``: the ``float`` vectors are used).
    """
    embeddings = data["embeddings"]
    if isinstance(embeddings, Mapping):
        embeddings = embeddings.get("float")
        if embeddings is None:
            raise ValueError(
                "the answer has no float embeddings (ask for embedding_types ['float'])"
            )
    if not isinstance(embeddings, list):
        raise TypeError("embeddings is not a list")
    vectors = [_vector(v) for v in embeddings]
    if len(vectors) != count:
        raise ValueError(f"{len(vectors)} embeddings for {count} texts")
    return vectors


_QUALITIES = {
    "hd": "premium",
    "high": "premium",
    "premium": "premium",
    "standard": "standard",
    "medium": "standard",
    "low": "standard",
}
_CONFIG_KEYS = frozenset({"cfgScale", "seed", "numberOfImages", "width", "height", "quality"})
_TEXT_KEYS = frozenset(
    {"negativeText", "style", "conditionImage", "controlMode", "controlStrength"}
)


def is_image_model(model: str) -> bool:
    """Whether ``model`` is an Amazon image model (Nova Canvas, Titan Image Generator)."""
    lowered = model.lower()
    return "nova-canvas" in lowered or "titan-image-generator" in lowered


def image_body(options: ImageGenerationOptions) -> dict[str, Any]:
    """The TEXT_IMAGE body; ``ValueError`` for a quality Bedrock has no match for."""
    text: dict[str, Any] = {"text": options.prompt}
    config: dict[str, Any] = {"numberOfImages": options.n}
    if options.size is not None and options.size != "auto":
        width, _, height = options.size.partition("x")
        config["width"], config["height"] = int(width), int(height)
    if options.quality is not None:
        quality = _QUALITIES.get(options.quality.lower())
        if quality is None:
            raise ValueError(
                f"quality {options.quality!r} has no Bedrock equivalent (standard or premium)"
            )
        config["quality"] = quality
    if options.style is not None:
        text["style"] = options.style
    body: dict[str, Any] = {"taskType": "TEXT_IMAGE"}
    for key, value in options.provider_options.items():
        if key in _CONFIG_KEYS:
            config[key] = value
        elif key in _TEXT_KEYS:
            text[key] = value
        else:
            body[key] = value
    body.setdefault("textToImageParams", text)
    body.setdefault("imageGenerationConfig", config)
    return body


def parse_images(data: Mapping[str, Any]) -> list[bytes]:
    """The PNG bytes of an answer; ``ValueError``/``TypeError`` if malformed."""
    import base64
    import binascii

    error = data.get("error")
    if isinstance(error, str) and error:
        raise ValueError(error)
    images = data["images"]
    if not isinstance(images, list) or not images:
        raise TypeError("images is not a non-empty list")
    try:
        return [base64.b64decode(image, validate=True) for image in images]
    except (binascii.Error, TypeError) as exc:
        raise ValueError(f"an image is not valid base64 ({exc})") from None
