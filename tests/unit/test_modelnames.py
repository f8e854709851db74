"""The model-name pattern, one row per case: what passes (and how it splits), what is a 400."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiproxy.errors import ProxyError
from aiproxy.providers.gemini.client import model_path
from aiproxy.providers.modelmap import load_model_map
from aiproxy.providers.modelnames import ModelName, check_gemini_model_id, parse_model_name


@pytest.mark.parametrize(("name", "provider", "bare"), [
    ("gpt-4o", None, "gpt-4o"),
    ("gemini-2.5-flash", None, "gemini-2.5-flash"),
    ("gemini/gemini-2.5-flash", "gemini", "gemini-2.5-flash"),
    ("models/gemini-2.5-flash", "models", "gemini-2.5-flash"),
    ("openai/gpt-4o-mini", "openai", "gpt-4o-mini"),
    ("llama3.2:latest", None, "llama3.2:latest"),
    ("My_Model.v2", None, "My_Model.v2"),
    ("a", None, "a"),
    ("x" * 128, None, "x" * 128),
    ("p" * 32 + "/m", "p" * 32, "m"),
    ("my-provider_2/Some.Model:tag", "my-provider_2", "Some.Model:tag"),
    ("gemini-2.5-flash:generateContent", None, "gemini-2.5-flash:generateContent"),  # a 400 later, as a Gemini id
])  # fmt: skip
def test_names_that_fit_the_pattern(name: str, provider: str | None, bare: str) -> None:
    assert parse_model_name(name) == ModelName(provider, bare)


@pytest.mark.parametrize("name", [
    "", " ", "gpt 4", "gpt-4\n", "gpt-4\r\nX-Injected: 1", "gemini-2.5-flash:generateContent#",
    "gemini-2.5-flash?alt=json", "gemini-2.5-flash#x", "gemini/gemini-2.5-flash/extra", "/gemini-2.5-flash",
    "gemini/", "../gemini-2.5-flash", "gemini-../../x/y", "gemini-x?key=1", "gemini-2.5-flash%2Fx",
    "-leading-dash", ".hidden", ":tag", "x" * 129, "p" * 33 + "/m", "Gemini/gemini-2.5-flash",
    "gemini-2.5-flash\x00", "gemini-2.5-flash\x1b[2K", "gémini", "gemini-2.5-flash\u2028", 42, None, ["gpt-4"],
])  # fmt: skip
def test_anything_else_is_a_400_on_param_model(name: object) -> None:
    with pytest.raises(ProxyError) as info:
        parse_model_name(name)
    err = info.value
    assert (err.status, err.type, err.param) == (400, "invalid_request_error", "model")


@pytest.mark.parametrize(("model_id", "ok"), [
    ("gemini-2.5-flash", True), ("gemini-embedding-001", True), ("gemma-3-27b-it", True), ("learnlm-2.0", True),
    ("gemini-2.5-flash:generateContent", False), ("Gemini-2.5-flash", False), ("gemini_2", False),
    ("-gemini", False), ("", False),
])  # fmt: skip
def test_gemini_model_ids(model_id: str, ok: bool) -> None:
    if ok:
        assert check_gemini_model_id(model_id) == model_id
    else:
        with pytest.raises(ProxyError) as info:
            check_gemini_model_id(model_id)
        assert (info.value.status, info.value.param) == (400, "model")


@pytest.mark.parametrize(("name", "target"), [
    ("gemini/gemini-2.5-flash", "gemini-2.5-flash"), ("models/gemini-2.5-flash", "gemini-2.5-flash"),
    ("gemini/gpt-4", "gemini-2.5-pro"),
])  # fmt: skip
def test_gemini_prefixes_route_to_gemini(name: str, target: str) -> None:
    assert load_model_map().resolve_chat(name) == target


@pytest.mark.parametrize("name",
                         ["openai/gpt-4o", "anthropic/claude-3-5-sonnet", "models/gpt-4", "ollama/llama3.2:latest"])
def test_other_providers_are_404_until_they_exist(name: str) -> None:
    with pytest.raises(ProxyError) as info:
        load_model_map().resolve_chat(name)
    assert (info.value.status, info.value.code, info.value.param) == (404, "model_not_found", "model")


@pytest.mark.parametrize("resolve", ["resolve_chat", "resolve_embedding"])
@pytest.mark.parametrize("name", ["gemini-2.5-flash:generateContent", "gemini-embedding-001:countTokens",
                                  "models/gemini-2.5-flash:streamGenerateContent", "gemini-x?key=1"])
def test_a_resolved_id_that_is_not_a_gemini_id_is_a_400(resolve: str, name: str) -> None:
    with pytest.raises(ProxyError) as info:
        getattr(load_model_map(), resolve)(name)
    assert (info.value.status, info.value.param) == (400, "model")


def test_a_models_file_target_must_be_a_gemini_id(tmp_path: Path) -> None:
    f = tmp_path / "models.toml"
    f.write_text('[chat]\n"house" = "gemini-2.5-flash:generateContent"\n')
    with pytest.raises(ValueError, match="house"):
        load_model_map(f)


@pytest.mark.parametrize(("model", "path"), [
    ("gemini-2.5-flash", "models/gemini-2.5-flash:streamGenerateContent"),
    ("gemini-2.5-flash:generateContent#", "models/gemini-2.5-flash%3AgenerateContent%23:streamGenerateContent"),
    ("a/b?c", "models/a%2Fb%3Fc:streamGenerateContent"),
])  # fmt: skip
def test_the_model_is_one_quoted_path_segment(model: str, path: str) -> None:
    assert model_path(model, "streamGenerateContent") == path
