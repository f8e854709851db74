"""Upstream providers and model routing: the model map, model-name rules, retries and fallbacks."""
