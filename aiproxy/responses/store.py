"""Stored Responses API responses (`store: true`), in the ledger's database (migration 6).

A stored response keeps the whole conversation so far (every input item, earlier turns included,
and this response's output items), so `previous_response_id` continues it with one read, and the
response object as it was sent, for `GET /v1/responses/{id}`. Rows belong to the user the
request was billed to; readers with a key only see their own user's rows. Bounded: rows older
than RESPONSES_STORE_DAYS are dropped, and each user keeps at most RESPONSES_STORE_MAX_PER_USER
(the oldest go first), both enforced whenever a response is saved.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from aiproxy import jsonutil
from aiproxy.billing.ledger_sql import Dialect, utc


class SqlTarget(Protocol):
    """What the store needs from a ledger backend (both have it)."""

    dialect: Dialect

    async def select(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]: ...

    async def execute(self, sql: str, params: list[Any]) -> int: ...


@dataclass(frozen=True, slots=True)
class StoredResponse:
    id: str
    user: str
    created_at: int  # unix seconds, as in the response object
    items: list[dict[str, Any]]
    response: dict[str, Any]


class ResponseStore:
    def __init__(self, db: SqlTarget, *, max_age_days: float, max_per_user: int) -> None:
        self._db = db
        self._max_age = timedelta(days=max_age_days)
        self._max_per_user = max_per_user

    def _p(self, n: int) -> str:
        return self._db.dialect.placeholder(n)

    def _time(self, dt: datetime) -> Any:
        return self._db.dialect.time_param(utc(dt))

    async def save(self, stored: StoredResponse) -> None:
        p = self._p
        created = datetime.now(UTC)  # finer than the response's whole seconds: orders the per-user bound
        await self._db.execute(
            f"INSERT INTO responses (response_id, user_id, created_at, items, response) VALUES "
            f"({p(1)}, {p(2)}, {p(3)}, {p(4)}, {p(5)})",
            [stored.id, stored.user, self._time(created), jsonutil.dumps(stored.items).decode(),
             jsonutil.dumps(stored.response).decode()])
        await self._db.execute(f"DELETE FROM responses WHERE created_at < {p(1)}",
                               [self._time(datetime.now(UTC) - self._max_age)])
        await self._db.execute(
            f"DELETE FROM responses WHERE user_id = {p(1)} AND response_id NOT IN (SELECT response_id FROM responses"
            f" WHERE user_id = {p(2)} ORDER BY created_at DESC, response_id LIMIT {p(3)})",
            [stored.user, stored.user, self._max_per_user])

    def _where(self, response_id: str, owner: str | None) -> tuple[str, list[Any]]:
        p = self._p
        where, params = f"response_id = {p(1)} AND created_at >= {p(2)}", [
            response_id, self._time(datetime.now(UTC) - self._max_age)]
        if owner is not None:
            where += f" AND user_id = {p(3)}"
            params.append(owner)
        return where, params

    async def get(self, response_id: str, owner: str | None) -> StoredResponse | None:
        """The stored response, None when absent, expired or `owner`'s it is not (None: any owner)."""
        where, params = self._where(response_id, owner)
        rows = await self._db.select(f"SELECT user_id, items, response FROM responses WHERE {where}", params)
        if not rows:
            return None
        user, items, response = rows[0]
        body = jsonutil.loads(response)
        return StoredResponse(id=response_id, user=user, created_at=body["created_at"],
                              items=jsonutil.loads(items), response=body)

    async def delete(self, response_id: str, owner: str | None) -> bool:
        where, params = self._where(response_id, owner)
        return await self._db.execute(f"DELETE FROM responses WHERE {where}", params) > 0
