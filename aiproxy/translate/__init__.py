"""Pure translation between OpenAI's chat API and Gemini's generateContent (no I/O here)."""
