"""AWS Bedrock: Converse, ConverseStream and InvokeModel embeddings (``aiport[bedrock]``)."""

from aiport.providers.bedrock._provider import BedrockProvider

__all__ = ["BedrockProvider"]
