"""`make demo`: the real command line, no key, the bundled emulator, one chat request."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from aiproxy.server.serve import free_port

REPO = Path(__file__).resolve().parents[2]


async def test_demo_serves_without_a_key(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GEMINI_BASE_URL", "HOST", "PORT")}
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.Popen([sys.executable, "-m", "aiproxy", "demo", "--port", str(port)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as http:
            deadline = time.monotonic() + 30
            while True:  # wait for the process to listen (bounded)
                assert proc.poll() is None, proc.communicate()[1]
                try:
                    async with http.get(f"{base}/health") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                assert time.monotonic() < deadline, "demo did not start listening"
                await asyncio.sleep(0.1)
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
