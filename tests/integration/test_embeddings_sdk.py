"""POST /v1/embeddings through the official openai SDK against the emulator, metered once."""

from __future__ import annotations

import base64
import struct
from typing import Any

import openai
import pytest

from aiproxy.api.embeddings import encode_vector
from aiproxy.emulator.embeddings import embedding_values
from aiproxy.emulator.tokens import count_tokens
from tests.conftest import recorded_requests


def emulator_vector(text: str, dims: int = 3072) -> list[float]:
    return list(embedding_values(text, dims))


async def test_single_string_uses_embed_content_and_counts_tokens(openai_client: Any, http: Any, emulator: Any,
                                                                   billing_lines: Any) -> None:
    result = await openai_client.embeddings.create(model="text-embedding-3-small", input="hello world",
                                                   encoding_format="float")
    assert result.model == "text-embedding-3-small" and result.object == "list"
    assert [d.index for d in result.data] == [0]
    assert result.data[0].embedding == pytest.approx(emulator_vector("hello world"), abs=1e-6)
    assert result.usage.prompt_tokens == result.usage.total_tokens == count_tokens("hello world")
    paths = [r["path"] for r in await recorded_requests(http, emulator)]
    assert paths[-2:] == ["/v1beta/models/gemini-embedding-001:embedContent",
                          "/v1beta/models/gemini-embedding-001:countTokens"]
    lines = billing_lines()
    assert len(lines) == 1 and "Model: text-embedding-3-small" in lines[0]
    assert f"Tokens: {count_tokens('hello world')} input + 0 output" in lines[0]


async def test_list_input_with_dimensions_uses_batch_embed(openai_client: Any, http: Any, emulator: Any) -> None:
    texts = ["first text", "second, longer text"]
    result = await openai_client.embeddings.create(model="text-embedding-3-large", input=texts, dimensions=8,
                                                   encoding_format="float")
    assert [d.index for d in result.data] == [0, 1]
    assert all(len(d.embedding) == 8 for d in result.data)
    assert result.data[1].embedding == pytest.approx(emulator_vector(texts[1], 8), abs=1e-6)
    recorded = await recorded_requests(http, emulator)
    batch = next(r for r in recorded if r["path"].endswith(":batchEmbedContents"))
    assert batch["body"]["requests"][0] == {"model": "models/gemini-embedding-001",
                                            "content": {"parts": [{"text": "first text"}]}, "outputDimensionality": 8}
    assert result.usage.prompt_tokens == sum(count_tokens(t) for t in texts)


async def test_base64_encoding_is_little_endian_float32(openai_client: Any) -> None:
    raw = await openai_client.embeddings.with_raw_response.create(
        model="text-embedding-3-small", input="hello", dimensions=4, encoding_format="base64")
    encoded = raw.http_response.json()["data"][0]["embedding"]
    decoded = struct.unpack("<4f", base64.b64decode(encoded))
    assert decoded == pytest.approx(emulator_vector("hello", 4), abs=1e-6)
    # and the SDK's own default (base64 on the wire, floats for the caller) decodes the same
    result = await openai_client.embeddings.create(model="text-embedding-3-small", input="hello", dimensions=4)
    assert result.data[0].embedding == pytest.approx(list(decoded), abs=1e-6)


def test_encode_vector_matches_openai_base64_layout() -> None:
    assert encode_vector([1.0, -2.5], "base64") == base64.b64encode(struct.pack("<2f", 1.0, -2.5)).decode()


@pytest.mark.parametrize("body, param", [
    ({"input": [1, 2, 3]}, "input"),
    ({"input": [[1, 2]]}, "input"),
    ({"input": ""}, "input"),
    ({"input": []}, "input"),
    ({"input": "x", "encoding_format": "int8"}, "encoding_format"),
    ({"input": "x", "dimensions": 0}, "dimensions"),
])
async def test_unsupported_inputs_are_a_400_naming_the_param(proxy_url: str, http: Any, body: dict[str, Any],
                                                            param: str) -> None:
    async with http.post(f"{proxy_url}/v1/embeddings", json={"model": "text-embedding-3-small", **body}) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["param"] == param


async def test_unknown_model_is_a_404(openai_client: Any) -> None:
    with pytest.raises(openai.NotFoundError):
        await openai_client.embeddings.create(model="no-such-embedder", input="x")


async def test_unprefixed_route_works(proxy_url: str, http: Any) -> None:
    async with http.post(f"{proxy_url}/embeddings", json={"model": "text-embedding-3-small", "input": "x"}) as resp:
        assert resp.status == 200
        assert (await resp.json())["data"][0]["object"] == "embedding"


class _NoCountUpstream:
    """An upstream whose countTokens fails: usage must fall back to the flagged estimate."""

    async def call_json(self, method: str, path: str, body: Any = None) -> Any:
        if path.endswith(":countTokens"):
            from aiproxy.errors import ProxyError

            raise ProxyError(404, "countTokens not supported")
        return {"embedding": {"values": [0.5, 0.5]}}


async def test_usage_is_estimated_and_flagged_when_count_tokens_fails(proxy_factory: Any, http: Any,
                                                                       billing_lines: Any) -> None:
    from aiproxy.appkeys import PROVIDERS_KEY

    proxy = await proxy_factory()
    provider, _ = proxy.app[PROVIDERS_KEY].resolve_embedding("text-embedding-3-small")
    real = provider.client
    provider.client = _NoCountUpstream()  # swap the upstream client (test only)
    try:
        async with http.post(proxy.make_url("/v1/embeddings"),
                             json={"model": "text-embedding-3-small", "input": "x" * 9}) as resp:
            usage = (await resp.json())["usage"]
    finally:
        provider.client = real
    assert usage == {"prompt_tokens": 3, "total_tokens": 3, "estimated": True}  # ceil(9 / 4)
    assert len(billing_lines()) == 1 and "Tokens: 3 input" in billing_lines()[0]
