"""The runtime dependency list is what the running proxy imports, and README names each one."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _names(path: Path) -> set[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return {re.split(r"[=<>;\[ ]", line, maxsplit=1)[0].lower() for line in lines if line and not line.startswith("-")}


def _install_requires() -> set[str]:
    block = ROOT.joinpath("setup.cfg").read_text().split("install_requires =", 1)[1].split("\n\n", 1)[0]
    return {re.split(r"[=<>;\[ ]", line.strip(), maxsplit=1)[0].lower() for line in block.splitlines() if line.strip()}


def test_google_genai_is_a_test_dependency_only() -> None:
    runtime, dev = _names(ROOT / "requirements.txt"), _names(ROOT / "requirements-dev.txt")
    assert "google-genai" not in runtime and "google-genai" not in _install_requires()
    assert {"google-genai", "aioresponses-ng"} <= dev
    assert _install_requires() == runtime  # setup.cfg and requirements.txt name the same packages


def test_readme_names_every_runtime_dependency() -> None:
    readme = ROOT.joinpath("README.md").read_text()
    runtime_section = readme.split("Runtime (`requirements.txt`", 1)[1].split("Tests only", 1)[0]
    documented = {name.lower() for name in re.findall(r"^- \*\*([\w.-]+)\*\*", runtime_section, re.M)}
    assert documented == _names(ROOT / "requirements.txt")


def test_every_module_imports_without_google_genai() -> None:
    code = (
        "import importlib, pkgutil, sys\n"
        "sys.modules['google.genai'] = None  # any import of it now fails\n"
        "import aiproxy\n"
        "for mod in pkgutil.walk_packages(aiproxy.__path__, 'aiproxy.'):\n"
        "    if not mod.name.endswith('__main__'):\n"
        "        importlib.import_module(mod.name)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
