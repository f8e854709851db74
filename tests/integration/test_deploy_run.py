"""Each deploy file run the way its runtime would, as far as this machine allows (issue 11 items 6, 8).

The package is built as a wheel and installed with `pip install --no-deps --target` (its
dependencies come from the test venv via the same interpreter), so every run below uses the
*installed* `aiproxy` command with its packaged data files, from a working directory outside the
repository — as the systemd unit and the Docker image do.

- systemd: the unit's ExecStart, Environment= lines (specifiers %S/%t expanded into a temporary
  root), its EnvironmentFile (written here, as the operator would, and winning over Environment=
  as in systemd), WorkingDirectory, RuntimeDirectory/StateDirectory created empty with
  $RUNTIME_DIRECTORY/$STATE_DIRECTORY set, and a notify socket expecting READY=1. Not emulated:
  DynamicUser and the sandbox directives (no systemd manager runs here).
- Dockerfile: the runtime stage's ENV, WORKDIR and CMD; its HEALTHCHECK command run against the
  process. Docker's port mapping is played by choosing free loopback ports (HOST=127.0.0.1).
- docker-compose.yml: the aiproxy service's environment over the image's ENV, with the service
  names `postgres` and `redis` pointed at the local servers (a fresh schema, a random key prefix).
Each must serve a chat request.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
import yaml
from aiohttp.test_utils import TestServer

from aiproxy.server.serve import free_port
from tests.conftest import EMULATOR_KEY, emulator_url
from tests.integration.opshelp import chat
from tests.integration.procs import ProxyProcess, wait_healthy
from tests.integration.test_lifecycle import NotifySocket
from tests.unit.test_deploy_files import instructions, unit_settings

ROOT = Path(__file__).resolve().parents[2]
PG_ROOT = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`pip wheel` of a clean copy of the sources, installed into its own --target directory."""
    work = tmp_path_factory.mktemp("package")
    src = work / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.cfg", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "aiproxy", src / "aiproxy", ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(work / "dist"),
                    str(src)], check=True, capture_output=True, timeout=300)
    wheel = next((work / "dist").glob("aiproxy-*.whl"))
    target = work / "site"
    subprocess.run([*pip, "install", "--no-deps", "--no-index", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    return target


def base_env(target: Path) -> dict[str, str]:
    """A clean environment, like a service manager's: PATH, and the installed package's path."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(target), "LANG": "C.UTF-8"}


def start(argv: list[str], env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


@pytest.fixture
def processes() -> Iterator[list[ProxyProcess]]:
    started: list[ProxyProcess] = []
    yield started
    for p in started:
        p.kill()


async def ready_or_exit(notify: NotifySocket, p: ProxyProcess) -> None:
    """READY=1 on the notify socket, as systemd waits for it; fails at once if the process exits."""
    ready = asyncio.ensure_future(notify.expect("READY=1", within=30))
    exited = asyncio.ensure_future(p.wait(within=30))
    done, pending = await asyncio.wait({ready, exited}, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    assert ready in done and not ready.exception(), f"no READY=1:\n{p.log[-3000:]}"


async def serves_a_chat(p: ProxyProcess) -> None:
    async with aiohttp.ClientSession() as http:
        answer = await chat(http, p.url, stream=False, words=3)
        assert answer.status == 200, answer.body
        assert answer.json()["usage"]["completion_tokens"] > 0


async def serves_the_dashboard_files(p: ProxyProcess) -> None:
    """The dashboard's page and static files are package data: the wheel must carry them."""
    async with aiohttp.ClientSession() as http:
        for path in ("/dashboard", "/dashboard/static/dashboard.js", "/dashboard/static/dashboard.css"):
            async with http.get(f"{p.url}{path}") as resp:
                assert resp.status == 200, (path, await resp.text())


async def stop(p: ProxyProcess) -> None:
    p.signal(signal.SIGTERM)
    assert await p.wait() == 0, p.log[-3000:]


# --- pip: the installed command and `python -m aiproxy`, outside the repository ---

@pytest.mark.parametrize("how", ["aiproxy", "python -m aiproxy"])
async def test_installed_package_runs_outside_the_repo(how: str, installed: Path, tmp_path: Path,
                                                       emulator: TestServer, processes: list[ProxyProcess]) -> None:
    env = base_env(installed)
    probe = subprocess.run([sys.executable, "-c", "import aiproxy.config as c; print(c.DATA_DIR)"], cwd=tmp_path,
                           env=env, capture_output=True, text=True, check=True)
    data_dir = Path(probe.stdout.strip())
    assert data_dir.is_relative_to(installed)
    assert {"models.toml", "pricing.toml"} <= {f.name for f in data_dir.iterdir()}
    port = free_port()
    env.update({"GEMINI_API_KEY": EMULATOR_KEY, "GEMINI_BASE_URL": emulator_url(emulator), "PORT": str(port)})
    argv = [str(installed / "bin" / "aiproxy")] if how == "aiproxy" else [sys.executable, "-m", "aiproxy"]
    p = ProxyProcess(start(argv, env, tmp_path, tmp_path / "out.log"), port, tmp_path / "out.log", env)
    processes.append(p)
    await wait_healthy(p)
    await serves_a_chat(p)
    await serves_the_dashboard_files(p)
    await stop(p)
    assert (tmp_path / "data" / "usage.db").is_file()  # the default ledger, relative to the working directory


# --- systemd ---

def expand_specifiers(value: str, root: Path) -> str:
    """%S, %t (and %%) as systemd expands them for a system unit, under a temporary root."""
    table = {"S": str(root / "var/lib"), "t": str(root / "run"), "%": "%"}
    return re.sub(r"%(.)", lambda m: table[m.group(1)], value)


async def test_systemd_unit_starts_as_shipped(installed: Path, tmp_path: Path, emulator: TestServer,
                                              processes: list[ProxyProcess]) -> None:
    unit = unit_settings((ROOT / "deploy" / "aiproxy.service").read_text())
    root = tmp_path / "root"
    env = base_env(installed)
    for line in unit.get("Environment", []):
        for assignment in shlex.split(line):
            key, _, value = assignment.partition("=")
            env[key] = expand_specifiers(value, root)
    for name, base, var in (("RuntimeDirectory", "run", "RUNTIME_DIRECTORY"),
                            ("StateDirectory", "var/lib", "STATE_DIRECTORY")):
        path = root / base / unit[name][0]
        path.mkdir(parents=True, mode=0o700)  # created empty by systemd before ExecStart
        env[var] = str(path)
    # The operator's EnvironmentFile (the unit requires it); systemd applies it after Environment=.
    port, ops_port = free_port(), free_port()
    env_file = {"GEMINI_API_KEY": EMULATOR_KEY, "GEMINI_BASE_URL": emulator_url(emulator), "PORT": str(port),
                "OPS_PORT": str(ops_port)}
    assert unit["EnvironmentFile"] == ["/etc/aiproxy/aiproxy.env"]
    env.update(env_file)
    notify = NotifySocket(tmp_path / "notify.sock")
    env["NOTIFY_SOCKET"] = notify.path
    argv = shlex.split(unit["ExecStart"][0])
    venv_bin = "/opt/aiproxy/.venv/bin/"
    assert argv[0].startswith(venv_bin), "the unit runs the installed `aiproxy` command"
    argv[0] = str(installed / "bin" / argv[0][len(venv_bin):])
    cwd = Path(expand_specifiers(unit["WorkingDirectory"][0], root))
    p = ProxyProcess(start(argv, env, cwd, tmp_path / "unit.log"), port, tmp_path / "unit.log", env)
    processes.append(p)
    try:
        await ready_or_exit(notify, p)
        await wait_healthy(p, base=f"http://127.0.0.1:{ops_port}")
        await serves_a_chat(p)
        await stop(p)
    finally:
        notify.close()
    state = Path(env["STATE_DIRECTORY"])
    assert (state / "usage.db").is_file()  # the SQLite ledger lives in StateDirectory
    assert (Path(env["RUNTIME_DIRECTORY"]) / "metrics").is_dir()


# --- Docker image and compose stack ---

def runtime_stage() -> list[tuple[str, str]]:
    ins = instructions((ROOT / "Dockerfile").read_text())
    last_from = max(i for i, (word, _) in enumerate(ins) if word == "FROM")
    return ins[last_from:]


def image_env(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for word, args in stage:
        if word == "ENV":
            for assignment in shlex.split(args):
                key, _, value = assignment.partition("=")
                env[key] = value
    env.pop("PATH")  # /opt/venv/bin first: the venv is played by the --target install
    return env


def exec_form(stage: list[tuple[str, str]], word: str) -> list[str]:
    args = next(a for w, a in stage if w == word)
    if word == "HEALTHCHECK":
        args = args[args.index("CMD") + 3:].strip()
    return json.loads(args)


def image_command(argv: list[str], installed: Path) -> list[str]:
    """The image's PATH finds `aiproxy` and `python` in /opt/venv/bin; here the same ones."""
    first = {"aiproxy": str(installed / "bin" / "aiproxy"), "python": sys.executable}[argv[0]]
    return [first, *argv[1:]]


async def run_image(installed: Path, tmp_path: Path, env_over: dict[str, str], emulator: TestServer,
                    processes: list[ProxyProcess]) -> tuple[ProxyProcess, dict[str, str], list[tuple[str, str]]]:
    stage = runtime_stage()
    workdir = next(a for w, a in stage if w == "WORKDIR")
    cwd = tmp_path / workdir.lstrip("/")
    (cwd / "data").mkdir(parents=True)  # RUN mkdir -p /app/data
    assert "mkdir -p /app/data" in " ".join(a for w, a in stage if w == "RUN")
    env = {**base_env(installed), **image_env(stage), **env_over}
    port, ops_port = free_port(), free_port()
    # Docker's own network namespace and port mapping, played by loopback and free ports.
    env.update({"HOST": "127.0.0.1", "PORT": str(port), "OPS_PORT": str(ops_port),
                "GEMINI_API_KEY": EMULATOR_KEY, "GEMINI_BASE_URL": emulator_url(emulator)})
    argv = image_command(exec_form(stage, "CMD"), installed)
    p = ProxyProcess(start(argv, env, cwd, tmp_path / "image.log"), port, tmp_path / "image.log", env)
    processes.append(p)
    await wait_healthy(p, base=f"http://127.0.0.1:{ops_port}")
    return p, env, stage


async def test_docker_image_env_and_cmd_serve_and_pass_the_healthcheck(
        installed: Path, tmp_path: Path, emulator: TestServer, processes: list[ProxyProcess]) -> None:
    p, env, stage = await run_image(installed, tmp_path, {}, emulator, processes)
    assert env["OPS_PORT"] and image_env(stage)["OPS_PORT"], "the image uses an ops port"
    check = await asyncio.to_thread(subprocess.run, image_command(exec_form(stage, "HEALTHCHECK"), installed),
                                    env=env, capture_output=True, timeout=10)
    assert check.returncode == 0, check.stderr
    await serves_a_chat(p)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{p.url}/metrics") as resp:
            assert resp.status == 404  # /metrics only on the ops port
    await stop(p)


def interpolate(value: str) -> str:
    """Compose's ${VAR:-default} with VAR unset (no .env here)."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


@pytest.fixture
async def pg_schema() -> AsyncIterator[str]:
    from tests.ledger.conftest import drop_schema

    schema = f"t_deploy_{uuid.uuid4().hex[:10]}"
    yield schema
    await drop_schema(schema)


@pytest.mark.postgres
@pytest.mark.redis
async def test_compose_environment_serves(installed: Path, tmp_path: Path, emulator: TestServer, pg_schema: str,
                                          processes: list[ProxyProcess]) -> None:
    import asyncpg

    service = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["aiproxy"]
    env = {key: interpolate(str(value)) for key, value in service["environment"].items()}
    # The service names resolve to the local servers here; a fresh schema and key prefix per test.
    assert re.match(r"postgresql://aiproxy:aiproxy@postgres:5432/aiproxy$", env["USAGE_DB_URL"])
    env["USAGE_DB_URL"] = f"{PG_ROOT}?schema={pg_schema}"
    assert env["REDIS_URL"] == "redis://redis:6379/0"
    env["REDIS_URL"] = "redis://127.0.0.1:6379/0"
    env["REDIS_KEY_PREFIX"] = f"t-deploy-{uuid.uuid4().hex[:8]}:"
    assert env["OPS_PORT"] and env["TRUSTED_PROXIES"]
    p, _, _ = await run_image(installed, tmp_path, env, emulator, processes)
    await serves_a_chat(p)
    await stop(p)
    conn = await asyncpg.connect(PG_ROOT)
    try:
        assert await conn.fetchval(f'SELECT count(*) FROM "{pg_schema}".usage') == 1
    finally:
        await conn.close()
