"""Gemini as a provider: client.py (HTTP, SSE reader, retries), request.py and response.py (the
OpenAI <-> Gemini translation, feature modules listed in request.py), provider.py (the seam).

Importing the package has no effect: nothing registers itself anywhere.
"""
