"""An Anthropic Messages API emulator, served under `/anthropic` by the one emulator app.

`POST /anthropic/v1/messages` (so ANTHROPIC_BASE_URL=http://127.0.0.1:N/anthropic): the key
(x-api-key, or `Authorization: Bearer` as the SDK 2.x sends it) and anthropic-version required,
buffered or streamed (`stream: true`) with the real event sequence
(message_start, content_block_start, ping, content_block_delta with text_delta / thinking_delta /
signature_delta / input_json_delta, content_block_stop, message_delta, message_stop), Anthropic's
validation rules (validate.py) and error JSON (errors.py), `GET /anthropic/v1/models`; scripted by
`#emu {json}` (messages.py).
The official `anthropic` SDK validates it in tests/emulator/test_anthropic_emulator.py.

Sources (read, not copied): https://docs.anthropic.com/en/api/messages,
https://docs.anthropic.com/en/api/messages-streaming, https://docs.anthropic.com/en/api/errors,
https://docs.anthropic.com/en/docs/build-with-claude/extended-thinking,
https://docs.anthropic.com/en/docs/build-with-claude/tool-use, and the SDK's own types.
"""

from __future__ import annotations

from aiohttp import web

from aiproxy.emulator.anthropic.messages import CONFIG, ERROR_COUNTS, list_models, messages
from aiproxy.emulator.config import EmulatorConfig

PREFIX = "/anthropic"


def create_anthropic_app(config: EmulatorConfig) -> web.Application:
    """The sub-app mounted at PREFIX by aiproxy.emulator.app.create_emulator_app."""
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[CONFIG] = config
    app[ERROR_COUNTS] = {}
    app.router.add_post("/v1/messages", messages)
    app.router.add_get("/v1/models", list_models)
    return app
