"""The response cache (RESPONSE_CACHE): complete chat answers kept by a hash of what shaped them,
replayed without calling the upstream. key.py builds the key, store.py keeps entries (memory LRU
or Redis), replay.py writes a hit back as JSON or SSE, policy.py decides HIT/MISS/BYPASS."""
