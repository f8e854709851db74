"""`make demo`: the real command line, no key, the bundled emulator, one chat request."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from aiproxy.server.serve import free_port

REPO = Path(__file__).resolve().parents[2]


def start_demo(tmp_path: Path, port: int, *unset: str) -> subprocess.Popen[str]:
    """`python -m aiproxy demo` in `tmp_path` on `port`, without the environment variables `unset`."""
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.Popen([sys.executable, "-m", "aiproxy", "demo", "--port", str(port)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


async def wait_listening(http: aiohttp.ClientSession, base: str, proc: subprocess.Popen[str]) -> None:
    """Until the demo answers /health (bounded), failing with its stderr if it exits."""
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, proc.communicate()[1]
        try:
            async with http.get(f"{base}/health") as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientConnectionError:
            pass
        assert time.monotonic() < deadline, "demo did not start listening"
        await asyncio.sleep(0.1)


async def test_demo_serves_without_a_key(tmp_path: Path) -> None:
    port = free_port()
    proc = start_demo(tmp_path, port, "GEMINI_API_KEY", "GEMINI_BASE_URL", "HOST", "PORT")
    try:
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as http:
            await wait_listening(http, base, proc)
            body = {"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "Hello"}]}
            async with http.post(f"{base}/v1/chat/completions", json=body,
                                 headers={"Authorization": "Bearer x"}) as resp:
                assert resp.status == 200
                answer = await resp.json()
            body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]}
            async with http.post(f"{base}/v1/chat/completions", json=body,
                                 headers={"Authorization": "Bearer x"}) as resp:
                assert resp.status == 200
                assert (await resp.json())["model"] == "openai/gpt-4o-mini"  # the OpenAI emulator served it
        assert answer["model"] == "gpt-3.5-turbo" and answer["choices"][0]["message"]["content"]
    finally:
        proc.terminate()  # only the process this test started, by its PID
        _, err = proc.communicate(timeout=10)
    assert "demo mode" in err
    assert err.count("💰 BILLING | User: anonymous | Model: gpt-3.5-turbo") == 1

# The README's outage curl, verbatim: Gemini answers 503 to its first three tries (one plus
# UPSTREAM_RETRIES=2), and the demo's fallback chain sends the request to the OpenAI emulator.
OUTAGE_BODY = ('{"model": "gpt-4", "messages": [{"role": "user", "content": '
               '"Hello #emu {\\"error\\": 503, \\"error_times\\": 3, \\"key\\": \\"outage-1\\"}"}]}')


async def test_demo_gemini_outage_falls_through_to_another_provider(tmp_path: Path) -> None:
    port = free_port()
    proc = start_demo(tmp_path, port, "GEMINI_API_KEY", "GEMINI_BASE_URL", "HOST", "PORT", "MODEL_FALLBACKS",
                      "UPSTREAM_RETRIES", "USAGE_DB_URL", "MODELS_FILE")
    try:
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as http:
            await wait_listening(http, base, proc)
            headers = {"Authorization": "Bearer x", "Content-Type": "application/json"}
            async with http.post(f"{base}/v1/chat/completions", data=OUTAGE_BODY, headers=headers) as resp:
                assert resp.status == 200
                assert resp.headers["X-Upstream-Model"] == "gpt-4.1"  # the OpenAI emulator served it
                answer = await resp.json()
            async with http.post(f"{base}/v1/chat/completions", data=OUTAGE_BODY, headers=headers) as resp:
                assert resp.status == 200  # the key's three failures are spent: Gemini serves again
                assert resp.headers["X-Upstream-Model"] == "gemini-2.5-pro"
            body = {"model": "anthropic/claude-sonnet-4-5", "messages": [{"role": "user", "content": "Hello"}]}
            async with http.post(f"{base}/v1/chat/completions", json=body, headers=headers) as resp:
                assert resp.status == 200  # the Anthropic emulator is a provider too
                assert resp.headers["X-Upstream-Model"] == "claude-sonnet-4-5"
        assert answer["model"] == "gpt-4" and answer["choices"][0]["message"]["content"]
    finally:
        proc.terminate()  # only the process this test started, by its PID
        _, err = proc.communicate(timeout=10)
    assert "model gpt-4 failed (503); falling back to openai/gpt-4.1" in err
    with sqlite3.connect(tmp_path / "data" / "usage.db") as db:
        rows = db.execute("SELECT provider, upstream_model, requested_model, status FROM usage ORDER BY id").fetchall()
    assert rows == [("openai", "gpt-4.1", "gpt-4", "ok"), ("gemini", "gemini-2.5-pro", "gpt-4", "ok"),
                    ("anthropic", "claude-sonnet-4-5", "anthropic/claude-sonnet-4-5", "ok")]


def test_outage_body_is_the_documented_curl() -> None:
    readme = (REPO / "README.md").read_text()
    assert "-d '" + OUTAGE_BODY + "'" in readme
    assert json.loads(OUTAGE_BODY)["model"] == "gpt-4"


def test_port_in_use_is_one_line_and_exit_1(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "HOST", "PORT")}
        env["PYTHONPATH"] = str(REPO)
        done = subprocess.run([sys.executable, "-m", "aiproxy", "demo", "--port", str(port)], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    assert f"error: cannot listen on 127.0.0.1:{port}:" in done.stderr
    assert "Traceback" not in done.stderr and "Unclosed" not in done.stderr
