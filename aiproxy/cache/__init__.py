"""The response cache (RESPONSE_CACHE): complete answers kept by a hash of what shaped them,
replayed without calling the upstream, for chat completions, the Responses API (keyed on the chat
request it translates to) and embeddings. key.py builds the key, store.py keeps entries (memory
LRU or Redis, failing open), replay.py turns a stored chat answer back into a ChatStream for the
API's own writer, policy.py decides HIT/MISS/BYPASS and what is stored, hit.py bills hits."""
