"""Pure translation between OpenAI's chat API and Gemini's generateContent (no I/O here)."""

# Feature modules register their hooks with aiproxy.translate.request on import.
from aiproxy.translate import thinking, tools  # noqa: E402,F401
