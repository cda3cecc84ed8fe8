"""aiport: one typed, fast, sturdy interface to every AI model provider.

>>> import aiport
>>> async with aiport.ProviderService() as service:  # doctest: +SKIP
...     reply = await service.complete(model="openai:gpt-4o", messages="Hello")
...     print(reply.text)

Names are imported on first use, so ``import aiport`` stays cheap: the HTTP client,
pydantic models and adapters load when a program first needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> private module that defines it
_EXPORTS: dict[str, str] = {
    # service and interfaces
    "ProviderService": "aiport._service",
    "ResolvedModel": "aiport._routing",
    "CompletionStream": "aiport._stream",
    "BatchJob": "aiport._batch",
    "BatchItemResult": "aiport._batch",
    "BatchStatus": "aiport._batch",
    "BatchCounts": "aiport._batch",
    "CacheControl": "aiport._context",
    "ModelProvider": "aiport._provider",
    "ProviderLayer": "aiport._provider",
    "LayerFactory": "aiport._provider",
    "wrap": "aiport._provider",
    "ProviderRegistry": "aiport._registry",
    "ProviderType": "aiport._registry",
    "ProviderContext": "aiport._registry",
    # configuration
    "AgentConfig": "aiport._config",
    "ProviderConfig": "aiport._config",
    "ProviderModelConfig": "aiport._config",
    "TimeoutConfig": "aiport._config",
    "RetryConfig": "aiport._config",
    "RateLimitConfig": "aiport._config",
    "CacheConfig": "aiport._config",
    "load_config": "aiport._config",
    "SecretResolver": "aiport._secrets",
    "SecretSource": "aiport._secrets",
    "TokenProvider": "aiport._tokens",
    "AccessToken": "aiport._tokens",
    "CredentialSource": "aiport._credentials",
    "StaticCredential": "aiport._credentials",
    # unified shapes
    "Attempt": "aiport._types",
    "RestartEvent": "aiport._types",
    "Message": "aiport._types",
    "TextPart": "aiport._types",
    "ImagePart": "aiport._types",
    "ToolCall": "aiport._types",
    "ToolResultPart": "aiport._types",
    "Tool": "aiport._types",
    "NamedToolChoice": "aiport._types",
    "JsonSchemaFormat": "aiport._types",
    "Usage": "aiport._types",
    "FinishReason": "aiport._types",
    "ModelCompletionOptions": "aiport._types",
    "ModelCompletionResponse": "aiport._types",
    "ModelEmbeddingOptions": "aiport._types",
    "ModelEmbeddingResponse": "aiport._types",
    "ImageGenerationOptions": "aiport._types",
    "ImageGenerationResponse": "aiport._types",
    "GeneratedImage": "aiport._types",
    "ProviderModel": "aiport._types",
    "ModelCapabilities": "aiport._types",
    "StreamEvent": "aiport._types",
    "TextDeltaEvent": "aiport._types",
    "ReasoningDeltaEvent": "aiport._types",
    "ToolCallDeltaEvent": "aiport._types",
    "ToolCallEvent": "aiport._types",
    "UsageEvent": "aiport._types",
    "StreamFinishEvent": "aiport._types",
    # hooks
    "Hooks": "aiport.layers._hooks",
    "RequestEvent": "aiport.layers._hooks",
    "ResponseEvent": "aiport.layers._hooks",
    "ErrorEvent": "aiport.layers._hooks",
    "AttemptEvent": "aiport.layers._hooks",
    "KeyEvent": "aiport.layers._hooks",
    # errors
    "AiportError": "aiport._errors",
    "ErrorCode": "aiport._errors",
    "ConfigError": "aiport._errors",
    "ConfigProblem": "aiport._errors",
    "ProviderError": "aiport._errors",
    "ProviderNotFoundError": "aiport._errors",
    "ProviderAuthError": "aiport._errors",
    "ProviderRateLimitError": "aiport._errors",
    "ProviderAPIError": "aiport._errors",
    "InvalidRequestError": "aiport._errors",
    "ContextLengthExceededError": "aiport._errors",
    "ContextWindowExceededError": "aiport._errors",
    "ContentFilterError": "aiport._errors",
    "ProviderTimeoutError": "aiport._errors",
    "ProviderConnectionError": "aiport._errors",
    "MalformedResponseError": "aiport._errors",
    "StreamInterruptedError": "aiport._errors",
    "ProviderCapabilityError": "aiport._errors",
    "CapabilityNotSupportedError": "aiport._errors",
}

__all__ = [
    "AccessToken",
    "AgentConfig",
    "AiportError",
    "Attempt",
    "AttemptEvent",
    "BatchCounts",
    "BatchItemResult",
    "BatchJob",
    "BatchStatus",
    "CacheConfig",
    "CacheControl",
    "CapabilityNotSupportedError",
    "CompletionStream",
    "ConfigError",
    "ConfigProblem",
    "ContentFilterError",
    "ContextLengthExceededError",
    "ContextWindowExceededError",
    "CredentialSource",
    "ErrorCode",
    "ErrorEvent",
    "FinishReason",
    "GeneratedImage",
    "Hooks",
    "ImageGenerationOptions",
    "ImageGenerationResponse",
    "ImagePart",
    "InvalidRequestError",
    "JsonSchemaFormat",
    "KeyEvent",
    "LayerFactory",
    "MalformedResponseError",
    "Message",
    "ModelCapabilities",
    "ModelCompletionOptions",
    "ModelCompletionResponse",
    "ModelEmbeddingOptions",
    "ModelEmbeddingResponse",
    "ModelProvider",
    "NamedToolChoice",
    "ProviderAPIError",
    "ProviderAuthError",
    "ProviderCapabilityError",
    "ProviderConfig",
    "ProviderConnectionError",
    "ProviderContext",
    "ProviderError",
    "ProviderLayer",
    "ProviderModel",
    "ProviderModelConfig",
    "ProviderNotFoundError",
    "ProviderRateLimitError",
    "ProviderRegistry",
    "ProviderService",
    "ProviderTimeoutError",
    "ProviderType",
    "RateLimitConfig",
    "ReasoningDeltaEvent",
    "RequestEvent",
    "ResolvedModel",
    "ResponseEvent",
    "RestartEvent",
    "RetryConfig",
    "SecretResolver",
    "SecretSource",
    "StaticCredential",
    "StreamEvent",
    "StreamFinishEvent",
    "StreamInterruptedError",
    "TextDeltaEvent",
    "TextPart",
    "TimeoutConfig",
    "TokenProvider",
    "Tool",
    "ToolCall",
    "ToolCallDeltaEvent",
    "ToolCallEvent",
    "ToolResultPart",
    "Usage",
    "UsageEvent",
    "__version__",
    "load_config",
    "wrap",
]


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'aiport' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:
    from aiport._batch import BatchCounts, BatchItemResult, BatchJob, BatchStatus
    from aiport._config import (
        AgentConfig,
        CacheConfig,
        ProviderConfig,
        ProviderModelConfig,
        RateLimitConfig,
        RetryConfig,
        TimeoutConfig,
        load_config,
    )
    from aiport._context import CacheControl
    from aiport._credentials import CredentialSource, StaticCredential
    from aiport._errors import (
        AiportError,
        CapabilityNotSupportedError,
        ConfigError,
        ConfigProblem,
        ContentFilterError,
        ContextLengthExceededError,
        ContextWindowExceededError,
        ErrorCode,
        InvalidRequestError,
        MalformedResponseError,
        ProviderAPIError,
        ProviderAuthError,
        ProviderCapabilityError,
        ProviderConnectionError,
        ProviderError,
        ProviderNotFoundError,
        ProviderRateLimitError,
        ProviderTimeoutError,
        StreamInterruptedError,
    )
    from aiport._provider import LayerFactory, ModelProvider, ProviderLayer, wrap
    from aiport._registry import ProviderContext, ProviderRegistry, ProviderType
    from aiport._routing import ResolvedModel
    from aiport._secrets import SecretResolver, SecretSource
    from aiport._service import ProviderService
    from aiport._stream import CompletionStream
    from aiport._tokens import AccessToken, TokenProvider
    from aiport._types import (
        Attempt,
        FinishReason,
        GeneratedImage,
        ImageGenerationOptions,
        ImageGenerationResponse,
        ImagePart,
        JsonSchemaFormat,
        Message,
        ModelCapabilities,
        ModelCompletionOptions,
        ModelCompletionResponse,
        ModelEmbeddingOptions,
        ModelEmbeddingResponse,
        NamedToolChoice,
        ProviderModel,
        ReasoningDeltaEvent,
        RestartEvent,
        StreamEvent,
        StreamFinishEvent,
        TextDeltaEvent,
        TextPart,
        Tool,
        ToolCall,
        ToolCallDeltaEvent,
        ToolCallEvent,
        ToolResultPart,
        Usage,
        UsageEvent,
    )
    from aiport.layers._hooks import (
        AttemptEvent,
        ErrorEvent,
        Hooks,
        KeyEvent,
        RequestEvent,
        ResponseEvent,
    )
