"""Anthropic's Messages API behind the provider seam (`anthropic/<id>`)."""
