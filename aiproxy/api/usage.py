"""`GET /v1/usage`: totals of requests, tokens and cost from the ledger, for operators.

Admin only (access.auth.check_admin: an admin key or ADMIN_TOKEN); JSON by default, CSV when
the client sends `Accept: text/csv` (or `?format=csv`, handy in a browser).
"""

from __future__ import annotations

from aiohttp import web

from aiproxy import jsonutil
from aiproxy.access.auth import check_admin
from aiproxy.appkeys import LEDGER_KEY, SETTINGS_KEY
from aiproxy.billing.reports import parse_query, report_csv, report_json
from aiproxy.errors import ProxyError


def wants_csv(request: web.Request) -> bool:
    return request.query.get("format") == "csv" or "text/csv" in request.headers.get("Accept", "")


async def usage_handler(request: web.Request) -> web.StreamResponse:
    try:
        check_admin(request, request.app[SETTINGS_KEY].admin_secret)
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
