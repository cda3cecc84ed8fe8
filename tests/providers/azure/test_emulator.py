"""The emulator's Azure routes on the wire: what a client that gets things wrong sees."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest

from aiport._http import HttpClient, HttpTimeouts
from aiport.testing import Emulator
from aiport.testing._azure import AzureRoutes

from .conftest import AZURE_KEY

CHAT_BODY = {"messages": [{"role": "user", "content": "Hi"}]}


async def post(
    http: HttpClient,
    url: str,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
) -> tuple[int, Mapping[str, str], Any]:
    response = await http.request(
        "POST",
        url,
        headers={
            "Content-Type": "application/json",
            **(headers if headers is not None else {"api-key": AZURE_KEY}),
        },
        body=json.dumps(CHAT_BODY if body is None else body).encode(),
        timeouts=HttpTimeouts(total=10),
    )
    # Case-insensitive, as HTTP header names are.
    return response.status, response.headers, json.loads(response.body)


def chat_url(
    emu: Emulator, deployment: str = "gpt-4o", query: str = "?api-version=2024-10-21"
) -> str:
    return f"{emu.azure_endpoint}/openai/deployments/{deployment}/chat/completions{query}"


async def test_api_version_is_required_and_checked(http: HttpClient, emu: Emulator) -> None:
    status, _, body = await post(http, chat_url(emu, query=""))
    assert (status, body) == (404, {"error": {"code": "404", "message": "Resource not found"}})
    status, _, body = await post(http, chat_url(emu, query="?api-version=latest"))
    assert status == 400
    assert body["error"] == {"code": "BadRequest", "message": "API version not supported"}
    status, _, _ = await post(http, chat_url(emu, query="?api-version=2025-04-01-preview"))
    assert status == 200


async def test_credentials(http: HttpClient, emu: Emulator) -> None:
    status, headers, body = await post(http, chat_url(emu), headers={})
    assert status == 401
    assert body["error"]["code"] == "401"
    assert "missing subscription key" in body["error"]["message"]
    assert "apim-request-id" in headers and "x-request-id" not in headers
    status, _, body = await post(http, chat_url(emu), headers={"api-key": "wrong"})
    assert status == 401
    assert "invalid subscription key" in body["error"]["message"]
    status, _, body = await post(http, chat_url(emu), headers={"authorization": "Bearer nope"})
    assert status == 401
    assert "Access token is missing, invalid" in body["error"]["message"]
    status, _, _ = await post(http, chat_url(emu), headers={"authorization": f"Bearer {AZURE_KEY}"})
    assert status == 200


async def test_deployments(http: HttpClient, emu: Emulator, routes: AzureRoutes) -> None:
    status, _, body = await post(http, chat_url(emu, "mine"))
    assert status == 404
    assert body["error"]["code"] == "DeploymentNotFound"
    routes.deploy("mine", "gpt-4.1")
    status, headers, body = await post(http, chat_url(emu, "mine"))
    assert status == 200
    assert body["model"] == "gpt-4.1"
    assert headers["x-ms-deployment-name"] == "mine"
    routes.undeploy("gpt-4o")
    status, _, _ = await post(http, chat_url(emu))
    assert status == 404
    routes.reset_deployments()
    assert "mine" not in routes.deployments
    status, _, _ = await post(http, chat_url(emu))
    assert status == 200


async def test_v1_surface_routes_on_the_body_model(http: HttpClient, emu: Emulator) -> None:
    url = f"{emu.azure_endpoint}/openai/v1/chat/completions"
    status, _, body = await post(http, url, {**CHAT_BODY, "model": "gpt-4o-mini"})
    assert status == 200
    assert body["model"] == "gpt-4o-mini"
    status, _, body = await post(http, url, {**CHAT_BODY, "model": "missing"})
    assert (status, body["error"]["code"]) == (404, "DeploymentNotFound")
    status, _, body = await post(http, url)  # no model at all: the backend's 400
    assert status == 400
    assert body["error"]["type"] == "invalid_request_error"
    status, _, _ = await post(http, url + "?api-version=preview", {**CHAT_BODY, "model": "o3"})
    assert status == 200


@pytest.mark.parametrize("operation", ["completions", "audio/speech"])
async def test_unknown_operations_are_not_found(
    http: HttpClient, emu: Emulator, operation: str
) -> None:
    url = f"{emu.azure_endpoint}/openai/deployments/gpt-4o/{operation}?api-version=2024-10-21"
    status, _, body = await post(http, url)
    assert (status, body["error"]["message"]) == (404, "Resource not found")


async def test_headers_are_azures(http: HttpClient, emu: Emulator) -> None:
    _, headers, _ = await post(http, chat_url(emu))
    assert "openai-version" not in headers
    assert headers["x-ms-region"]
    assert len(headers["apim-request-id"]) == 36
    assert len(headers["x-request-id"]) == 36
    assert "x-ratelimit-remaining-requests" in headers
