"""OpenAI's Chat Completions and Embeddings (and any server speaking them) behind the provider seam."""

from aiproxy.providers.openai.provider import OpenAIProvider

__all__ = ["OpenAIProvider"]
