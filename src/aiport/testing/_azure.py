"""Azure OpenAI wire format: deployments, ``api-version``, keys and Entra ID, content filters.

Routes (everything below ``/openai/``; :attr:`Emulator.azure_endpoint` is the endpoint):

- ``POST /openai/deployments/{deployment}/chat/completions?api-version=V``, likewise
  ``/embeddings`` and ``/images/generations`` (the classic surface);
- ``POST /openai/v1/chat/completions``, ``/openai/v1/embeddings``,
  ``/openai/v1/images/generations`` (the v1 surface: the body's ``model`` names the
  deployment; ``api-version`` may be absent, ``v1``, ``preview`` or ``latest``).

Behaviour (part of the emulator's API, like the rules in :mod:`aiport.testing`):

Auth
    An ``api-key`` header, or ``Authorization: Bearer`` (an Entra ID token; the tokens of
    the emulator's OAuth2 endpoint count). Both are checked against the emulator's
    ``api_keys``. Failures are the gateway's 401 bodies
    (``{"error": {"code": "401", "message": ...}}``), one message per case: no
    credential, a wrong key, a wrong token.
API version
    Required on the classic surface: a missing one is Azure's 404 ``Resource not found``;
    one not shaped ``YYYY-MM-DD[-preview]`` a 400 ``API version not supported``.
Deployments
    :attr:`AzureRoutes.deployments` maps a deployment name to the model behind it. By
    default every model in :data:`DEFAULT_DEPLOYMENTS` is deployed under its own name;
    ``azure_routes(emulator).deploy("prod-chat", "gpt-4o")`` adds one (``undeploy``
    removes it, ``reset_deployments`` restores the defaults). An unknown deployment gets
    the 404 ``DeploymentNotFound`` body.
Answers
    Those of the OpenAI routes (see :mod:`aiport.testing`) for the deployment's model,
    with ``model`` set to that model, plus Azure's content-filter results:
    ``prompt_filter_results`` (one entry, ``prompt_index`` 0) and, per choice,
    ``content_filter_results`` (every category ``safe``/not detected). Streams open with a
    chunk that has no choices, an empty ``id``/``model``, ``created`` 0 and the prompt's
    results; the role chunk and the finish chunk carry empty results, content chunks the
    full set. Images carry both per image. Headers: ``apim-request-id`` and
    ``x-request-id`` (UUIDs), ``x-ms-region``, ``x-ms-deployment-name``, the
    ``x-ratelimit-*`` headers of the OpenAI routes.
Content-filter triggers
    A prompt (any message text; an image prompt) containing ``[azure:filter-prompt]`` is
    refused with Azure's 400: ``code: "content_filter"``, ``innererror.code:
    "ResponsibleAIPolicyViolation"`` and ``innererror.content_filter_result`` with
    ``hate`` filtered at severity ``high`` (images: ``code: "content_policy_violation"``,
    ``inner_error.content_filter_results``). ``[azure:filter-prompt:<category>]`` picks
    the category (``hate``, ``sexual``, ``violence``, ``self_harm``: severity ``high``;
    ``jailbreak``: detected). A chat prompt containing ``[azure:filter-output]`` is
    answered, but the output filter stops it: finish reason ``content_filter``, no
    content and no tool calls (streams: the role chunk, then the finish chunk), and the
    choice's results show ``violence`` filtered at severity ``medium``;
    ``[azure:filter-output:<category>]`` picks the category (the four graded ones, or
    ``protected_material_text``/``protected_material_code``: detected). Unknown category
    names fall back to the default. Embeddings are not filtered.
Faults
    Status faults answer Azure's bodies: 401 as above; 403 ``{"code": "403"}`` firewall
    (key) or ``PermissionDenied`` (bearer); 404 ``DeploymentNotFound``; 408 ``Timeout``;
    429 ``{"code": "429"}`` with ``retry-after`` and ``retry-after-ms`` (the fault's, else
    ``1`` and ``10``); 503 ``ServiceUnavailable``; other 5xx ``InternalServerError``
    except 500 (the backend's ``server_error`` body); other 4xx the backend's
    ``invalid_request_error``. A fault's ``error_type`` replaces the ``code`` (or, for
    backend bodies, the ``type``); its ``message`` the message. Context-length faults and
    in-stream errors are the OpenAI routes'.
"""

