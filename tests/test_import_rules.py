"""The pure core never imports I/O or GUI libraries (DESIGN.md, house style 1)."""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
PURE = [
    "core/config.py",
    "core/config_parse.py",
    "core/config_yaml.py",
    "core/routing.py",
    "core/health.py",
    "core/ratelimit.py",
    "core/failover.py",
    "core/sse.py",
    "core/headers.py",
    "core/pipes.py",
    "core/settle.py",
    "core/state.py",
    "core/snapshot.py",
    "core/dialects/base.py",
    "core/dialects/scan.py",
    "core/dialects/anthropic.py",
    "core/dialects/openai_chat.py",
    "core/dialects/openai_responses.py",
    "core/dialects/gemini.py",
    "core/dialects/registry.py",
]
IO_LIBS = {"trio", "httpx", "httpcore", "pystray", "PIL", "watchfiles", "anyio"}
GUI_LIBS = {"pystray", "PIL", "tkinter", "gi"}


def imported_roots(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text())
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_pure_modules_import_no_io() -> None:
    checked = 0
    for rel in PURE + [str(p.relative_to(ROOT)) for p in (ROOT / "core/translate").glob("*.py")]:
        path = ROOT / rel
        if path.exists():
            checked += 1
            assert not (imported_roots(path) & IO_LIBS), rel
    assert checked >= 1


def test_core_never_imports_gui() -> None:
    for path in (ROOT / "core").rglob("*.py"):
        assert not (imported_roots(path) & GUI_LIBS), path
