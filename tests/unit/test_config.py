"""Settings: validated once at start; a missing key or bad value is one clear line and exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiproxy.__main__ import main
from aiproxy.config import GOOGLE_BASE_URL, ConfigError, load_settings


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No aiproxy variables in the environment and an empty working directory (no .env)."""
    for name in ("GEMINI_API_KEY", "GEMINI_BASE_URL", "HOST", "PORT", "LOG_LEVEL", "LOG_FORMAT",
                 "CORS_ALLOWED_ORIGINS", "MODELS_FILE", "PRICING_FILE", "DEMO", "UPSTREAM_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_defaults() -> None:
    s = load_settings({"GEMINI_API_KEY": "secret-key-zzz"})
    assert (s.host, s.port, s.log_level, s.gemini_base_url) == ("127.0.0.1", 8002, "INFO", GOOGLE_BASE_URL)
    assert s.cors_origins == ["http://localhost:3000", "http://localhost:8080"]
    assert s.gemini_key == "secret-key-zzz"
    assert "secret-key-zzz" not in repr(s)


def test_missing_key_message() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({})
    assert "GEMINI_API_KEY environment variable is required" in str(info.value)
    assert "make demo" in str(info.value)


def test_missing_key_is_fine_for_demo() -> None:
    assert load_settings({}, require_key=False).gemini_key == ""


def test_missing_key_exits_2_with_the_hint(clean_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "GEMINI_API_KEY environment variable is required" in err and "make demo" in err


@pytest.mark.parametrize(("env", "name"), [
    ({"PORT": "eighty"}, "PORT"),
    ({"PORT": "70000"}, "PORT"),
    ({"LOG_LEVEL": "chatty"}, "LOG_LEVEL"),
    ({"GEMINI_BASE_URL": "ftp://x"}, "GEMINI_BASE_URL"),
    ({"UPSTREAM_TIMEOUT": "-1"}, "UPSTREAM_TIMEOUT"),
    ({"UPSTREAM_ANSWER_TIMEOUT": "0"}, "UPSTREAM_ANSWER_TIMEOUT"),
    ({"UPSTREAM_ANSWER_TIMEOUT": "ten minutes"}, "UPSTREAM_ANSWER_TIMEOUT"),
    ({"UPSTREAM_ANSWER_TIMEOUT": "1e400"}, "UPSTREAM_ANSWER_TIMEOUT"),
    ({"UPSTREAM_TIMEOUT": "nan"}, "UPSTREAM_TIMEOUT"),
    ({"RESPONSE_CACHE_TTL": "inf"}, "RESPONSE_CACHE_TTL"),
    ({"MODELS_FILE": "/nonexistent/models.toml"}, "MODELS_FILE"),
])
def test_invalid_setting_is_one_line_naming_it(env: dict[str, str], name: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({"GEMINI_API_KEY": "k", **env})
    message = str(info.value)
    assert message.startswith(f"invalid setting {name}:") and "\n" not in message


def test_invalid_setting_exits_2_without_traceback(clean_env: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "k")
    monkeypatch.setenv("PORT", "eighty")
    assert main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: invalid setting PORT:") and err.count("\n") == 1


def test_unknown_command_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate"]) == 2
    assert "unknown command" in capsys.readouterr().err


def test_dotenv_is_read_from_the_working_directory(clean_env: Path) -> None:
    (clean_env / ".env").write_text("GEMINI_API_KEY=from-dotenv\nPORT=9123\nlog_level=debug\n")
    s = load_settings()
    assert (s.gemini_key, s.port, s.log_level) == ("from-dotenv", 9123, "DEBUG")


def test_environment_beats_dotenv(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (clean_env / ".env").write_text("GEMINI_API_KEY=from-dotenv\nPORT=9123\n")
    monkeypatch.setenv("PORT", "9999")
    assert load_settings().port == 9999


def test_explicit_env_ignores_dotenv(clean_env: Path) -> None:
    (clean_env / ".env").write_text("GEMINI_API_KEY=from-dotenv\n")
    with pytest.raises(ConfigError):
        load_settings({})


@pytest.mark.parametrize(("raw", "origins"), [
    ("https://app.example.com", ["https://app.example.com"]),
    (" http://a:1 , http://b:2,,", ["http://a:1", "http://b:2"]),
    ("", []),
])
def test_cors_list(raw: str, origins: list[str]) -> None:
    assert load_settings({"GEMINI_API_KEY": "k", "CORS_ALLOWED_ORIGINS": raw}).cors_origins == origins


def test_base_url_trailing_slash_is_dropped() -> None:
    assert load_settings({"GEMINI_API_KEY": "k", "GEMINI_BASE_URL": "http://127.0.0.1:9/"}).gemini_base_url == "http://127.0.0.1:9"


@pytest.mark.parametrize(("argv", "env", "demo"), [
    (["demo"], {}, True),
    ([], {"DEMO": "true"}, True),
    (["serve"], {"GEMINI_API_KEY": "k"}, False),
])
def test_demo_mode_comes_from_the_command_or_the_setting(clean_env: Path, monkeypatch: pytest.MonkeyPatch,
                                                         argv: list[str], env: dict[str, str], demo: bool) -> None:
    import aiproxy.server.serve

    calls: list[bool] = []
    monkeypatch.setattr(aiproxy.server.serve, "serve", lambda settings, demo=False: calls.append(demo))
    monkeypatch.setattr("aiproxy.__main__.setup_logging", lambda *args: None)  # keep pytest's log capture
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(argv) == 0
    assert calls == [demo]


def test_env_example_loads_as_shipped(clean_env: Path) -> None:
    """A fresh `cp .env.example .env` must start (in demo mode, since the key is blank)."""
    example = Path(__file__).resolve().parents[2] / ".env.example"
    (clean_env / ".env").write_text(example.read_text())
    s = load_settings(require_key=False)
    assert (s.models_file, s.pricing_file, s.gemini_key, s.port) == (None, None, "", 8002)
    with pytest.raises(ConfigError, match="GEMINI_API_KEY environment variable is required"):
        load_settings()


def test_env_example_documents_every_setting() -> None:
    from aiproxy.config import Settings

    example = (Path(__file__).resolve().parents[2] / ".env.example").read_text()
    documented = {line.split("=", 1)[0].lower() for line in example.splitlines() if line and not line.startswith("#")}
    assert documented == set(Settings.model_fields)