from __future__ import annotations

import json
import math
import re
import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import _content as c
from ._faults import Call, Fault, Reply, SSEEvent, StreamEvent, reason_phrase

if TYPE_CHECKING:
    from ._emulator import Emulator, RoutesContext

__all__ = ["DEFAULT_DEPLOYMENTS", "AzureRoutes", "azure_routes"]

#: The ``module:Class`` the emulator loads these routes by (its ``_PROVIDER_ROUTES``).
ROUTES_TARGET = "aiport.testing._azure:AzureRoutes"

#: Models deployed under their own names by default.
DEFAULT_DEPLOYMENTS: tuple[str, ...] = (
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "o1",
    "o3",
    "o3-mini",
    "o4-mini",
    "gpt-5",
    "gpt-5-mini",
    "gpt-5-nano",
    "text-embedding-3-small",
    "text-embedding-3-large",
    "text-embedding-ada-002",
    "dall-e-3",
    "gpt-image-1",
)

_OPERATIONS = "chat/completions|embeddings|images/generations"
_CLASSIC = re.compile(rf"^/openai/deployments/(?P<deployment>[^/]+)/(?P<operation>{_OPERATIONS})$")
_V1 = re.compile(rf"^/openai/v1/(?P<operation>{_OPERATIONS})$")
_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(?:-preview)?$")
_V1_VERSIONS = frozenset({"v1", "preview", "latest"})
_TRIGGER = re.compile(r"\[azure:filter-(?P<stage>prompt|output)(?::(?P<category>[a-z_]+))?\]")

_GRADED = ("hate", "self_harm", "sexual", "violence")
_PROMPT_DETECTED = ("jailbreak",)
_OUTPUT_DETECTED = ("protected_material_code", "protected_material_text")
_DEFAULT_CATEGORY = {"prompt": "hate", "output": "violence"}
_SEVERITY = {"prompt": "high", "output": "medium"}

#: Headers of the OpenAI routes that Azure does not send.
_OPENAI_ONLY = frozenset(
    {
        "x-request-id",
        "openai-version",
        "openai-processing-ms",
        "x-ratelimit-reset-requests",
        "x-ratelimit-reset-tokens",
    }
)

_NO_KEY = (
    "Access denied due to missing subscription key. Make sure to include subscription key "
    "when making requests to an API."
)
_BAD_KEY = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to "
    "provide a valid key for an active subscription and use a correct regional API endpoint "
    "for your resource."
)
_REFUSED_BEARER = (
    "Unauthorized. Access token is missing, invalid, audience is incorrect "
    "(https://cognitiveservices.azure.com), or have expired."
)
_FIREWALL = "Access denied due to Virtual Network/Firewall rules."
_NO_ROLE = "Principal does not have access to API/Operation."
_NO_DEPLOYMENT = (
    "The API deployment for this resource does not exist. If you created the deployment "
    "within the last 5 minutes, please wait a moment and try again."
)
_PROMPT_FILTERED = (
    "The response was filtered due to the prompt triggering Azure OpenAI's content management "
    "policy. Please modify your prompt and retry. To learn more about our content filtering "
    "policies please read our documentation: https://go.microsoft.com/fwlink/?linkid=2198766"
)
_IMAGE_FILTERED = (
    "Your request was rejected as a result of our safety system. Your prompt may contain text "
    "that is not allowed by our safety system."
)
_SERVER_ERROR = (
    "The server had an error processing your request. Sorry about that! You can retry your "
    "request, or contact us through an Azure support request at: "
    "https://go.microsoft.com/fwlink/?linkid=2213926 if you keep seeing this error. (Please "
    "include the request ID {request_id} in your email.)"
)
_UNAVAILABLE = "The service is temporarily unable to process your request. Please try again later."
_RATE_LIMITED = (
    "Requests to the {operation} Operation under Azure OpenAI API version {version} have "
    "exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after "
    "{seconds} second{plural}. Please go here: https://aka.ms/oai/quotaincrease if you would "
    "like to further increase the default rate limit."
)
_OPERATION_NAMES = {
    "chat/completions": "ChatCompletions_Create",
    "embeddings": "Embeddings_Create",
    "images/generations": "ImageGenerations_Create",
}
_DEFAULT_RETRY_AFTER_MS = 10


