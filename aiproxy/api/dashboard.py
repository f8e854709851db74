"""`/dashboard`: the usage dashboard page, its login, and the JSON/CSV endpoints it calls.

Admin only. Credentials are those of `GET /v1/usage` (ADMIN_TOKEN or an admin key), presented as
`Authorization: Bearer` or through the login form, which sets a signed session cookie
(aiproxy/dashboard/session.py). Without credentials the page is a login form that holds no data;
the data endpoints answer 401 (no or bad credentials) or 403 (a non-admin key) as OpenAI-style
JSON. Login and logout are POSTs; the cookie is SameSite=Strict (another site's form cannot
send it), and a POST whose Origin is another host is refused, so neither can be forged
cross-site. Every dashboard response carries a Content-Security-Policy limiting everything to
'self': the page loads nothing from another origin and runs no inline script.

Not wired through aiohttp_cors on purpose: the dashboard is same-origin only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from html import escape
from importlib import resources
from typing import Any, cast
from urllib.parse import urlsplit

from aiohttp import web

from aiproxy import jsonutil
from aiproxy.access.auth import is_admin_token
from aiproxy.appkeys import ACCESS_KEY, LEDGER_KEY, SETTINGS_KEY, STATE_KEY
from aiproxy.billing.dashboard_queries import LATEST_COLUMNS, UsageFilter
from aiproxy.dashboard import figures
from aiproxy.dashboard.figures import DashboardSource
from aiproxy.dashboard.ranges import parse_filter
from aiproxy.dashboard.session import COOKIE, SessionSigner, derive_key
from aiproxy.errors import ProxyError

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
STATIC = {"dashboard.js": "text/javascript", "dashboard.css": "text/css", "icon.svg": "image/svg+xml"}
ADMIN_TOKEN_SUBJECT = "admin-token"
_SIGNER = "dashboard_sessions"  # slot in app[STATE_KEY]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _static(name: str) -> bytes:
    return resources.files("aiproxy.dashboard").joinpath("static", name).read_bytes()


def _signer(app: web.Application) -> SessionSigner:
    state = app[STATE_KEY]
    if _SIGNER not in state:
        settings = app[SETTINGS_KEY]
        secret = settings.dashboard_session_secret
        key = derive_key(secret.get_secret_value() if secret else "", settings.admin_secret)
        state[_SIGNER] = SessionSigner(key, settings.dashboard_session_ttl)
    signer: SessionSigner = state[_SIGNER]
    return signer


def _csp(resp: web.StreamResponse) -> web.StreamResponse:
    resp.headers["Content-Security-Policy"] = CSP
    return resp


def _bearer(request: web.Request) -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").strip().partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


def _unauthorized(message: str, code: str) -> ProxyError:
    return ProxyError(401, message, code=code, headers={"WWW-Authenticate": 'Bearer realm="aiproxy"'})


async def admin_subject(app: web.Application, secret: str) -> str:
    """The session subject for an admin credential; 401 for an unknown one, 403 for a client key
    without admin rights or when no admin credential exists at all."""
    admin_token = app[SETTINGS_KEY].admin_secret
    if is_admin_token(secret, admin_token):  # the one ADMIN_TOKEN comparison (constant time)
        return ADMIN_TOKEN_SUBJECT
    access = app.get(ACCESS_KEY)
    rec = await access.keys.lookup(secret) if access is not None else None
    if rec is not None:
        if not rec.admin:
            raise ProxyError(403, "This key may not use the dashboard; use an admin key.", code="admin_key_required")
        return f"key:{rec.id}"
    if not admin_token and not (access and any(r.admin for r in (await access.keys.current()).by_id.values())):
        raise ProxyError(403, "The dashboard is disabled: set ADMIN_TOKEN or create an admin key.",
                         code="admin_disabled")
    raise _unauthorized("Incorrect admin token or key provided.", "invalid_api_key")


async def _subject_still_valid(app: web.Application, subject: str) -> bool:
    """A session lives only as long as its credential: ADMIN_TOKEN still set, the key still an
    enabled admin key (revocation is seen within KEY_CACHE_TTL)."""
    if subject == ADMIN_TOKEN_SUBJECT:
        return bool(app[SETTINGS_KEY].admin_secret)
    access = app.get(ACCESS_KEY)
    if not subject.startswith("key:") or access is None:
        return False
    rec = (await access.keys.current()).by_id.get(subject.removeprefix("key:"))
    return rec is not None and rec.enabled and rec.admin


async def authorize(request: web.Request) -> str:
    """The caller's admin subject (bearer first, then the session cookie); raises 401/403."""
    secret = _bearer(request)
    if secret is not None:
        return await admin_subject(request.app, secret)
    session = _signer(request.app).verify(request.cookies.get(COOKIE))
    if session is not None and await _subject_still_valid(request.app, session.subject):
        return session.subject
    raise _unauthorized("Log in at /dashboard, or send `Authorization: Bearer <ADMIN_TOKEN or admin key>`.",
                        "missing_api_key")


