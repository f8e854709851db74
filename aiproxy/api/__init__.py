"""aiohttp handlers: thin edges that parse, call the pure translators, and write."""
