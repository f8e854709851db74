"""Who is calling: the key check in front of every API route, and the billing identity.

With at least one key in the store (revoked ones count, so revoking the last key never opens
the proxy), every API request must present a key: `Authorization: Bearer`, or the `api-key` /
`x-api-key` headers some clients use. The key's user becomes the billing identity; a `user` /
`user_id` in the body is kept only as the end-user label under that key.
"""

from __future__ import annotations

import hmac
from typing import Any

from aiohttp import web

from aiproxy.access.identity import end_user_label
from aiproxy.access.keys import KeyCache, KeyRecord
from aiproxy.billing.record import Metering
from aiproxy.errors import ProxyError

KEY_RECORD: web.RequestKey[Any] = web.RequestKey("access_key")  # request slot: the authenticated KeyRecord
ADMIN_FLAG: web.RequestKey[bool] = web.RequestKey("access_admin", bool)  # request slot: True for admin callers

_API_ROOTS = ("/chat/completions", "/responses", "/models", "/embeddings", "/usage", "/admin")


def needs_auth(path: str) -> bool:
    """API routes need a key; /health, /openapi.json and /metrics stay open."""
    return path.startswith("/v1/") or path == "/v1" or any(path == r or path.startswith(r + "/") for r in _API_ROOTS)


def is_admin_path(path: str) -> bool:
    p = path.removeprefix("/v1")
    return p == "/usage" or p.startswith("/usage/") or p == "/admin" or p.startswith("/admin/")


def presented_key(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization")
    if auth:
        scheme, _, value = auth.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return request.headers.get("api-key") or request.headers.get("x-api-key") or None


def _unauthorized(message: str) -> ProxyError:
    return ProxyError(401, message, type="invalid_request_error", code="invalid_api_key",
                      headers={"WWW-Authenticate": 'Bearer realm="aiproxy"'})


MISSING = ("You didn't provide an API key. Send it in an Authorization header using Bearer auth "
           "(Authorization: Bearer YOUR_KEY).")
INCORRECT = "Incorrect API key provided. Check the key, or ask the operator for a new one."


def is_admin_token(key: str | None, admin_token: str) -> bool:
    """True when `key` is the configured ADMIN_TOKEN (compared in constant time)."""
    if not (key and admin_token):
        return False
    return hmac.compare_digest(key.encode(), admin_token.encode())


def check_admin(request: web.Request, admin_token: str) -> None:
    """The admin check of every admin route (today /v1/usage). Passes when `authenticate` already
    admitted an admin key or ADMIN_TOKEN; otherwise (the proxy runs open, with no keys) the
    ADMIN_TOKEN must be presented like any key (Bearer, `api-key` or `x-api-key`): 401 when it is
    missing or wrong, 403 when no ADMIN_TOKEN is configured (reports are then off)."""
    if request.get(ADMIN_FLAG):
        return
    if not admin_token:
        raise ProxyError(403, "Usage reports are disabled: set ADMIN_TOKEN to enable them.", code="admin_disabled")
    key = presented_key(request)
    if not key:
        raise ProxyError(401, "Missing admin token: send `Authorization: Bearer <ADMIN_TOKEN>`.",
                         code="missing_api_key")
    if not is_admin_token(key, admin_token):
        raise ProxyError(401, "Incorrect admin token provided.", code="invalid_api_key")
    request[ADMIN_FLAG] = True


async def authenticate(request: web.Request, keys: KeyCache, admin_token: str) -> KeyRecord | None:
    """Set the request's identity or raise 401/403; None when the proxy runs open (no keys)."""
    path = request.path
    snap = await keys.current()
    if not snap.any_keys:
        return None
    key = presented_key(request)
    admin_path = is_admin_path(path)
    if admin_path and is_admin_token(key, admin_token):
        request[ADMIN_FLAG] = True  # ADMIN_TOKEN: the bootstrap before any admin key exists
        return None
    if not key:
        raise _unauthorized(MISSING)
    rec = await keys.lookup(key)
    if rec is None:
        raise _unauthorized(INCORRECT)
    if admin_path and not rec.admin:
        raise ProxyError(403, "This key may not use admin routes; use an admin key.", code="admin_key_required")
    request[KEY_RECORD] = rec
    request[ADMIN_FLAG] = rec.admin
    return rec


async def bind_identity(request: web.Request, metering: Metering, _max_out: int | None) -> None:
    """Preflight (runs first): bill the key's user, whatever the body claims. Every endpoint
    built `metering.user` with `identity.billing_user`, so that claim becomes the label."""
    rec: KeyRecord | None = request.get(KEY_RECORD)
    if rec is None:
        return
    metering.end_user = end_user_label(metering.user)
    metering.user = rec.user
    metering.key_id = rec.id