@dataclass(frozen=True, slots=True)
class _Target:
    """Where a request goes: its operation and, on the classic surface, its deployment."""

    operation: str
    deployment: str | None  # None on the v1 surface: the body's model names it


@dataclass(frozen=True, slots=True)
class _Trigger:
    """A content-filter trigger found in a prompt."""

    stage: str  # "prompt" or "output"
    category: str


def azure_routes(emulator: Emulator) -> AzureRoutes:
    """The Azure routes of ``emulator`` (created on first use), to manage deployments."""
    routes = emulator._provider(ROUTES_TARGET)
    assert isinstance(routes, AzureRoutes)
    return routes


def _filter_results(stage: str, blocked: _Trigger | None = None) -> dict[str, Any]:
    """A ``content_filter_results`` object of ``stage``: all clear but ``blocked``."""
    detected = _PROMPT_DETECTED if stage == "prompt" else _OUTPUT_DETECTED
    results: dict[str, Any] = {}
    for category in sorted((*_GRADED, *detected)):
        hit = blocked is not None and blocked.category == category
        if category in _GRADED:
            severity = _SEVERITY[stage] if hit else "safe"
            results[category] = {"filtered": hit, "severity": severity}
        else:
            results[category] = {"filtered": hit, "detected": hit}
    return results


def _prompt_results(blocked: _Trigger | None = None) -> list[dict[str, Any]]:
    return [{"prompt_index": 0, "content_filter_results": _filter_results("prompt", blocked)}]


def _compact(payload: Any) -> str:
    return json.dumps(payload, separators=(",", ":"))