# -- pages -----------------------------------------------------------------------------------------

def _html(body: str, status: int = 200) -> web.StreamResponse:
    return _csp(web.Response(text=body, status=status, content_type="text/html", charset="utf-8"))


def login_page(message: str = "", status: int = 200) -> web.StreamResponse:
    note = f'<p class="error" role="alert">{escape(message)}</p>' if message else ""
    return _html(_static("login.html").decode().replace("<!--message-->", note), status)


async def dashboard_page(request: web.Request) -> web.StreamResponse:
    if _bearer(request) is not None:
        try:
            await authorize(request)
        except ProxyError as err:
            return _csp(err.response())
        return _html(_static("dashboard.html").decode())
    try:
        await authorize(request)
    except ProxyError:
        return login_page()
    return _html(_static("dashboard.html").decode())


def _see_dashboard() -> web.Response:
    return web.Response(status=303, headers={"Location": "/dashboard"})


def _cross_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    return origin is not None and origin != "null" and urlsplit(origin).netloc != request.host


def _is_https(request: web.Request) -> bool:
    return request.secure or request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip() == "https"


async def login(request: web.Request) -> web.StreamResponse:
    if _cross_origin(request):
        return login_page("Login refused: the form was sent from another site.", 403)
    form = await request.post()
    password = str(form.get("password", "")).strip()
    if not password:
        return login_page("Enter ADMIN_TOKEN or an admin key.", 401)
    try:
        subject = await admin_subject(request.app, password)
    except ProxyError as err:
        return login_page(err.message, err.status)
    signer = _signer(request.app)
    token, _ = signer.issue(subject)
    resp = _see_dashboard()
    resp.set_cookie(COOKIE, token, max_age=int(signer.ttl), path="/dashboard", httponly=True, samesite="Strict",
                    secure=_is_https(request))
    return _csp(resp)


async def logout(request: web.Request) -> web.StreamResponse:
    if _cross_origin(request):
        return login_page("Logout refused: the form was sent from another site.", 403)
    signer = _signer(request.app)
    session = signer.verify(request.cookies.get(COOKIE))
    if session is not None:
        signer.end(session)
    resp = _see_dashboard()
    resp.del_cookie(COOKIE, path="/dashboard")
    return _csp(resp)


