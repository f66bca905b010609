"""The layout's rules, checked on the source: no import circles among genrecnn's
modules (imports inside functions included), the engine never imports the music
side or the application, nothing imports the CLI, no module over 400 lines, no
function over 60, and every CUDA source file in one place only."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"genrecnn": ROOT / "core", "genrecnn.backends": ROOT / "backends",
           "genrecnn.cli": ROOT / "cli"}
MAX_LINES = 400            # a module
MAX_FUNCTION_LINES = 60    # a function or method, from its ``def`` to its last line


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


def test_the_layout_is_found(graph):
    """The rules below would pass vacuously on an empty or partial module list."""
    assert {"genrecnn.engine.network", "genrecnn.backends.numpy_backend",
            "genrecnn.cli.main"} <= set(graph)
    assert graph["genrecnn.engine.network"], "imports are not being read"


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


def test_no_module_is_over_the_line_limit():
    long = {str(p.relative_to(ROOT)): n for p in _modules().values()
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def long_functions(path: Path, limit: int = MAX_FUNCTION_LINES) -> dict[str, int]:
    """{qualified name: lines} of the functions and methods in ``path`` over ``limit``."""
    found = {}

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    lines = child.end_lineno - child.lineno + 1
                    if lines > limit:
                        found[name] = lines
                visit(child, name + ".")
            else:
                visit(child, prefix)

    visit(ast.parse(path.read_text()), "")
    return found


def test_no_function_is_over_the_line_limit():
    long = {f"{p.relative_to(ROOT)}:{name}": n for p in _modules().values()
            for name, n in long_functions(p).items()}
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def _function(name: str, lines: int, indent: str = "") -> str:
    body = "".join(f"{indent}    x{i} = {i}\n" for i in range(lines - 1))
    return f"{indent}def {name}():\n{body}"


def test_the_function_limit_counts_nested_functions_and_methods(tmp_path):
    n = MAX_FUNCTION_LINES
    src = tmp_path / "m.py"
    src.write_text("class A:\n" + _function("m", n + 1, "    ") + _function("at_limit", n)
                   + "def outer():\n" + _function("inner", n + 1, "    "))
    assert long_functions(src) == {"A.m": n + 1, "outer": n + 2, "outer.inner": n + 1}


def cu_files_by_name(root: Path) -> dict[str, list[str]]:
    """{file name: [paths]} of every .cu file in the repository (hidden folders such as
    git's own and virtual envs, build output aside)."""
    skip = {"build", "dist", "node_modules"}
    found: dict[str, list[str]] = {}
    for path in sorted(root.rglob("*.cu")):
        rel = path.relative_to(root)
        hidden = any(p.startswith(".") for p in rel.parts[:-1])
        if not hidden and not skip & set(rel.parts) and \
                not any(p.endswith(".egg-info") for p in rel.parts):
            found.setdefault(path.name, []).append(str(rel))
    return found


def test_every_cuda_file_name_is_in_one_place():
    """Both GPU backends launch the same kernels: one copy of each .cu file, not two that
    drift apart."""
    twice = {n: paths for n, paths in cu_files_by_name(ROOT).items() if len(paths) > 1}
    assert cu_files_by_name(ROOT), "no .cu files found: the repository root is wrong"
    assert not twice, f".cu files under one name in several places: {twice}"


def test_the_cuda_file_check_sees_copies(tmp_path):
    for folder in ("a", "b", ".venv"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "pool.cu").write_text("")
    (tmp_path / "a" / "conv.cu").write_text("")
    assert cu_files_by_name(tmp_path) == {"conv.cu": ["a/conv.cu"],
                                          "pool.cu": ["a/pool.cu", "b/pool.cu"]}
