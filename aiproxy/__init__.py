"""aiproxy: an OpenAI-compatible gateway to Google Gemini that meters every token."""

__version__ = "0.1.0"
