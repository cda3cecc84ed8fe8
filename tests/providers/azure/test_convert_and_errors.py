"""Azure's pure pieces: endpoints and paths, request adaptation, filter results, error
bodies; and the provider type's registration, config and catalogue."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiport import ProviderService
from aiport._config import ProviderModelConfig
from aiport._errors import (
    ConfigError,
    ContentFilterError,
    InvalidRequestError,
    ProviderAPIError,
    ProviderAuthError,
    ProviderError,
    ProviderRateLimitError,
)
from aiport._registry import ProviderRegistry
from aiport.providers.azure import AzureOpenAIProvider
from aiport.providers.azure._convert import (
    DEFAULT_API_VERSION,
    StreamFilterResults,
    adapt_chat_request,
    filtered_categories,
    operation_path,
    split_endpoint,
    supports_base64_embeddings,
)
from aiport.providers.azure._errors import azure_request_id, map_error

ENDPOINT = "https://contoso.openai.azure.com"

# --------------------------------------------------------------------------- addressing


@pytest.mark.parametrize(
    ("base_url", "api_version", "expected"),
    [
        (ENDPOINT, None, (ENDPOINT, DEFAULT_API_VERSION)),
        (ENDPOINT + "/", "2025-04-01-preview", (ENDPOINT, "2025-04-01-preview")),
        (ENDPOINT + "/openai", None, (ENDPOINT, DEFAULT_API_VERSION)),
        (ENDPOINT + "/openai/v1/", None, (ENDPOINT, "v1")),
        (ENDPOINT + "/openai/v1", "2024-10-21", (ENDPOINT, "2024-10-21")),
    ],
)
def test_split_endpoint(base_url: str, api_version: str | None, expected: tuple[str, str]) -> None:
    assert split_endpoint(base_url, api_version) == expected


def test_operation_paths() -> None:
    assert operation_path("2024-10-21", "gpt-4o", "chat/completions") == (
        "deployments/gpt-4o/chat/completions?api-version=2024-10-21"
    )
    # Deployment names are path segments: nothing in them can change the path or query.
    assert operation_path("2024-10-21", "a/b?c", "embeddings") == (
        "deployments/a%2Fb%3Fc/embeddings?api-version=2024-10-21"
    )
    assert operation_path("v1", "gpt-4o", "images/generations") == "v1/images/generations"


def test_adapt_chat_request() -> None:
    def body() -> dict[str, Any]:
        return {"model": "gpt-4o", "messages": [{"role": "developer", "content": "x"}]}

    old = body()
    adapt_chat_request(old, deployment="prod", api_version="2024-10-21")
    assert old == {"model": "prod", "messages": [{"role": "system", "content": "x"}]}
    for version in ("2024-12-01-preview", "2025-01-01", "v1", "some-future-label"):
        new = body()
        adapt_chat_request(new, deployment="prod", api_version=version)
        assert new["messages"][0]["role"] == "developer"


def test_base64_embeddings_by_version() -> None:
    assert not supports_base64_embeddings("2023-05-15")
    assert not supports_base64_embeddings("2024-02-15-preview")
    assert supports_base64_embeddings("2024-03-01-preview")
    assert supports_base64_embeddings(DEFAULT_API_VERSION)
    assert supports_base64_embeddings("v1")


# --------------------------------------------------------------------------- filter results


def test_filtered_categories() -> None:
    results = {
        "hate": {"filtered": True, "severity": "high"},
        "sexual": {"filtered": False, "severity": "low"},
        "jailbreak": {"filtered": True, "detected": True},
        "protected_material_code": {"filtered": False, "detected": True},
        "custom_blocklists": {"filtered": True, "details": [{"filtered": True, "id": "words"}]},
        "profanity": {"filtered": True},
        "error": {"code": "503", "message": "filter unavailable"},
    }
    assert filtered_categories(results) == {
        "hate": "high",
        "jailbreak": "detected",
        "custom_blocklists": "filtered",
        "blocklist:words": "filtered",
        "profanity": "filtered",
    }
    assert filtered_categories(None) == {}
    assert filtered_categories([1, 2]) == {}


verdicts = st.dictionaries(
    st.sampled_from(["hate", "sexual", "violence", "self_harm", "jailbreak"]),
    st.fixed_dictionaries(
        {
            "filtered": st.booleans(),
            "severity": st.sampled_from(["safe", "low", "medium", "high"]),
        }
    ),
)


@given(st.lists(verdicts, max_size=6))
def test_stream_results_keep_every_blocked_category(chunks: list[dict[str, Any]]) -> None:
    gathered = StreamFilterResults()
    for verdict in chunks:
        gathered.take({"id": "c", "choices": [{"index": 0, "content_filter_results": verdict}]})
    raw = gathered.apply({"choices": [{"index": 0, "message": {}}]})
    blocked = {c for verdict in chunks for c, r in verdict.items() if r["filtered"]}
    merged = raw["choices"][0].get("content_filter_results", {})
    assert set(filtered_categories(merged)) == blocked


def test_stream_results_skip_the_prompt_chunk_only() -> None:
    gathered = StreamFilterResults()
    prompt = {"prompt_index": 0, "content_filter_results": {}}
    head = {"choices": [], "id": "", "model": "", "prompt_filter_results": [prompt]}
    assert gathered.take(head) is True
    assert gathered.take({"id": "x", "choices": [{"index": 0, "delta": {}}]}) is False
    assert gathered.take({"id": "x", "choices": [], "usage": {"total_tokens": 3}}) is False
    raw = {"choices": [{"index": 0}]}
    applied = gathered.apply(raw)
    assert applied["prompt_filter_results"] == [prompt]
    assert raw == {"choices": [{"index": 0}]}  # the input is left as it was


# --------------------------------------------------------------------------- error bodies


def error(status: int, body: Any, headers: dict[str, str] | None = None, **kw: Any) -> Any:
    return map_error("azure", status, headers or {}, body, "", "gpt-4o", **kw)


def test_gateway_and_legacy_bodies() -> None:
    gateway = error(401, {"error": {"code": "401", "message": "Access denied"}})
    assert isinstance(gateway, ProviderAuthError)
    assert gateway.error_type is None
    legacy = error(401, {"statusCode": 401, "message": "Access denied due to invalid key"})
    assert isinstance(legacy, ProviderAuthError)
    assert legacy.message == "Access denied due to invalid key"


def test_request_id_headers() -> None:
    assert azure_request_id({"apim-request-id": "a"}) == "a"
    assert azure_request_id({"x-request-id": "b", "apim-request-id": "a"}) == "b"
    assert azure_request_id({"x-ms-request-id": "c"}) == "c"
    assert azure_request_id({}) is None
    failed = error(
        500, {"error": {"code": "InternalServerError", "message": "x"}}, {"x-ms-request-id": "c"}
    )
    assert failed.request_id == "c"


def test_deployment_not_found() -> None:
    body = {"error": {"code": "DeploymentNotFound", "message": "The API deployment ..."}}
    found = error(404, body, deployment="prod")
    assert type(found) is InvalidRequestError
    assert found.reason == "deployment_not_found"
    assert "'prod', configured for model 'gpt-4o'" in found.message
    assert str(found).startswith("[PROVIDER_API_ERROR] The API deployment")


def test_content_filter_bodies() -> None:
    verdict = {"hate": {"filtered": True, "severity": "medium"}}
    chat = {
        "error": {
            "code": "content_filter",
            "message": "filtered",
            "innererror": {
                "code": "ResponsibleAIPolicyViolation",
                "content_filter_result": verdict,
            },
        }
    }
    image = {
        "error": {
            "code": "content_policy_violation",
            "message": "rejected",
            "inner_error": {
                "code": "ResponsibleAIPolicyViolation",
                "content_filter_results": verdict,
            },
        }
    }
    inner_only = {
        "error": {
            "code": "BadRequest",
            "message": "rejected",
            "innererror": {
                "code": "ResponsibleAIPolicyViolation",
                "content_filter_result": verdict,
            },
        }
    }
    for body in (chat, image, inner_only):
        filtered = error(400, body)
        assert isinstance(filtered, ContentFilterError)
        assert filtered.message.endswith("[filtered: hate=medium]")
        assert filtered.args == (filtered.message,)
        assert filtered.body is body


def test_errors_inside_a_stream_take_their_status_from_the_code() -> None:
    limited = error(0, {"error": {"code": "429", "message": "slow down"}})
    assert isinstance(limited, ProviderRateLimitError)
    assert limited.status_code is None
    filtered = error(0, {"error": {"code": "content_filter", "message": "filtered"}})
    assert isinstance(filtered, ContentFilterError)
    unknown = error(0, {"error": {"code": "Whatever", "message": "odd"}})
    assert isinstance(unknown, ProviderAPIError)
    assert unknown.retryable


# --------------------------------------------------------------------------- registration


def test_registered_type() -> None:
    azure = ProviderRegistry.default().get("azure")
    assert azure.api_key_env == "AZURE_OPENAI_API_KEY"
    assert azure.base_url_env == "AZURE_OPENAI_ENDPOINT"
    assert azure.requires_base_url
    catalogue = azure.known_models("my-azure")
    assert catalogue["gpt-4o"].provider == "my-azure"
    assert catalogue["text-embedding-3-small"].capabilities.embeddings
    assert catalogue["dall-e-3"].capabilities.images
    assert not catalogue["o3-mini"].capabilities.vision


def test_a_base_url_is_required() -> None:
    with pytest.raises(ConfigError, match=r"providers\.azure\.base_url"):
        ProviderService({"providers": {"azure": {"type": "azure", "api_key": "k"}}}, env={})


def test_deployment_config_field() -> None:
    assert ProviderModelConfig(deployment="prod").deployment == "prod"
    with pytest.raises(ConfigError, match="deployment: must not be empty"):
        ProviderModelConfig(deployment=" ")


async def test_provider_defaults(http: Any) -> None:
    provider = AzureOpenAIProvider(base_url=ENDPOINT + "/openai", http=http)
    assert provider.endpoint == ENDPOINT
    assert provider.api_version == DEFAULT_API_VERSION
    assert provider.models["gpt-4o"].input_price_per_million == 2.5
    assert provider.deployment_for("gpt-4o") == "gpt-4o"
    assert provider.auth_headers("k") == {"api-key": "k"}
    bearer = AzureOpenAIProvider(base_url=ENDPOINT, http=http, bearer=True)
    assert bearer.auth_headers("t") == {"Authorization": "Bearer t"}
    with pytest.raises(ProviderAuthError, match="no API key"):
        await provider.check()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
error_keys = st.sampled_from(
    ["code", "message", "type", "innererror", "inner_error", "content_filter_result", "status"]
)
error_bodies = st.one_of(
    json_values,
    st.fixed_dictionaries({"error": st.dictionaries(error_keys, json_values)}),
    st.fixed_dictionaries(
        {"error": st.fixed_dictionaries({"innererror": st.dictionaries(error_keys, json_values)})}
    ),
)


@given(st.sampled_from([0, 400, 401, 403, 404, 408, 429, 500, 503]), error_bodies)
def test_any_error_body_maps_to_a_typed_error(status: int, body: Any) -> None:
    mapped = map_error("azure", status, {}, body, json.dumps(body), "gpt-4o", deployment="d")
    assert isinstance(mapped, ProviderError)
    assert mapped.message
    assert mapped.status_code == (status or None)
