"""OpenAI's Responses API, served by translating to and from the internal chat form once."""
