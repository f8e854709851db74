"""A Gemini (Generative Language API v1beta) emulator for tests, ``make demo`` and ``make bench``.

It imitates the REST API field for field: generateContent, streamGenerateContent (SSE with
``alt=sse``, else a streamed JSON array), countTokens, embedContent, batchEmbedContents,
models.list/get, Google's error JSON, and is scripted per request with an ``#emu {json}``
directive inside the prompt (see ``directive.py`` and ``reply.py``).

Sources for the wire format (read, not copied):
- API reference: https://ai.google.dev/api/generate-content (GenerateContentResponse, Candidate,
  FinishReason, PromptFeedback.BlockReason, UsageMetadata), https://ai.google.dev/api/caching
  (Content, Part, FunctionCall incl. ``id``), https://ai.google.dev/api/tokens (countTokens),
  https://ai.google.dev/api/embeddings, https://ai.google.dev/api/models (Model),
  https://ai.google.dev/gemini-api/docs/thinking (thinkingBudget ranges; 2.5 Pro cannot disable
  thinking; thinkingLevel only on Gemini 3), https://ai.google.dev/gemini-api/docs/thought-signatures,
  https://ai.google.dev/gemini-api/docs/function-calling ("Gemini 3 always returns a unique id
  with every functionCall"), https://ai.google.dev/gemini-api/docs/tokens (258 tokens per image,
  32 tokens per second of audio), https://ai.google.dev/gemini-api/docs/rate-limits.
- google-genai Python ``google.genai.types`` (field names; tests validate every body with it).
- Real error bodies quoted in public reports: missing thought_signature
  (https://github.com/manthanabc/paws/issues/103), unknown fields with BadRequest
  fieldViolations (https://github.com/googleapis/python-genai/issues/425,
  https://github.com/JetBrains/koog/issues/735), thinking_budget 0 on 2.5 Pro
  (https://github.com/vercel/ai/issues/8027), thinking_level on 2.5
  (https://github.com/QwenLM/qwen-code/pull/9094), "Logprobs is not enabled for models/..."
  (https://github.com/mscraftsman/generative-ai/issues/135), streamed JSON-array errors and
  cumulative per-chunk usage (https://github.com/ankit373/hydra/pull/855,
  https://github.com/Alishahryar1/free-claude-code/issues/542).
"""

from aiproxy.emulator.app import create_emulator_app
from aiproxy.emulator.config import EmulatorConfig
from aiproxy.emulator.directive import directive_text
from aiproxy.emulator.tokens import count_tokens

__all__ = ["EmulatorConfig", "count_tokens", "create_emulator_app", "directive_text"]
