"""Cohere's reranking (``POST /v2/rerank``): typed results and pure conversions.

Reranking is a Cohere extra, not part of the unified interface: reach it through the
adapter itself (``CohereProvider.rerank``; see its docstring).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from aiport._errors import MalformedResponseError

__all__ = [
    "DEFAULT_RERANK_MODEL",
    "RerankResponse",
    "RerankResult",
    "build_rerank_request",
    "parse_rerank_response",
]

#: The model ``rerank`` uses when none is given.
DEFAULT_RERANK_MODEL = "rerank-v3.5"


class RerankResult(BaseModel):
    """One document, scored against the query.

    ``index`` is its position in the documents given; ``relevance_score`` lies in
    [0, 1], higher meaning more relevant (scores order documents, they are not ratios).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    index: int
    relevance_score: float
    document: str


class RerankResponse(BaseModel):
    """The documents ordered from most to least relevant (the ``top_n`` best, if asked).

    ``search_units`` is what Cohere bills for the call (one per query of up to 100
    documents); ``raw`` is Cohere's answer.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    model: str
    provider: str
    results: list[RerankResult]
    search_units: int = 0
    latency: float = 0.0
    request_id: str | None = None
    raw: dict[str, Any] = Field(default_factory=dict, repr=False)


def build_rerank_request(
    query: str,
    documents: Sequence[str],
    *,
    model: str,
    top_n: int | None,
    max_tokens_per_doc: int | None,
    provider_options: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The ``/v2/rerank`` body. ``provider_options`` are merged last.

    Raises:
        ValueError: no documents, an empty query, or ``top_n`` / ``max_tokens_per_doc``
            below 1.
    """
    if not query:
        raise ValueError("rerank needs a non-empty query")
    if not documents:
        raise ValueError("rerank needs at least one document")
    if isinstance(documents, str) or not all(isinstance(d, str) for d in documents):
        raise ValueError("rerank documents must be a list of strings")
    body: dict[str, Any] = {"model": model, "query": query, "documents": list(documents)}
    if top_n is not None:
        if top_n < 1:
            raise ValueError("top_n must be at least 1")
        body["top_n"] = top_n
    if max_tokens_per_doc is not None:
        if max_tokens_per_doc < 1:
            raise ValueError("max_tokens_per_doc must be at least 1")
        body["max_tokens_per_doc"] = max_tokens_per_doc
    if provider_options:
        body.update(provider_options)
    return body


def _result(item: Any, documents: Sequence[str]) -> RerankResult:
    """One result (``TypeError``/``KeyError``/``IndexError`` when it is not one)."""
    index = item["index"]
    score = item["relevance_score"]
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise TypeError("index is not a document position")
    if isinstance(score, bool) or not isinstance(score, int | float):
        raise TypeError("relevance_score is not a number")
    return RerankResult(index=index, relevance_score=float(score), document=documents[index])


def parse_rerank_response(
    data: dict[str, Any],
    documents: Sequence[str],
    *,
    provider: str,
    model: str,
    latency: float,
    request_id: str | None,
) -> RerankResponse:
    """A ``/v2/rerank`` answer -> ``RerankResponse`` (results in Cohere's order, best
    first, each with the text of its document)."""
    raw_results = data.get("results")
    try:
        if not isinstance(raw_results, list):
            raise TypeError("results is not a list")  # noqa: TRY301  (one handler for all)
        results = [_result(item, documents) for item in raw_results]
    except (KeyError, TypeError, IndexError) as exc:
        raise MalformedResponseError(
            f"{provider} answered with rerank results aiport could not read ({exc})",
            provider=provider,
            model=model,
            request_id=request_id,
        ) from exc
    meta = data.get("meta")
    billed = meta.get("billed_units") if isinstance(meta, Mapping) else None
    units = billed.get("search_units") if isinstance(billed, Mapping) else None
    return RerankResponse(
        id=data.get("id") if isinstance(data.get("id"), str) else "",
        model=model,
        provider=provider,
        results=results,
        search_units=int(units) if isinstance(units, int | float) else 0,
        latency=latency,
        request_id=request_id,
        raw=data,
    )
