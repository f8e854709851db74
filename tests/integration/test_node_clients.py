"""The Responses API end to end from Node: the official `openai` Node SDK and the Vercel AI SDK.

The clients live in tests/node (exact pins, package-lock.json); `npm ci` runs once when its
node_modules is missing. Each script prints one JSON line; the assertions here are on what a user
of those SDKs notices, compared with the proxy's ledger rows.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from aiproxy.appkeys import LEDGER_KEY
from aiproxy.emulator import directive_text

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
SCRIPT_TIMEOUT_S = 20
FINAL_ANSWER = "It is sunny in Paris."


@pytest.fixture(scope="module")
def node_project() -> Path:
    """tests/node with its dependencies installed (`npm ci` once); skipped only without node/npm."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed for the Node client tests (Node 20+)")
    if not (NODE_DIR / "node_modules").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--prefix", str(NODE_DIR)], check=True,
                       timeout=300, stdout=subprocess.DEVNULL)
    return NODE_DIR


async def run_script(project: Path, script: str, proxy: TestServer, prompts: dict[str, str]) -> dict[str, Any]:
    env = {**os.environ, "AIPROXY_BASE_URL": str(proxy.make_url("/v1")), "AIPROXY_API_KEY": "any-key-works",
           "AIPROXY_PROMPTS": json.dumps(prompts)}
    proc = await asyncio.create_subprocess_exec("node", str(project / script), cwd=project, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), SCRIPT_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        pytest.fail(f"{script} did not finish within {SCRIPT_TIMEOUT_S}s")
    lines = out.decode().strip().splitlines()
    assert lines, f"{script} printed nothing; stderr: {err.decode()}"
    result = json.loads(lines[-1])
    assert proc.returncode == 0 and result["ok"], result.get("error") or err.decode()
    return result


async def ledger_rows(proxy: TestServer) -> list[dict[str, Any]]:
    return await proxy.app[LEDGER_KEY].rows()  # type: ignore[attr-defined]


async def test_openai_node_sdk_create_and_stream(node_project: Path, proxy: TestServer) -> None:
    result = await run_script(node_project, "openai_sdk.mjs", proxy, {
        "create": "Say hi. " + directive_text(reply="Hi there"),
        "stream": directive_text(reply="one two three four", chunks=3)})
    created, streamed = result["create"], result["stream"]
    assert created["id"].startswith("resp_") and created["text"] == "Hi there"
    kinds = [kind for kind, _ in streamed["events"]]
    assert kinds[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                          "response.completed"]
    assert kinds.count("response.output_text.delta") >= 2
    assert [seq for _, seq in streamed["events"]] == list(range(len(kinds)))
    assert streamed["deltas"] == streamed["text"] == "one two three four"
    rows = await ledger_rows(proxy)
    assert [(r["endpoint"], r["prompt_tokens"], r["completion_tokens"]) for r in rows] == [
        ("responses", u["input_tokens"], u["output_tokens"]) for u in (created["usage"], streamed["usage"])]
    assert all(u["total_tokens"] == u["input_tokens"] + u["output_tokens"]
               for u in (created["usage"], streamed["usage"]))


async def test_vercel_ai_sdk_tool_loop_generate_and_stream(node_project: Path, proxy: TestServer) -> None:
    # Step 1 calls the tool and says a line carrying the next directive; the SDK sends that line back
    # in step 2 (after the tool result), so the emulator then answers in plain text.
    first_words = "Let me check. " + directive_text(reply=FINAL_ANSWER)
    loop = "Weather in Paris? " + directive_text(
        function_calls=[{"name": "get_weather", "args": {"city": "Paris"}}], text=first_words)
    result = await run_script(node_project, "ai_sdk.mjs", proxy, {"loop": loop})
    assert result["toolCalls"] == ["Paris", "Paris"]
    for mode in ("generate", "stream"):
        run = result[mode]
        assert run["text"] == FINAL_ANSWER, mode
        assert [s["finishReason"] for s in run["steps"]] == ["tool-calls", "stop"], mode
        assert run["steps"][0]["toolCalls"] == [["get_weather", {"city": "Paris"}]]
        assert run["steps"][0]["toolResults"] == [{"city": "Paris", "forecast": "sunny"}]
    parts = result["stream"]["parts"]
    assert parts[0] == "start" and parts[-1] == "finish"
    assert parts.index("tool-call") < parts.index("tool-result") < len(parts) - 1 - parts[::-1].index("text-delta")
    steps = result["generate"]["steps"] + result["stream"]["steps"]
    rows = await ledger_rows(proxy)
    assert [(r["endpoint"], r["prompt_tokens"], r["completion_tokens"]) for r in rows] == [
        ("responses", s["usage"]["input"], s["usage"]["output"]) for s in steps]
