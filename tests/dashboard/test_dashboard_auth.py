"""Who may see the dashboard: admin credentials by bearer or login cookie; nothing before that."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from aiproxy.appkeys import ACCESS_KEY
from aiproxy.dashboard.session import COOKIE, SessionSigner, derive_key
from tests.access.conftest import add_key, bearer
from tests.dashboard.seed import ADMIN, seeded_records, start_seeded_proxy

DATA_PATHS = ["/dashboard/api/summary", "/dashboard/api/timeseries", "/dashboard/api/breakdown?by=user",
              "/dashboard/api/latest", "/dashboard/api/export.csv", "/dashboard/api/export.csv?section=latest"]
SECRETS_OF_THE_LEDGER = ["alice", "bob", "carol", "dave", "req-dash-", "0.0000155", "gemini-2.5"]


@pytest.fixture
async def proxy() -> AsyncIterator[TestServer]:
    server = await start_seeded_proxy("memory://")
    yield server
    await server.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    # A jar that keeps cookies for 127.0.0.1 (aiohttp's default jar ignores IP hosts).
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


async def log_in(http: aiohttp.ClientSession, proxy: TestServer, password: str,
                 **headers: str) -> aiohttp.ClientResponse:
    async with http.post(proxy.make_url("/dashboard/login"), data={"password": password}, headers=headers,
                         allow_redirects=False) as resp:
        await resp.read()
        return resp


def assert_no_ledger_data(text: str) -> None:
    leaked = [s for s in SECRETS_OF_THE_LEDGER if s in text]
    assert not leaked, f"page shows ledger data before login: {leaked}"


async def test_without_credentials_the_page_is_a_login_form_and_the_data_is_401(proxy, http) -> None:
    async with http.get(proxy.make_url("/dashboard")) as resp:
        assert resp.status == 200 and resp.content_type == "text/html"
        page = await resp.text()
        assert resp.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert 'action="/dashboard/login"' in page and 'type="password"' in page
    assert_no_ledger_data(page)
    for path in DATA_PATHS:
        async with http.get(proxy.make_url(path)) as resp:
            assert resp.status == 401, path
            body = await resp.json()
        assert body["error"]["type"] == "authentication_error" and body["error"]["code"] == "missing_api_key"
        assert_no_ledger_data(str(body))


async def test_bearer_admin_token_and_admin_key_work_other_keys_get_403(proxy, http) -> None:
    admin_key, _ = await add_key(proxy, user="ops", admin=True)
    client_key, _ = await add_key(proxy, user="alice")
    for key, status in ((ADMIN, 200), (admin_key, 200), (client_key, 403), ("aip_wrong", 401)):
        for path in DATA_PATHS:
            async with http.get(proxy.make_url(path), headers=bearer(key)) as resp:
                assert resp.status == status, (path, await resp.text())
                if status != 200:
                    error = (await resp.json())["error"]
                    assert error["code"] == ("admin_key_required" if status == 403 else "invalid_api_key")
                    assert_no_ledger_data(str(error))
    async with http.get(proxy.make_url("/dashboard"), headers=bearer(client_key)) as resp:
        assert resp.status == 403
        assert_no_ledger_data(await resp.text())


async def test_login_sets_a_strict_httponly_expiring_cookie_that_opens_the_data(proxy, http) -> None:
    resp = await log_in(http, proxy, ADMIN)
    assert resp.status == 303 and resp.headers["Location"] == "/dashboard"
    cookie = resp.cookies[COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/dashboard"
    assert int(cookie["max-age"]) == 8 * 3600 and not cookie["secure"]
    async with http.get(proxy.make_url("/dashboard")) as page:
        assert page.status == 200
        text = await page.text()
    assert 'src="/dashboard/static/dashboard.js"' in text and "Log out" in text
    async with http.get(proxy.make_url("/dashboard/api/summary"), params={"range": "30d"}) as data:
        assert data.status == 200
        assert (await data.json())["totals"]["requests"] == len(seeded_records()) - 1  # one is 40 days old


async def test_login_behind_https_marks_the_cookie_secure(proxy, http) -> None:
    resp = await log_in(http, proxy, ADMIN, **{"X-Forwarded-Proto": "https"})
    assert resp.status == 303 and resp.cookies[COOKIE]["secure"]


async def test_login_refuses_wrong_passwords_client_keys_and_other_origins(proxy, http) -> None:
    client_key, _ = await add_key(proxy, user="alice")
    for password, status in (("wrong", 401), (client_key, 403), ("", 401)):
        resp = await log_in(http, proxy, password)
        assert resp.status == status and COOKIE not in resp.cookies
    resp = await log_in(http, proxy, ADMIN, Origin="https://evil.example")
    assert resp.status == 403 and COOKIE not in resp.cookies
    async with http.get(proxy.make_url("/dashboard/api/summary")) as data:
        assert data.status == 401


async def test_expired_and_forged_cookies_are_refused(proxy, http) -> None:
    past = SessionSigner(derive_key("", ADMIN), ttl=60, clock=lambda: time.time() - 120)
    expired, _ = past.issue("admin-token")  # a genuine signature, expired a minute ago
    forged, _ = SessionSigner(derive_key("", "not-the-token"), ttl=3600).issue("admin-token")
    valid, _ = SessionSigner(derive_key("", ADMIN), ttl=60).issue("admin-token")
    for token, status in ((expired, 401), (forged, 401), (expired[:-2] + "xx", 401), (valid, 200)):
        async with http.get(proxy.make_url("/dashboard/api/summary"), headers={"Cookie": f"{COOKIE}={token}"}) as resp:
            assert resp.status == status
        async with http.get(proxy.make_url("/dashboard"), headers={"Cookie": f"{COOKIE}={token}"}) as resp:
            assert ('type="password"' in await resp.text()) is (status == 401)


async def test_logout_ends_the_session(proxy, http) -> None:
    token = (await log_in(http, proxy, ADMIN)).cookies[COOKIE].value
    async with http.post(proxy.make_url("/dashboard/logout"), allow_redirects=False) as resp:
        assert resp.status == 303
        assert resp.cookies[COOKIE].value == "" and resp.cookies[COOKIE]["max-age"] == "0"
    async with http.get(proxy.make_url("/dashboard/api/summary")) as resp:
        assert resp.status == 401
    async with http.get(proxy.make_url("/dashboard/api/summary"), headers={"Cookie": f"{COOKIE}={token}"}) as resp:
        assert resp.status == 401  # the old token is dead too, not just forgotten by the browser


async def test_revoking_the_admin_key_ends_its_sessions(proxy, http) -> None:
    admin_key, rec = await add_key(proxy, user="ops", admin=True)
    assert (await log_in(http, proxy, admin_key)).status == 303
    async with http.get(proxy.make_url("/dashboard/api/summary")) as resp:
        assert resp.status == 200
    access = proxy.app[ACCESS_KEY]
    await access.store.revoke(rec.id, datetime.now(UTC))
    await access.keys.refresh()
    async with http.get(proxy.make_url("/dashboard/api/summary")) as resp:
        assert resp.status == 401


async def test_without_any_admin_credential_the_dashboard_is_off() -> None:
    server = await start_seeded_proxy("memory://", seed=False, ADMIN_TOKEN="")
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(server.make_url("/dashboard/api/summary"), headers=bearer("anything")) as resp:
                assert resp.status == 403
                assert (await resp.json())["error"]["code"] == "admin_disabled"
    finally:
        await server.close()


async def test_static_files_carry_the_csp_and_nothing_else_is_served(proxy, http) -> None:
    kinds = (("dashboard.js", "text/javascript"), ("dashboard.css", "text/css"), ("icon.svg", "image/svg+xml"))
    for name, kind in kinds:
        async with http.get(proxy.make_url(f"/dashboard/static/{name}")) as resp:
            assert resp.status == 200 and resp.content_type == kind
            assert "'self'" in resp.headers["Content-Security-Policy"]
    for name in ("login.html", "../../config.py", "dashboard.html"):
        async with http.get(proxy.make_url(f"/dashboard/static/{name}")) as resp:
            assert resp.status == 404
