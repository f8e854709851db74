"""Pure translation between OpenAI's chat API and Gemini's generateContent (no I/O here)."""

# Feature modules register their hooks with aiproxy.translate.request on import.
from aiproxy.translate import thinking, tools  # noqa: E402,F401
from aiproxy.translate import media  # noqa: E402,F401  registers image_url / input_audio / file parts
from aiproxy.translate import structured  # noqa: E402,F401  registers response_format
from aiproxy.translate import logprobs  # noqa: E402,F401  registers logprobs / top_logprobs
