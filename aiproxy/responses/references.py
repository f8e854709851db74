"""`item_reference` input items -> the stored output items they name.

Clients that keep `store: true` (the Vercel AI SDK's OpenAI provider by default) send earlier
output items back as `{"type": "item_reference", "id": "msg_…"}` instead of their content. An
output item's id names its response (aiproxy/responses/output.py `output_item_id`), so each is
resolved with one read of that stored response, scoped to the caller's user like
`previous_response_id`; an id that is unknown, expired or someone else's is a 400.
"""

from __future__ import annotations

from typing import Any

from aiproxy.errors import bad_request
from aiproxy.responses.store import ResponseStore, StoredResponse


def _response_id(item_id: str) -> str | None:
    """The response an output item id names (`msg_<hex>_<index>` -> `resp_<hex>`), None if none."""
    _, _, rest = item_id.partition("_")
    hex_part, _, index = rest.rpartition("_")
    return f"resp_{hex_part}" if hex_part and index.isdigit() else None


async def resolve_references(items: list[dict[str, Any]], store: ResponseStore,
                             owner: str | None) -> list[dict[str, Any]]:
    """`items` with every `item_reference` replaced by the stored output item it names."""
    if not any(isinstance(item, dict) and item.get("type") == "item_reference" for item in items):
        return items
    loaded: dict[str, StoredResponse | None] = {}
    resolved: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        if not (isinstance(item, dict) and item.get("type") == "item_reference"):
            resolved.append(item)
            continue
        item_id = item.get("id")
        response_id = _response_id(item_id) if isinstance(item_id, str) else None
        if response_id is not None and response_id not in loaded:
            loaded[response_id] = await store.get(response_id, owner)
        stored = loaded.get(response_id) if response_id is not None else None
        found = [out for out in (stored.response.get("output") or ()) if out.get("id") == item_id] if stored else []
        if not found:
            raise bad_request(f"Item with id '{item_id}' not found.", param=f"input[{i}].id")
        resolved.append(found[0])
    return resolved
