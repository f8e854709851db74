"""Request ids: the server always makes its own; a plain client X-Request-ID is only a label."""

from __future__ import annotations

import re

import pytest
from aiohttp.test_utils import make_mocked_request

from aiproxy.http.middleware import client_request_id_for, new_request_id


@pytest.mark.parametrize("given", ["abc", "req-123", "0f8e1c2a-aaaa-bbbb-cccc-1234567890ab", "a.b:c_d", "x" * 128])
def test_plain_client_ids_are_kept_as_labels(given: str) -> None:
    assert client_request_id_for(make_mocked_request("GET", "/", headers={"X-Request-ID": given})) == given


@pytest.mark.parametrize("given", ["", "x" * 129, "has space", "new\\nline", "semi;colon", "ünïcode", "a|b"])
def test_other_client_ids_are_dropped(given: str) -> None:
    assert client_request_id_for(make_mocked_request("GET", "/", headers={"X-Request-ID": given})) is None


def test_no_client_id_is_none() -> None:
    assert client_request_id_for(make_mocked_request("GET", "/")) is None


def test_server_ids_are_req_and_24_hex_and_unique() -> None:
    ids = {new_request_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(re.fullmatch(r"req-[0-9a-f]{24}", rid) for rid in ids)
