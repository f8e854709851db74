"""Upstream providers behind one seam: base.py (the `Provider` interface), registry.py (which
provider serves a model name, their sessions), one package per provider (gemini/), and what they
share: the model map, model-name rules, retries and fallbacks."""
