"""The Azure OpenAI adapter (Chat Completions, embeddings, images on Azure deployments).

Provider type ``azure`` (one name only: the registry has no aliases, and a second row
would list the same adapter twice). Configuration::

    [providers.azure]
    type = "azure"
    base_url = "https://NAME.openai.azure.com"   # required
    api_key = "env:AZURE_OPENAI_API_KEY"          # the default when neither key nor auth is set
    api_version = "2024-10-21"                    # default; "v1" for the v1 surface

    [providers.azure.models."gpt-4o"]
    deployment = "prod-gpt4o-eu"                  # default: a deployment named like the model

- Deployments: a model id is sent to the deployment named like it unless its table sets
  ``deployment``; the model id keeps choosing catalogue prices and limits
  (``_catalogue/azure.toml``, Global Standard list prices).
- Surfaces: the classic one,
  ``{endpoint}/openai/deployments/{deployment}/{operation}?api-version=...``, or with
  ``api_version = "v1"`` (or a ``base_url`` ending in ``/openai/v1``) the v1 one,
  ``{endpoint}/openai/v1/{operation}`` with the deployment as the body's ``model``.
  Before ``2024-12-01-preview``, ``developer`` messages are sent as ``system``; before
  ``2024-03-01-preview`` embeddings are asked for as floats instead of base64.
- Auth: an API key goes in the ``api-key`` header (never the URL); an ``auth`` table of
  type ``azure`` gets Microsoft Entra ID tokens (``azure-identity``), sent as
  ``Authorization: Bearer`` and refreshed once on a 401.
- Content filtering: a refused prompt is a ``ContentFilterError`` naming the blocked
  categories (``[filtered: hate=high]``; the full verdict is in ``error.body``); output
  stopped by the filter has finish reason ``content_filter``. ``raw`` keeps
  ``prompt_filter_results`` and each choice's ``content_filter_results`` (streams too);
  ``_convert.filtered_categories`` reads them.
- Not offered: Azure's Batch API and the Assistants/Responses APIs.
"""

from aiport.providers.azure._provider import AzureOpenAIProvider

__all__ = ["AzureOpenAIProvider"]
