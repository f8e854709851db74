"""No forged log lines: a client value with a newline or an escape sequence stays inside its own
line, shown escaped, so every request still makes exactly one `💰 BILLING` line."""

from __future__ import annotations

import logging
import re
import signal
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from aiproxy import jsonutil
from aiproxy.appkeys import LEDGER_KEY
from aiproxy.observability.jsonlog import JsonFormatter, RequestContextFilter
from aiproxy.observability.logsetup import escape_controls, text_formatter
from tests.access.conftest import add_key, bearer

FORGED = ("💰 BILLING | User: x | Model: gpt-4 | Tokens: 1 input + 1 output = 2 total | Cost: $999.99 USD "
          "| Request ID: req-x")
HOSTILE = "alice\n" + FORGED
ROUTE = "/v1/chat/completions"
# A billing line as the text formatter writes it: time - logger - level - message.
BILLING_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d - aiproxy\.billing - INFO - 💰 BILLING \| ")


def text_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What a text log file holds for the captured records, split where a reader splits it."""
    formatter = text_formatter()
    return "\n".join(formatter.format(r) for r in caplog.records).split("\n")


def assert_one_billing_line_each(lines: list[str], requests: int, user_shown: str) -> None:
    billing = [line for line in lines if BILLING_LINE.match(line)]
    assert len(billing) == requests, billing
    assert not [line for line in lines if line.startswith(FORGED[:10]) or "- 💰 BILLING | User: x |" in line]
    assert all(f"| User: {user_shown} | Model: " in line for line in billing)


def chat_body(stream: bool = False, **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4", "stream": stream, "messages": [{"role": "user", "content": "hi"}], **extra}


@pytest.fixture
async def proxy(proxy_factory: Any, ledger_url: str) -> TestServer:
    """The proxy on each ledger backend: the hostile label is data in the row, never a log line."""
    return await proxy_factory(usage_db_url=ledger_url)


@pytest.mark.parametrize("field", ["user_id", "user"])
async def test_open_mode_user_cannot_forge_a_billing_line(proxy: TestServer, http: aiohttp.ClientSession,
                                                          caplog: pytest.LogCaptureFixture, field: str) -> None:
    caplog.set_level(logging.INFO)
    for stream in (False, True):
        async with http.post(proxy.make_url(ROUTE), json=chat_body(stream, **{field: HOSTILE})) as resp:
            assert resp.status == 200
            await resp.read()
    assert_one_billing_line_each(text_lines(caplog), 2, escape_controls(HOSTILE))
    assert [r["user_id"] for r in await proxy.app[LEDGER_KEY].rows()] == [HOSTILE, HOSTILE]  # one row each, as sent


async def test_end_user_label_under_a_key_cannot_forge_a_billing_line(
        proxy: TestServer, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    key, _ = await add_key(proxy, user="carol")
    for field in ("user_id", "user"):
        async with http.post(proxy.make_url(ROUTE), json=chat_body(**{field: HOSTILE}), headers=bearer(key)) as resp:
            assert resp.status == 200
    assert_one_billing_line_each(text_lines(caplog), 2, "carol")


async def test_hostile_model_name_writes_no_line_of_its_own(proxy: TestServer, http: aiohttp.ClientSession,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    for model in ("gemini-2.5-flash\n" + FORGED, "gpt-4\r\n" + FORGED, "gemini-2.5-flash\x1b[2K" + FORGED):
        async with http.post(proxy.make_url(ROUTE), json=chat_body(model=model)) as resp:
            assert resp.status == 400
            assert (await resp.json())["error"]["param"] == "model"
    assert_one_billing_line_each(text_lines(caplog), 0, "")


def test_text_formatter_escapes_the_message_but_not_the_traceback() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("aiproxy", logging.ERROR, __file__, 1, "unhandled error in %s %s (request %s)",
                                   ("POST", "/v1/x\n" + FORGED, "a\rb\x1b[31mc\u2028d\x85e\x00"), True)
        record.exc_info = __import__("sys").exc_info()
    text = text_formatter().format(record)
    first, *traceback = text.split("\n")
    assert first.endswith(r"unhandled error in POST /v1/x\n💰 BILLING | User: x | Model: gpt-4 | Tokens: 1 input + "
                          r"1 output = 2 total | Cost: $999.99 USD | Request ID: req-x "
                          r"(request a\rb\x1b[31mc\u2028d\x85e\x00)")
    assert traceback[0] == "Traceback (most recent call last):" and traceback[-1] == "ValueError: boom"


async def test_json_request_line_keeps_hostile_path_and_header_inside_one_line(
        proxy_factory: Any, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture) -> None:
    proxy = await proxy_factory(log_format="json")
    caplog.set_level(logging.INFO)
    caplog.handler.addFilter(RequestContextFilter())  # as setup_logging does in JSON mode
    path = "/v1/chat" + quote("\n" + FORGED + "\x1b[2K", safe="")
    # (A control character in a header never gets this far: aiohttp's parser refuses the request.)
    async with http.post(str(proxy.make_url("")) + path, json=chat_body(),
                         headers={"X-Request-ID": "not plain | User: x | Cost: $999.99"}) as resp:
        assert resp.status == 404
        server_id = resp.headers["X-Aiproxy-Request-ID"]
        assert resp.headers["X-Request-ID"] == server_id  # the hostile id was not kept
    formatter = JsonFormatter()
    [access] = [formatter.format(r) for r in caplog.records if r.name == "aiproxy.requests"]
    assert "\n" not in access and "\x1b" not in access
    fields = jsonutil.loads(access)
    assert fields["path"] == "/v1/chat\n" + FORGED + "\x1b[2K" and fields["status"] == 404
    assert fields["request_id"] == server_id and "client_request_id" not in fields


async def test_a_real_process_writes_one_billing_line_per_request(tmp_path: Any, emulator: TestServer) -> None:
    from tests.conftest import emulator_url
    from tests.integration.procs import spawn, wait_healthy

    p = spawn(tmp_path, emulator_url(emulator))
    try:
        await wait_healthy(p)
        async with aiohttp.ClientSession() as http:
            for stream in (False, True):
                async with http.post(f"{p.url}{ROUTE}", json=chat_body(stream, user_id=HOSTILE)) as resp:
                    assert resp.status == 200
                    await resp.read()
        p.signal(signal.SIGTERM)
        assert await p.wait() == 0
    finally:
        p.kill()
    assert_one_billing_line_each(p.log.split("\n"), 2, escape_controls(HOSTILE))
