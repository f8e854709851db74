"""`GET /v1/usage`: totals of requests, tokens and cost from the ledger, for operators.

Guarded by the configured admin token (until per-client keys exist); JSON by default, CSV when
the client sends `Accept: text/csv` (or `?format=csv`, handy in a browser).
"""

from __future__ import annotations

import hmac

from aiohttp import web

from aiproxy import jsonutil
from aiproxy.access.auth import ADMIN_FLAG
from aiproxy.appkeys import LEDGER_KEY, SETTINGS_KEY
from aiproxy.billing.reports import parse_query, report_csv, report_json
from aiproxy.errors import ProxyError


def check_admin(request: web.Request) -> None:
    """401 without a bearer token or with a wrong one; 403 when no admin token is configured
    (reports are then off, whoever asks). Compared in constant time. An admin client key, already
    checked by the access middleware, also passes."""
    if request.get(ADMIN_FLAG):
        return
    expected = request.app[SETTINGS_KEY].admin_secret
    if not expected:
        raise ProxyError(403, "Usage reports are disabled: set ADMIN_TOKEN to enable them.", code="admin_disabled")
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ProxyError(401, "Missing admin token: send `Authorization: Bearer <ADMIN_TOKEN>`.", code="missing_api_key")
    if not hmac.compare_digest(token.strip().encode(), expected.encode()):
        raise ProxyError(401, "Incorrect admin token provided.", code="invalid_api_key")


def wants_csv(request: web.Request) -> bool:
    return request.query.get("format") == "csv" or "text/csv" in request.headers.get("Accept", "")


async def usage_handler(request: web.Request) -> web.StreamResponse:
    try:
        check_admin(request)
        try:
            query = parse_query(request.query)
        except ValueError as exc:
            param = str(exc).split(" ", 1)[0].rstrip(":")
            raise ProxyError(400, str(exc), param=param, code="invalid_value") from None
        rows = await request.app[LEDGER_KEY].report(**query.kwargs())
    except ProxyError as err:
        return err.response()
    if wants_csv(request):
        return web.Response(text=report_csv(rows, query.group_by), content_type="text/csv", charset="utf-8")
    return web.Response(body=jsonutil.dumps(report_json(rows, query)), content_type="application/json")
