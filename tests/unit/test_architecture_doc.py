"""docs/architecture.md stays true: every `aiproxy/...` path and `aiproxy.x.y` name it mentions exists."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"

PATH = re.compile(r"\baiproxy/[\w./-]*")
DOTTED = re.compile(r"\baiproxy(?:\.[A-Za-z_]\w*)+")


def named_paths(text: str) -> set[str]:
    return {m.group().rstrip(".") for m in PATH.finditer(text)}


def named_objects(text: str) -> set[str]:
    return {m.group() for m in DOTTED.finditer(text)}


def path_exists(path: str) -> bool:
    return (ROOT / path).exists()


def object_exists(dotted: str) -> bool:
    """The longest importable module prefix, then attributes (classes, functions, methods)."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def test_every_path_and_name_in_the_architecture_doc_exists() -> None:
    text = DOC.read_text(encoding="utf-8")
    paths, names = named_paths(text), named_objects(text)
    assert len(paths) >= 40 and len(names) >= 20  # the extraction found the doc's references
    assert sorted(p for p in paths if not path_exists(p)) == []
    assert sorted(n for n in names if not object_exists(n)) == []


def test_a_renamed_module_or_function_is_caught() -> None:
    text = ("`aiproxy/api/chat.py` and `aiproxy/api/gone.py`; `aiproxy.app.create_app`, "
            "`aiproxy.app.create_everything` and `aiproxy.nowhere.thing`.")
    assert [p for p in sorted(named_paths(text)) if not path_exists(p)] == ["aiproxy/api/gone.py"]
    assert [n for n in sorted(named_objects(text)) if not object_exists(n)] == [
        "aiproxy.app.create_everything", "aiproxy.nowhere.thing"]