async def static_file(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name not in STATIC:
        return _csp(ProxyError(404, "Not found.", code="not_found").response())
    resp = web.Response(body=_static(name), content_type=STATIC[name])
    resp.headers["Cache-Control"] = "no-cache"
    return _csp(resp)


# -- data ----------------------------------------------------------------------------------------

def data_endpoint(produce: Callable[[web.Request, DashboardSource, UsageFilter, dict[str, Any]],
                                    Awaitable[web.StreamResponse]]) -> Handler:
    """Authorize, parse the range, then answer; every failure is OpenAI-style JSON."""

    async def handler(request: web.Request) -> web.StreamResponse:
        try:
            await authorize(request)
            try:
                name, flt = parse_filter(request.query, datetime.now(UTC))
            except ValueError as exc:
                raise ProxyError(400, str(exc), param=str(exc).split(":", 1)[0], code="invalid_value") from None
            head = {"range": name, "since": flt.since.isoformat(), "until": flt.until.isoformat(),
                    "filters": {"user": flt.user, "model": flt.model}, "currency": "USD"}
            source = cast(DashboardSource, request.app[LEDGER_KEY])  # both backends have dialect + select
            return _csp(await produce(request, source, flt, head))
        except ProxyError as err:
            return _csp(err.response())

    return handler


def _json(body: dict[str, Any]) -> web.Response:
    return web.Response(body=jsonutil.dumps(body), content_type="application/json")


async def _summary(request: web.Request, src: DashboardSource, flt: UsageFilter, head: dict[str, Any]) -> web.Response:
    totals = await figures.totals(src, flt, request.app[SETTINGS_KEY].response_cache)
    return _json({"object": "dashboard.summary", **head, "totals": figures.money(totals),
                  "latency": await figures.latency(src, flt)})


async def _timeseries(request: web.Request, src: DashboardSource, flt: UsageFilter,
                      head: dict[str, Any]) -> web.Response:
    bucket, rows = await figures.timeseries(src, flt)
    return _json({"object": "dashboard.timeseries", **head, "bucket": bucket, "data": [figures.money(r) for r in rows]})


async def _breakdown(request: web.Request, src: DashboardSource, flt: UsageFilter,
                     head: dict[str, Any]) -> web.Response:
    by = request.query.get("by", "user")
    if by not in figures.BREAKDOWNS:
        raise ProxyError(400, f"by must be one of: {', '.join(figures.BREAKDOWNS)}", param="by", code="invalid_value")
    rows, truncated = await figures.breakdown(src, flt, by)
    return _json({"object": "dashboard.breakdown", **head, "by": by, "data": [figures.money(r) for r in rows],
                  "truncated": truncated})


async def _latest(request: web.Request, src: DashboardSource, flt: UsageFilter, head: dict[str, Any]) -> web.Response:
    rows = await figures.latest(src, flt)
    return _json({"object": "dashboard.latest", **head, "data": [figures.money(r) for r in rows]})


async def _export(request: web.Request, src: DashboardSource, flt: UsageFilter, head: dict[str, Any]) -> web.Response:
    """CSV of what the page shows: `section=figures` (default: totals, time series, breakdowns,
    one row each) or `section=latest` (the latest requests)."""
    section = request.query.get("section", "figures")
    if section == "latest":
        rows = await figures.latest(src, flt)
        text = figures.csv_text(LATEST_COLUMNS, ([r[c] for c in LATEST_COLUMNS] for r in rows))
    elif section == "figures":
        total = await figures.totals(src, flt, request.app[SETTINGS_KEY].response_cache)
        bucket, series = await figures.timeseries(src, flt)
        lines = figures.aggregate_csv_rows("total", [{"key": "", **total}], "key")
        lines += figures.aggregate_csv_rows(bucket, series, "bucket")
        for by in figures.BREAKDOWNS:
            lines += figures.aggregate_csv_rows(by, (await figures.breakdown(src, flt, by))[0], by)
        text = figures.csv_text(figures.CSV_AGGREGATE_COLUMNS, lines)
    else:
        raise ProxyError(400, "section must be one of: figures, latest", param="section", code="invalid_value")
    resp = web.Response(text=text, content_type="text/csv", charset="utf-8")
    since, until = flt.since.date().isoformat(), flt.until.date().isoformat()
    resp.headers["Content-Disposition"] = f'attachment; filename="aiproxy-usage-{section}-{since}-{until}.csv"'
    return resp


def dashboard_routes() -> list[tuple[str, str, Handler]]:
    """The dashboard's (method, path, handler) table, for app.py's route list."""
    return [
        ("GET", "/dashboard", dashboard_page),
        ("POST", "/dashboard/login", login),
        ("POST", "/dashboard/logout", logout),
        ("GET", "/dashboard/static/{name}", static_file),
        ("GET", "/dashboard/api/summary", data_endpoint(_summary)),
        ("GET", "/dashboard/api/timeseries", data_endpoint(_timeseries)),
        ("GET", "/dashboard/api/breakdown", data_endpoint(_breakdown)),
        ("GET", "/dashboard/api/latest", data_endpoint(_latest)),
        ("GET", "/dashboard/api/export.csv", data_endpoint(_export)),
    ]

