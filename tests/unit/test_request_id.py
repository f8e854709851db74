"""X-Request-ID: a sane client id is kept (and billed under), anything else replaced."""

from __future__ import annotations

import re

import pytest
from aiohttp.test_utils import make_mocked_request

from aiproxy.middleware import request_id_for


@pytest.mark.parametrize("given", ["abc", "req-123", "0f8e1c2a-aaaa-bbbb-cccc-1234567890ab", "a.b:c_d", "x" * 128])
def test_sane_ids_are_kept(given: str) -> None:
    assert request_id_for(make_mocked_request("GET", "/", headers={"X-Request-ID": given})) == given


@pytest.mark.parametrize("given", ["", "x" * 129, "has space", "new\\nline", "semi;colon", "ünïcode", "a|b"])
def test_insane_ids_are_replaced(given: str) -> None:
    rid = request_id_for(make_mocked_request("GET", "/", headers={"X-Request-ID": given}))
    assert re.fullmatch(r"req-[0-9a-f]{24}", rid)


def test_generated_ids_are_unique() -> None:
    ids = {request_id_for(make_mocked_request("GET", "/")) for _ in range(50)}
    assert len(ids) == 50
