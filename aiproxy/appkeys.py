"""Typed keys for what the app shares between handlers (aiohttp's `web.AppKey`)."""

from __future__ import annotations

from aiohttp import web

from aiproxy.billing.ledger import Ledger
from aiproxy.config import Settings

LEDGER_KEY = web.AppKey("ledger", Ledger)
SETTINGS_KEY = web.AppKey("settings", Settings)
