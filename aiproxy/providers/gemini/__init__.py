"""Pure translation between OpenAI's chat API and Gemini's generateContent (no I/O here)."""

# Feature modules register their hooks with aiproxy.providers.gemini.request on import.
from aiproxy.providers.gemini import thinking
from aiproxy.providers.gemini import tools  # noqa: E402,F401
from aiproxy.providers.gemini import media  # noqa: E402,F401  registers image_url / input_audio / file parts
from aiproxy.providers.gemini import structured  # noqa: E402,F401  registers response_format
from aiproxy.providers.gemini import logprobs  # noqa: E402,F401  registers logprobs / top_logprobs
