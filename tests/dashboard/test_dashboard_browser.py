"""The dashboard in a real browser: Debian's Chromium driven by Playwright (no browser download).

Logs in through the form, reads the figures off the page and checks them against the ledger,
records every request the page makes (all must be same-origin) and every console message (no
errors, so no CSP violation either), and keeps screenshots (light, dark, phone) in the test's
tmp dir; with AIPROXY_SCREENSHOT_DIR set, their first screen is saved there too (how docs/dashboard*.png
are made: `AIPROXY_SCREENSHOT_DIR=docs pytest tests/dashboard/test_dashboard_browser.py`).
"""

from __future__ import annotations

import os
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp.test_utils import TestServer

from aiproxy.appkeys import LEDGER_KEY
from aiproxy.billing.pricing import format_usd
from tests.dashboard.seed import ADMIN, start_seeded_proxy, today
from tests.ledger.factories import make_record

CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(),
                       reason=f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium) to run "
                              "the browser tests (CI's .ci/run does)"),
]
playwright_api = pytest.importorskip("playwright.async_api",
                                     reason="playwright is not installed (requirements-dev.txt)")

USERS = ["alice", "bob", "carol", "dave", "erin", "frank"]
MODELS = [("gpt-4o", "gemini-2.5-flash", Decimal("0.0000003"), Decimal("0.0000025")),
          ("gemini-2.5-pro", "gemini-2.5-pro", Decimal("0.00000125"), Decimal("0.00001")),
          ("gpt-4o-mini", "gemini-2.5-flash-lite", Decimal("0.0000001"), Decimal("0.0000004"))]


def busy_week() -> list[Any]:
    """A week of plausible traffic (fixed seed), so the page and its screenshot have something to show."""
    rng = random.Random(15)
    rows = []
    for i in range(240):
        requested, upstream, p_in, p_out = rng.choice(MODELS)
        prompt, completion = rng.randint(20, 4000), rng.randint(5, 1500)
        days_ago = rng.randint(0, 6)
        so_far = int((datetime.now(UTC) - today()).total_seconds() // 60)  # today: only the past
        minute = rng.randint(0, so_far if days_ago == 0 else 1439)
        started = today() - timedelta(days=days_ago) + timedelta(minutes=minute)
        status = rng.choices(["ok", "upstream_error", "client_disconnected"], [94, 4, 2])[0]
        rows.append(make_record(
            request_id=f"req-week-{i:03d}", user=rng.choice(USERS[: rng.randint(1, len(USERS))]),
            requested_model=requested, upstream_model=upstream, prompt_tokens=prompt, completion_tokens=completion,
            total_tokens=prompt + completion, cost_usd=prompt * p_in + completion * p_out, status=status,
            started_at=started,
            ttft_ms=round(rng.uniform(150, 900), 1), duration_ms=round(rng.uniform(400, 6000), 1)))
    return rows


@pytest.fixture
async def proxy(tmp_path: Path) -> AsyncIterator[TestServer]:
    server = await start_seeded_proxy(f"sqlite:///{tmp_path}/usage.db", seed=False)
    for rec in busy_week():
        await server.app[LEDGER_KEY].record(rec)
    yield server
    await server.close()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield browser
        await browser.close()


def ledger_totals(rows: list[dict]) -> dict[str, str]:
    return {
        "total-requests": f"{len(rows):,}",
        "total-prompt": f"{sum(r['prompt_tokens'] for r in rows):,}",
        "total-completion": f"{sum(r['completion_tokens'] for r in rows):,}",
        "total-cost": "$" + format_usd(sum((Decimal(str(r["cost_usd"])) for r in rows), Decimal(0))),
    }


async def shown(page: Any) -> dict[str, str]:
    return {name: (await page.text_content(f"#{name}") or "").strip()
            for name in ("total-requests", "total-prompt", "total-completion", "total-cost")}


async def open_page(browser: Any, proxy: TestServer, **context: Any) -> tuple[Any, Any, list[str], list[str]]:
    ctx = await browser.new_context(**context)
    page = await ctx.new_page()
    requests: list[str] = []
    problems: list[str] = []
    page.on("request", lambda req: requests.append(req.url))
    page.on("console", lambda msg: msg.type in ("error", "warning") and problems.append(f"{msg.type}: {msg.text}"))
    page.on("pageerror", lambda exc: problems.append(f"pageerror: {exc}"))
    await page.goto(str(proxy.make_url("/dashboard")))
    return ctx, page, requests, problems


async def log_in(page: Any) -> None:
    await page.fill("#password", ADMIN)
    await page.click("button[type=submit]")
    await page.wait_for_selector("body[data-loaded=true]")


async def keep_screenshot(page: Any, tmp_path: Path, name: str) -> None:
    """The whole page as a test artifact; with AIPROXY_SCREENSHOT_DIR, also the first screen there."""
    await page.screenshot(path=str(tmp_path / name), full_page=True)
    target = os.environ.get("AIPROXY_SCREENSHOT_DIR")
    if target:
        await page.screenshot(path=str(Path(target) / name))


async def test_login_figures_same_origin_no_console_errors(proxy: TestServer, browser: Any, tmp_path: Path) -> None:
    origin = urlsplit(str(proxy.make_url("/"))).netloc
    rows = await proxy.app[LEDGER_KEY].rows()
    ctx, page, requests, problems = await open_page(browser, proxy, viewport={"width": 1280, "height": 900})
    content = await page.content()
    assert await page.is_visible("#password")
    assert not [u for u in ("alice", "req-week-", "gemini-2.5") if u in content], "data shown before login"

    await log_in(page)
    week = [r for r in rows if str(r["started_at"]) >= (today() - timedelta(days=6)).strftime("%Y-%m-%d")]
    assert await shown(page) == ledger_totals(week)
    assert (await page.text_content("#total-cache")) == "$0" and (await page.text_content("#cache-note")) == "cache off"
    assert await page.locator("#latest tbody tr").count() == 25
    assert await page.locator("#by-provider tbody tr").count() == 1
    await keep_screenshot(page, tmp_path, "dashboard.png")

    await page.select_option("#range", "30d")
    await page.fill("#user", "alice")
    await page.click("#filters button[type=submit]")
    await page.locator("#status", has_text="user alice").wait_for()
    assert await shown(page) == ledger_totals([r for r in rows if r["user_id"] == "alice"])

    async with page.expect_download() as info:
        await page.click("#export")
    csv_text = Path(await (await info.value).path()).read_text()
    assert csv_text.startswith("section,key,requests") and "\nuser,alice," in csv_text

    await page.click("#logout button")
    await page.wait_for_selector("#password")
    assert (await page.request.get(str(proxy.make_url("/dashboard/api/summary")))).status == 401
    await ctx.close()

    foreign = [u for u in requests if urlsplit(u).netloc != origin]
    assert requests and not foreign, f"requests to another origin: {foreign}"
    assert not problems, problems


@pytest.mark.parametrize("name, context", [
    ("dashboard-dark.png", {"color_scheme": "dark", "viewport": {"width": 1280, "height": 900}}),
    ("dashboard-phone.png", {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True,
                             "has_touch": True}),
])
async def test_dark_and_phone_render_without_errors(proxy: TestServer, browser: Any, tmp_path: Path, name: str,
                                                    context: dict[str, Any]) -> None:
    ctx, page, _, problems = await open_page(browser, proxy, **context)
    await log_in(page)
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= context["viewport"]["width"], "the page scrolls sideways"
    await keep_screenshot(page, tmp_path, name)
    await ctx.close()
    assert not problems, problems
