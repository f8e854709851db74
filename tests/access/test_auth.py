"""Keys in front of the API: who gets in, and who is billed."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC
from typing import Any

import aiohttp
import pytest

from aiproxy.app import create_app
from aiproxy.appkeys import LEDGER_KEY, METER_KEY
from aiproxy.billing.record import UsageRecord
from aiproxy.http.hardening import OpenProxyRefused
from tests.access.conftest import add_key, bearer, chat_body
from tests.conftest import emulator_url, make_settings, start_proxy


def assert_invalid_key(status: int, body: dict[str, Any]) -> None:
    assert status == 401
    assert body["error"]["code"] == "invalid_api_key"
    assert body["error"]["type"] == "invalid_request_error"
    assert set(body["error"]) == {"message", "type", "param", "code"}


async def test_open_without_keys(proxy: Any, http: aiohttp.ClientSession) -> None:
    async with http.post(proxy.make_url("/v1/chat/completions"), json=chat_body()) as resp:
        assert resp.status == 200


@pytest.mark.parametrize("path,method", [("/v1/chat/completions", "POST"), ("/v1/models", "GET"),
                                         ("/chat/completions", "POST"), ("/models", "GET"),
                                         ("/v1/models/gpt-4o-mini", "GET"), ("/v1/nonexistent", "GET")])
async def test_missing_key_is_401_everywhere(proxy_factory: Any, http: aiohttp.ClientSession, path: str,
                                             method: str) -> None:
    proxy = await proxy_factory()
    await add_key(proxy)
    async with http.request(method, proxy.make_url(path), json=chat_body()) as resp:
        assert_invalid_key(resp.status, await resp.json())
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")


async def test_unknown_key_is_401_and_never_echoed(proxy_factory: Any, http: aiohttp.ClientSession) -> None:
    proxy = await proxy_factory()
    await add_key(proxy)
    wrong = "aip_" + "x" * 43
    async with http.post(proxy.make_url("/v1/chat/completions"), json=chat_body(), headers=bearer(wrong)) as resp:
        text = await resp.text()
        assert_invalid_key(resp.status, await resp.json())
    assert wrong not in text


@pytest.mark.parametrize("header", ["Authorization", "api-key", "x-api-key"])
async def test_key_accepted_in_each_header(proxy_factory: Any, http: aiohttp.ClientSession, header: str) -> None:
    proxy = await proxy_factory()
    key, _ = await add_key(proxy)
    value = f"Bearer {key}" if header == "Authorization" else key
    async with http.post(proxy.make_url("/v1/chat/completions"), json=chat_body(), headers={header: value}) as resp:
        assert resp.status == 200


async def test_health_and_openapi_stay_open(proxy_factory: Any, http: aiohttp.ClientSession) -> None:
    proxy = await proxy_factory()
    await add_key(proxy)
    async with http.get(proxy.make_url("/health")) as resp:
        assert resp.status == 200 and await resp.json() == {"status": "healthy"}
    async with http.get(proxy.make_url("/openapi.json")) as resp:
        assert resp.status == 200 and (await resp.json())["openapi"].startswith("3.1")


async def test_revoked_key_is_refused_after_the_cache_ttl(proxy_factory: Any, http: aiohttp.ClientSession) -> None:
    from datetime import datetime

    from aiproxy.appkeys import ACCESS_KEY

    proxy = await proxy_factory(key_cache_ttl=0)  # no caching: the revocation shows at once
    key, rec = await add_key(proxy)
    url = proxy.make_url("/v1/models")
    async with http.get(url, headers=bearer(key)) as resp:
        assert resp.status == 200
    assert await proxy.app[ACCESS_KEY].store.revoke(rec.id, datetime.now(UTC))
    async with http.get(url, headers=bearer(key)) as resp:
        assert_invalid_key(resp.status, await resp.json())
    # the only key is revoked: the proxy must not fall back to open
    async with http.get(url) as resp:
        assert resp.status == 401


async def test_cached_snapshot_means_no_store_read_per_request(proxy_factory: Any, http: aiohttp.ClientSession) -> None:
    from aiproxy.appkeys import ACCESS_KEY

    proxy = await proxy_factory(key_cache_ttl=3600)
    key, _ = await add_key(proxy)
    store = proxy.app[ACCESS_KEY].store
    reads = 0
    original = store.all_keys

    async def counting() -> Any:
        nonlocal reads
        reads += 1
        return await original()

    store.all_keys = counting
    for _ in range(5):
        async with http.get(proxy.make_url("/v1/models"), headers=bearer(key)) as resp:
            assert resp.status == 200
        async with http.get(proxy.make_url("/v1/models"), headers=bearer("aip_" + "y" * 43)) as resp:
            assert resp.status == 401
    assert reads == 0


@pytest.mark.parametrize("stream", [False, True])
async def test_forged_user_id_is_billed_to_the_key_owner(proxy_factory: Any, http: aiohttp.ClientSession,
                                                         billing_lines: Any, stream: bool) -> None:
    proxy = await proxy_factory()
    key, rec = await add_key(proxy, user="alice")
    seen: list[UsageRecord] = []
    proxy.app[METER_KEY].hooks.append(seen.append)
    body = chat_body(user_id="bob", user="mallory", stream=stream)
    async with http.post(proxy.make_url("/v1/chat/completions"), json=body, headers=bearer(key)) as resp:
        assert resp.status == 200
        await resp.read()
    [line] = billing_lines()
    assert "| User: alice |" in line and "bob" not in line
    [usage] = seen
    assert (usage.user, usage.key_id, usage.end_user) == ("alice", rec.id, "bob")
    ledger = proxy.app[LEDGER_KEY]
    rows = await ledger.report(group_by="user")
    assert [r["user"] for r in rows] == ["alice"] and rows[0]["requests"] == 1


async def test_admin_routes_need_an_admin_key(proxy_factory: Any, http: aiohttp.ClientSession) -> None:
    proxy = await proxy_factory(admin_token="bootstrap-admin-token-123")
    client_key, _ = await add_key(proxy, user="alice")
    admin_key, _ = await add_key(proxy, user="ops", admin=True)
    url = proxy.make_url("/v1/usage")
    async with http.get(url, headers=bearer(client_key)) as resp:
        assert resp.status == 403 and (await resp.json())["error"]["type"] == "permission_error"
    async with http.get(url, headers=bearer(admin_key)) as resp:
        assert resp.status == 200
    async with http.get(url, headers=bearer("bootstrap-admin-token-123")) as resp:
        assert resp.status == 200  # ADMIN_TOKEN still works as the bootstrap
    async with http.get(url) as resp:
        assert resp.status == 401
    # the bootstrap token is not a client key
    async with http.get(proxy.make_url("/v1/models"), headers=bearer("bootstrap-admin-token-123")) as resp:
        assert resp.status == 401


@pytest.mark.parametrize("mode", ["keys", "open"])
@pytest.mark.parametrize("header", ["Authorization", "api-key", "x-api-key"])
async def test_one_admin_rule_with_or_without_keys(proxy_factory: Any, http: aiohttp.ClientSession, mode: str,
                                                   header: str) -> None:
    """ADMIN_TOKEN (and an admin key) is presented like any key, whether or not the proxy has keys."""
    token = "bootstrap-admin-token-123"
    proxy = await proxy_factory(admin_token=token)
    admin_key = (await add_key(proxy, user="ops", admin=True))[0] if mode == "keys" else None
    url = proxy.make_url("/v1/usage")

    def present(secret: str) -> dict[str, str]:
        return {header: f"Bearer {secret}" if header == "Authorization" else secret}

    for secret in filter(None, (token, admin_key)):
        async with http.get(url, headers=present(secret)) as resp:
            assert resp.status == 200, await resp.text()
    async with http.get(url, headers=present("not-the-token")) as resp:
        assert resp.status == 401 and (await resp.json())["error"]["code"] == "invalid_api_key"
    async with http.get(url) as resp:
        assert resp.status == 401


async def test_admin_key_works_without_admin_token(proxy_factory: Any, http: aiohttp.ClientSession) -> None:
    proxy = await proxy_factory()
    admin_key, _ = await add_key(proxy, user="ops", admin=True)
    async with http.get(proxy.make_url("/v1/usage"), headers=bearer(admin_key)) as resp:
        assert resp.status == 200


async def test_open_proxy_on_public_address_is_refused(emulator: Any) -> None:
    app = create_app(make_settings(emulator_url(emulator), host="0.0.0.0"))
    from aiohttp.test_utils import TestServer

    server = TestServer(app, host="127.0.0.1")
    with pytest.raises(OpenProxyRefused, match="ALLOW_OPEN_PROXY"):
        await server.start_server()
    await server.close()


async def test_open_proxy_allowed_explicitly_warns(emulator: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="aiproxy.access")
    server = await start_proxy(make_settings(emulator_url(emulator), host="0.0.0.0", allow_open_proxy=True))
    await server.close()
    assert any("proxy is OPEN" in r.getMessage() for r in caplog.records)


async def test_keys_in_the_store_allow_a_public_address(emulator: Any, tmp_path: Any) -> None:
    from aiproxy.access.cli import main as keys_main

    db = f"sqlite:///{tmp_path}/usage.db"
    assert await asyncio.to_thread(keys_main, ["--db", db, "create", "--user", "alice"]) == 0
    server = await start_proxy(make_settings(emulator_url(emulator), host="0.0.0.0", usage_db_url=db))
    await server.close()


async def test_key_table_unreachable_keeps_the_last_snapshot(proxy_factory: Any, http: aiohttp.ClientSession) -> None:
    from aiproxy.appkeys import ACCESS_KEY

    proxy = await proxy_factory(key_cache_ttl=0)
    key, _ = await add_key(proxy)
    access = proxy.app[ACCESS_KEY]

    async def broken() -> Any:
        raise OSError("database down")

    access.store.all_keys = broken
    async with http.get(proxy.make_url("/v1/models"), headers=bearer(key)) as resp:
        assert resp.status == 200
    async with http.get(proxy.make_url("/v1/models")) as resp:
        assert resp.status == 401  # still closed: the last snapshot had keys
    access.keys.snapshot.loaded_at = float("-inf")  # as if it never loaded
    async with http.get(proxy.make_url("/v1/models"), headers=bearer(key)) as resp:
        assert resp.status == 503 and (await resp.json())["error"]["code"] == "auth_unavailable"


def test_serve_refuses_an_open_public_proxy_with_one_line() -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {"PATH": os.environ.get("PATH", ""), "USAGE_DB_URL": "memory://", "GEMINI_API_KEY": "x"}
    done = subprocess.run([sys.executable, "-m", "aiproxy", "--host", "0.0.0.0", "--port", "0"], env=env,
                          capture_output=True, text=True, timeout=60, cwd=Path(__file__).parents[2])
    assert done.returncode == 2
    assert "ALLOW_OPEN_PROXY=true" in done.stderr
    assert "Traceback" not in done.stderr and "Unclosed" not in done.stderr
