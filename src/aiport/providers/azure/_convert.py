"""What Azure OpenAI adds to the OpenAI wire format: pure functions, no I/O.

Azure OpenAI speaks OpenAI's Chat Completions, embeddings and images formats (the
conversions of :mod:`aiport.providers.openai._convert` and ``_media`` are reused as they
are). What differs, and lives here:

- Addressing: a *deployment* (a name the user chose in Azure) instead of a model name,
  in the URL of the classic surface
  ``{endpoint}/openai/deployments/{deployment}/chat/completions?api-version=...``, or in
  the body's ``model`` on the v1 surface ``{endpoint}/openai/v1/chat/completions``.
- Content filtering: answers carry ``prompt_filter_results`` (per prompt) and
  ``content_filter_results`` (per choice, per image); streams open with a chunk that has
  no choices and only the prompt's filter results, and spread the choices' results over
  their chunks. :class:`StreamFilterResults` gathers them so a streamed response keeps
  them in ``raw`` like a non-streamed one.
- Older API versions: no ``developer`` role before ``2024-12-01-preview`` (sent as
  ``system``, which older models treat the same), no base64 embeddings before
  ``2024-03-01-preview`` (floats asked for instead).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

__all__ = [
    "DEFAULT_API_VERSION",
    "V1_API_VERSION",
    "StreamFilterResults",
    "adapt_chat_request",
    "filtered_categories",
    "operation_path",
    "split_endpoint",
    "supports_base64_embeddings",
]

#: The newest generally available (non-preview) API version of the classic surface.
DEFAULT_API_VERSION = "2024-10-21"
#: The ``api_version`` that selects the v1 surface (``{endpoint}/openai/v1/...``).
V1_API_VERSION = "v1"

#: API versions (YYYY-MM-DD, optionally ``-preview``) from which a feature is accepted.
_DEVELOPER_ROLE_SINCE = "2024-12-01"
_BASE64_EMBEDDINGS_SINCE = "2024-03-01"

_VERSION_DATE = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:-preview)?$")
# Endpoint suffixes people paste from the portal or from SDK examples.
_V1_SUFFIX = "/openai/v1"
_CLASSIC_SUFFIX = "/openai"


def split_endpoint(base_url: str, api_version: str | None) -> tuple[str, str]:
    """``(endpoint, api_version)`` from a configured base URL and API version.

    The endpoint is the resource URL (``https://NAME.openai.azure.com``); a trailing
    ``/openai`` or ``/openai/v1`` is removed, and ``/openai/v1`` with no API version
    configured selects the v1 surface. Without either, the API version is
    :data:`DEFAULT_API_VERSION`.
    """
    endpoint = base_url.rstrip("/")
    v1 = False
    if endpoint.endswith(_V1_SUFFIX):
        endpoint = endpoint.removesuffix(_V1_SUFFIX)
        v1 = True
    elif endpoint.endswith(_CLASSIC_SUFFIX):
        endpoint = endpoint.removesuffix(_CLASSIC_SUFFIX)
    if api_version:
        return endpoint, api_version
    return endpoint, V1_API_VERSION if v1 else DEFAULT_API_VERSION


def _since(api_version: str, first: str) -> bool:
    """Whether ``api_version`` is ``first`` or newer (the v1 surface is always newest)."""
    if api_version == V1_API_VERSION:
        return True
    match = _VERSION_DATE.match(api_version)
    # An unusual version string: assume the user picked a recent one on purpose.
    return match is None or match.group(1) >= first


def supports_base64_embeddings(api_version: str) -> bool:
    """Whether embeddings may be asked for as base64 (``encoding_format``)."""
    return _since(api_version, _BASE64_EMBEDDINGS_SINCE)


def operation_path(api_version: str, deployment: str, operation: str) -> str:
    """The path, below ``{endpoint}/openai``, of ``operation`` (``chat/completions``,
    ``embeddings``, ``images/generations``) on ``deployment``.

    The classic surface names the deployment in the path and the API version in the
    query; the v1 surface has neither (the deployment goes in the body's ``model``).
    """
    if api_version == V1_API_VERSION:
        return f"v1/{operation}"
    return (
        f"deployments/{quote(deployment, safe='')}/{operation}"
        f"?api-version={quote(api_version, safe='')}"
    )


def adapt_chat_request(body: dict[str, Any], *, deployment: str, api_version: str) -> None:
    """Turn an OpenAI chat request body into Azure's, in place.

    ``model`` becomes the deployment (the v1 surface routes on it; the classic surface
    ignores it). Before API version ``2024-12-01-preview`` Azure refuses the ``developer``
    role: such messages are sent as ``system`` messages, their equivalent there.
    """
    body["model"] = deployment
    if _since(api_version, _DEVELOPER_ROLE_SINCE):
        return
    for message in body.get("messages") or ():
        if isinstance(message, dict) and message.get("role") == "developer":
            message["role"] = "system"


# --------------------------------------------------------------------------- content filters


def filtered_categories(results: Any) -> dict[str, str]:
    """The categories a content-filter result blocked, with why.

    ``results`` is one ``content_filter_results`` object (or an error's
    ``content_filter_result``): ``{"hate": {"filtered": true, "severity": "high"},
    "jailbreak": {"filtered": true, "detected": true}, ...}``. Returns
    ``{"hate": "high", "jailbreak": "detected"}``: the severity for graded categories,
    ``"detected"`` for detections, ``"filtered"`` otherwise. Custom blocklists appear
    under ``custom_blocklists`` (``{"filtered": true, "details": [{"id": ...}]}``) and are
    reported as ``"blocklist:<id>"`` entries. Anything not blocked is left out.
    """
    out: dict[str, str] = {}
    if not isinstance(results, Mapping):
        return out
    for category, result in results.items():
        if not isinstance(result, Mapping) or result.get("filtered") is not True:
            continue
        severity = result.get("severity")
        if isinstance(severity, str) and severity:
            out[category] = severity
        elif result.get("detected") is True:
            out[category] = "detected"
        else:
            out[category] = "filtered"
        details = result.get("details")
        if isinstance(details, list):
            for detail in details:
                if isinstance(detail, Mapping) and detail.get("filtered") is not False:
                    blocklist = detail.get("id")
                    if isinstance(blocklist, str) and blocklist:
                        out[f"blocklist:{blocklist}"] = "filtered"
    return out


def _merge_results(into: dict[str, Any], new: Mapping[str, Any]) -> None:
    """Merge one chunk's filter results into what a choice had so far.

    A streamed choice gets results per segment of text: a category once blocked stays
    blocked; otherwise the latest result (the longest text judged) wins.
    """
    for category, result in new.items():
        held = into.get(category)
        if isinstance(held, Mapping) and held.get("filtered") is True:
            continue
        into[category] = result


class StreamFilterResults:
    """The content-filter results spread over a stream's chunks, gathered.

    ``take(chunk)`` records what a chunk carries and says whether the chunk is only
    filter results (Azure's first chunk: no choices, an empty id and model), which must
    not reach the OpenAI stream assembler (it would take its empty id and model for the
    answer's). ``apply(raw)`` puts the gathered results into the assembled answer, where
    a non-streamed answer has them.
    """

    __slots__ = ("_choices", "_prompt")

    def __init__(self) -> None:
        self._prompt: list[Any] = []
        self._choices: dict[int, dict[str, Any]] = {}

    def take(self, chunk: Mapping[str, Any]) -> bool:
        """Record the chunk's filter results; ``True`` when that is all it holds."""
        prompt = chunk.get("prompt_filter_results")
        if isinstance(prompt, list):
            self._prompt.extend(prompt)
        choices = chunk.get("choices")
        if isinstance(choices, list):
            for choice in choices:
                if not isinstance(choice, Mapping):
                    continue
                results = choice.get("content_filter_results")
                if isinstance(results, Mapping) and results:
                    index = choice.get("index")
                    key = index if isinstance(index, int) else 0
                    _merge_results(self._choices.setdefault(key, {}), results)
        return not choices and not chunk.get("usage") and not chunk.get("id")

    def apply(self, raw: dict[str, Any]) -> dict[str, Any]:
        """``raw`` with the gathered results in place (a new dict; ``raw`` is kept)."""
        merged = dict(raw)
        if self._prompt:
            merged["prompt_filter_results"] = list(self._prompt)
        choices = merged.get("choices")
        if self._choices and isinstance(choices, list):
            updated: list[Any] = []
            for choice in choices:
                results = None
                if isinstance(choice, Mapping):
                    index = choice.get("index")
                    results = self._choices.get(index if isinstance(index, int) else 0)
                updated.append(
                    choice if results is None else {**choice, "content_filter_results": results}
                )
            merged["choices"] = updated
        return merged