class AzureRoutes:
    """Answers Azure OpenAI requests, reusing the OpenAI routes for the answers themselves.

    ``deployments`` (deployment name -> model) is shared by every request; change it with
    :meth:`deploy`, :meth:`undeploy` and :meth:`reset_deployments`. ``queries`` records
    the query parameters of each request (``api-version``).
    """

    def __init__(self, context: RoutesContext) -> None:
        self._context = context
        self._lock = threading.Lock()
        self.deployments: dict[str, str] = {name: name for name in DEFAULT_DEPLOYMENTS}
        #: The query parameters of every request these routes handled, in arrival order
        #: (the emulator's ``requests`` record paths only).
        self.queries: list[dict[str, str]] = []

    # ------------------------------------------------------------------ deployments

    def deploy(self, deployment: str, model: str) -> None:
        """Serve ``model`` under the deployment name ``deployment``."""
        with self._lock:
            self.deployments[deployment] = model

    def undeploy(self, deployment: str) -> None:
        """Remove a deployment (requests to it get ``DeploymentNotFound``)."""
        with self._lock:
            self.deployments.pop(deployment, None)

    def reset_deployments(self) -> None:
        """Back to :data:`DEFAULT_DEPLOYMENTS`, each under its own name."""
        with self._lock:
            self.deployments = {name: name for name in DEFAULT_DEPLOYMENTS}

    def _model_of(self, deployment: str) -> str | None:
        with self._lock:
            return self.deployments.get(deployment)

    # ------------------------------------------------------------------ headers and errors

    @staticmethod
    def _request_id(call: Call, salt: str) -> str:
        return str(uuid.UUID(bytes=c.digest(call.raw, str(call.seq), salt)[:16]))

    def _headers(
        self,
        call: Call,
        base: Mapping[str, str] | None = None,
        deployment: str | None = None,
        *,
        backend: bool = True,
    ) -> dict[str, str]:
        """Azure's headers, over ``base`` (the OpenAI routes' headers) without OpenAI's own.

        Answers of the gateway itself (``backend=False``: auth, unknown deployments) carry
        only the gateway's ``apim-request-id``; the backend adds ``x-request-id``.
        """
        headers = {k: v for k, v in (base or {}).items() if k.lower() not in _OPENAI_ONLY}
        headers["apim-request-id"] = self._request_id(call, "apim")
        if backend:
            headers["x-request-id"] = self._request_id(call, "azure")
        headers["x-ms-region"] = "East US 2"
        headers["x-content-type-options"] = "nosniff"
        if deployment is not None:
            headers["x-ms-deployment-name"] = deployment
        return headers

    def _error(
        self,
        call: Call,
        status: int,
        code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """The ``{"error": {"code", "message"}}`` body of Azure's gateway and service."""
        payload = {"error": {"code": code, "message": message}}
        return Reply.json(
            status, payload, {**self._headers(call, backend=False), **(headers or {})}
        )

    def _backend_error(
        self, call: Call, status: int, message: str, type_: str, code: str | None = None
    ) -> Reply:
        """The OpenAI-shaped body of errors from the model backend."""
        payload = {"error": {"message": message, "type": type_, "param": None, "code": code}}
        return Reply.json(status, payload, self._headers(call))

    @staticmethod
    def _credential(call: Call) -> tuple[str, str]:
        """``(kind, value)``: ``("key", k)``, ``("bearer", token)`` or ``("none", "")``."""
        key = call.headers.get("api-key", "").strip()
        if key:
            return "key", key
        scheme, _, token = call.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return "bearer", token.strip()
        return "none", ""

    def _auth_error(self, call: Call) -> Reply | None:
        kind, value = self._credential(call)
        if kind == "none":
            return self._error(call, 401, "401", _NO_KEY)
        keys = self._context.api_keys
        if keys is not None and value not in keys:
            return self._error(call, 401, "401", _REFUSED_BEARER if kind == "bearer" else _BAD_KEY)
        return None

    def status_error(self, call: Call, fault: Fault) -> Reply:
        """Azure's error body and headers for ``fault.code``, with the fault's overrides."""
        status = fault.code or 500
        kind, _ = self._credential(call)
        headers: dict[str, str] = {}
        if fault.retry_after is not None:
            headers["retry-after"] = fault.retry_after
        if fault.retry_after_ms is not None:
            headers["retry-after-ms"] = str(fault.retry_after_ms)
        if status == 500 or (400 <= status < 500 and status not in (401, 403, 404, 408, 429)):
            type_ = "server_error" if status == 500 else "invalid_request_error"
            default = (
                _SERVER_ERROR.format(request_id=self._request_id(call, "azure"))
                if status == 500
                else f"{reason_phrase(status)}."
            )
            reply = self._backend_error(
                call, status, fault.message or default, fault.error_type or type_
            )
            reply.headers.update(headers)
            return reply
        code, message = str(status), reason_phrase(status)
        if status == 401:
            message = _REFUSED_BEARER if kind == "bearer" else _BAD_KEY
        elif status == 403:
            code, message = (
                ("PermissionDenied", _NO_ROLE) if kind == "bearer" else (code, _FIREWALL)
            )
        elif status == 404:
            code, message = "DeploymentNotFound", _NO_DEPLOYMENT
        elif status == 408:
            code, message = "Timeout", "The operation was timeout."
        elif status == 429:
            if not headers:
                headers = {
                    "retry-after": str(math.ceil(_DEFAULT_RETRY_AFTER_MS / 1000)),
                    "retry-after-ms": str(_DEFAULT_RETRY_AFTER_MS),
                }
            millis = int(headers.get("retry-after-ms") or _DEFAULT_RETRY_AFTER_MS)
            seconds = headers.get("retry-after") or str(max(1, math.ceil(millis / 1000)))
            target = self._target(call.path)
            message = _RATE_LIMITED.format(
                operation=_OPERATION_NAMES.get(target.operation if target else "", "Unknown"),
                version=call.query.get("api-version") or "v1",
                seconds=seconds,
                plural="" if seconds == "1" else "s",
            )
            headers.update(
                {"x-ratelimit-remaining-requests": "0", "x-ratelimit-remaining-tokens": "0"}
            )
        elif status == 503:
            code, message = "ServiceUnavailable", _UNAVAILABLE
        elif status >= 500:
            code, message = "InternalServerError", _UNAVAILABLE
        return self._error(
            call, status, fault.error_type or code, fault.message or message, headers=headers
        )

    def context_length_error(self, call: Call) -> Reply:
        """The OpenAI routes' context-length 400, for the deployment's model."""
        target = self._target(call.path)
        body = call.body if isinstance(call.body, dict) else {}
        translated = call
        if target is not None:
            deployment = target.deployment or str(body.get("model") or "")
            model = self._model_of(deployment) or deployment
            translated = self._openai_call(call, target.operation, body, model)
        reply = self._context.openai.context_length_error(translated)
        return Reply(reply.status, self._headers(call, reply.headers), reply.body)

    def stream_error_event(self, fault: Fault) -> StreamEvent:
        """The in-stream error event (the OpenAI routes')."""
        return self._context.openai.stream_error_event(fault)

    def stream_error_status(self, fault: Fault) -> Fault:
        """The status a non-streaming request gets for a ``stream-error`` fault."""
        return self._context.openai.stream_error_status(fault)

    # ------------------------------------------------------------------ routing

    @staticmethod
    def _target(path: str) -> _Target | None:
        classic = _CLASSIC.match(path)
        if classic is not None:
            return _Target(classic["operation"], classic["deployment"])
        v1 = _V1.match(path)
        if v1 is not None:
            return _Target(v1["operation"], None)
        return None

    def _version_error(self, call: Call, target: _Target) -> Reply | None:
        version = call.query.get("api-version")
        if target.deployment is None:
            if version is None or version in _V1_VERSIONS:
                return None
        elif version is None:
            return self._error(call, 404, "404", "Resource not found")
        if version is not None and _VERSION.match(version):
            return None
        return self._error(call, 400, "BadRequest", "API version not supported")

    def handle(self, call: Call) -> Reply:
        with self._lock:
            self.queries.append(dict(call.query))
        target = self._target(call.path)
        if target is None or call.method != "POST":
            return self._error(call, 404, "404", "Resource not found")
        problem = self._auth_error(call) or self._version_error(call, target)
        if problem is not None:
            return problem
        body: dict[str, Any] = call.body if isinstance(call.body, dict) else {}
        deployment = target.deployment or body.get("model")
        model: str | None = None
        if isinstance(deployment, str) and deployment:
            model = self._model_of(deployment)
            if model is None:
                return self._error(call, 404, "DeploymentNotFound", _NO_DEPLOYMENT)
        else:
            deployment = None
        trigger = self._trigger(target.operation, body)
        if trigger is not None and trigger.stage == "prompt":
            return self._prompt_filtered(call, target.operation, trigger)
        # A body that is not JSON, or a v1 request without a model: the OpenAI routes
        # answer those with their own 400s.
        translated = self._openai_call(call, target.operation, call.body, model)
        reply = self._context.openai.handle(translated)
        headers = self._headers(call, reply.headers, deployment)
        if reply.status >= 400:
            return Reply(reply.status, headers, reply.body, reply.events)
        output = trigger if trigger is not None and target.operation == "chat/completions" else None
        if reply.events is not None:
            events = self._stream(reply.events, output)
            return Reply(200, headers, events=events)
        payload = json.loads(reply.body)
        if target.operation == "chat/completions":
            self._filter_chat(payload, output)
        elif target.operation == "images/generations":
            for item in payload.get("data") or []:
                item["content_filter_results"] = _filter_results("output")
                item["prompt_filter_results"] = _filter_results("prompt")
        return Reply.json(200, payload, headers)

    def _openai_call(self, call: Call, operation: str, body: Any, model: str | None) -> Call:
        """The same request as the OpenAI routes want it: their path, a bearer key, and
        the deployment's model in the body (the bytes, which seed ids, are unchanged)."""
        headers = {k: v for k, v in call.headers.items() if k not in ("api-key", "authorization")}
        _, credential = self._credential(call)
        headers["authorization"] = f"Bearer {credential}"
        if isinstance(body, dict) and model is not None:
            body = {**body, "model": model}
        return Call(call.method, f"/v1/{operation}", {}, headers, body, call.raw, call.seq)

    # ------------------------------------------------------------------ content filters

    @staticmethod
    def _prompt_texts(operation: str, body: Mapping[str, Any]) -> Iterable[str]:
        if operation == "images/generations":
            prompt = body.get("prompt")
            return [prompt] if isinstance(prompt, str) else []
        if operation != "chat/completions":
            return []  # embeddings are not filtered
        texts: list[str] = []
        for message in body.get("messages") or []:
            if isinstance(message, dict):
                texts.extend(c.openai_text(message.get("content"))[0])
        return texts

    def _trigger(self, operation: str, body: Mapping[str, Any]) -> _Trigger | None:
        for text in self._prompt_texts(operation, body):
            found = _TRIGGER.search(text)
            if found is None:
                continue
            stage = found["stage"]
            allowed = (*_GRADED, *(_PROMPT_DETECTED if stage == "prompt" else _OUTPUT_DETECTED))
            category = found["category"]
            if category not in allowed:
                category = _DEFAULT_CATEGORY[stage]
            return _Trigger(stage, category)
        return None

    def _prompt_filtered(self, call: Call, operation: str, trigger: _Trigger) -> Reply:
        verdict = _filter_results("prompt", trigger)
        error: dict[str, Any]
        if operation == "images/generations":
            error = {
                "code": "content_policy_violation",
                "inner_error": {
                    "code": "ResponsibleAIPolicyViolation",
                    "content_filter_results": verdict,
                },
                "message": _IMAGE_FILTERED,
                "type": "invalid_request_error",
            }
        else:
            error = {
                "message": _PROMPT_FILTERED,
                "type": None,
                "param": "prompt",
                "code": "content_filter",
                "status": 400,
                "innererror": {
                    "code": "ResponsibleAIPolicyViolation",
                    "content_filter_result": verdict,
                },
            }
        return Reply.json(400, {"error": error}, self._headers(call))

    @staticmethod
    def _filter_chat(payload: dict[str, Any], output: _Trigger | None) -> None:
        payload["prompt_filter_results"] = _prompt_results()
        for choice in payload.get("choices") or []:
            choice["content_filter_results"] = _filter_results("output", output)
            if output is not None:
                message = choice.get("message") or {}
                message["content"] = None
                message.pop("tool_calls", None)
                choice["finish_reason"] = "content_filter"

    @staticmethod
    def _stream(events: Sequence[StreamEvent], output: _Trigger | None) -> list[StreamEvent]:
        """The OpenAI routes' chunks as Azure sends them (see the module's docstring)."""
        head = {"choices": [], "created": 0, "id": "", "model": "", "object": ""}
        out: list[StreamEvent] = [
            SSEEvent(_compact({**head, "prompt_filter_results": _prompt_results()}))
        ]
        for event in events:
            if not isinstance(event, SSEEvent) or event.data == "[DONE]":
                out.append(event)
                continue
            chunk = json.loads(event.data)
            choices = chunk.get("choices") or []
            kept: list[dict[str, Any]] = []
            for choice in choices:
                delta = choice.get("delta") or {}
                finish = choice.get("finish_reason")
                if output is not None:
                    if finish:
                        choice["finish_reason"] = "content_filter"
                        choice["content_filter_results"] = _filter_results("output", output)
                    elif "role" in delta:
                        choice["delta"] = {**delta, "content": ""}
                        choice["content_filter_results"] = {}
                    else:
                        continue  # the filter withheld this piece of the answer
                else:
                    content = delta.get("content")
                    full = isinstance(content, str) and content != "" and "role" not in delta
                    choice["content_filter_results"] = _filter_results("output") if full else {}
                kept.append(choice)
            if choices and not kept:
                continue
            chunk["choices"] = kept
            out.append(SSEEvent(_compact(chunk), event.event))
        return out
