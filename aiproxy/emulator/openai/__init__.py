"""An OpenAI API emulator, served by the same emulator app under `/openai/v1/...`.

`OPENAI_BASE_URL=http://127.0.0.1:N/openai/v1` points the proxy (or the official `openai` SDK)
at it. It speaks Chat Completions (buffered, and SSE streamed as OpenAI streams it), Embeddings
and the model list, with Bearer auth and OpenAI's error JSON, scripted per request by the same
`#emu {json}` directive as the Gemini emulator (aiproxy/emulator/directive.py; the keys it reads
are listed in chat.py). Token counts follow the emulator's documented rule (tokens.py).

Wire format sources (read, not copied): the API reference for chat objects and chunks
(https://platform.openai.com/docs/api-reference/chat/streaming: every chunk has the same id and
created; the first delta carries the role; `finish_reason` arrives on the last choice chunk;
with `stream_options.include_usage` every chunk has `usage: null` and one extra chunk before
`data: [DONE]` has `choices: []` and the usage), the `openai` Python SDK's types
(`ChatCompletionChunk`, `CompletionUsage` with `prompt_tokens_details.cached_tokens` and
`completion_tokens_details.reasoning_tokens`, `CreateEmbeddingResponse`, `Model`), and the error
bodies the API sends (`invalid_api_key`, `model_not_found`, `rate_limit_exceeded`).
"""

from __future__ import annotations

from aiproxy.emulator.openai.app import create_openai_app

__all__ = ["create_openai_app"]
