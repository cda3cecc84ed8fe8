"""The Cohere adapter (v2 API): chat, embeddings, and reranking as a provider extra
(``CohereProvider.rerank``, returning ``RerankResponse``)."""

from aiport.providers.cohere._provider import CohereProvider
from aiport.providers.cohere._rerank import RerankResponse, RerankResult

__all__ = ["CohereProvider", "RerankResponse", "RerankResult"]
