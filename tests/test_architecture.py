"""The layout's rules, checked on the source: no import circles among genrecnn's
modules (imports inside functions included), the engine never imports the music
side or the application, nothing imports the CLI, and no module over 450 lines."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"genrecnn": ROOT / "core", "genrecnn.backends": ROOT / "backends",
           "genrecnn.cli": ROOT / "cli"}
MAX_LINES = 450


def _modules() -> dict[str, Path]:
    out = {}
    for pkg, folder in FOLDERS.items():
        for path in folder.rglob("*.py"):
            rel = path.relative_to(folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            out[".".join([pkg, *parts])] = path
    return out


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """genrecnn modules ``name`` imports (resolving relative imports, any depth)."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            subs = [f"{base}.{a.name}" for a in node.names]
            # "from pkg import sub" needs the submodule; the package only for other names
            targets = subs + ([base] if any(s not in known for s in subs) else [])
        else:
            continue
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


@pytest.fixture(scope="module")
def graph():
    mods = _modules()
    return {name: _imports(name, path, set(mods)) for name, path in mods.items()}


def test_no_import_circles(graph):
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycle = stack[stack.index(nxt):] + [nxt]
                pytest.fail("import circle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_the_engine_knows_nothing_of_music_or_the_job(graph):
    bad = [(a, b) for a, deps in graph.items() if a.startswith("genrecnn.engine")
           for b in deps if b.startswith(("genrecnn.music", "genrecnn.run", "genrecnn.cli"))]
    assert not bad, bad
    into_cli = [(a, b) for a, deps in graph.items() if not a.startswith("genrecnn.cli")
                for b in deps if b.startswith("genrecnn.cli") and a != "genrecnn.__main__"]
    assert not into_cli, into_cli


def test_no_module_is_over_450_lines():
    long = {str(p.relative_to(ROOT)): n for p in _modules().values()
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, long
