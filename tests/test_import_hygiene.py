"""The package's shape, guarded: layers that only point down, no import cycle, no private name taken
from another module, a headless core.

Every import is read from the source with :mod:`ast` (lazy imports inside functions included, those
under ``if TYPE_CHECKING:`` left out), the way ``shared/tools/import_graph.py`` reads them, so this
test and that tool agree; when the tool is beside the checkout (as in CI), it is run too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "capi_diag"

LAYERS: dict[str, int] = {
    "core": 0,
    "engine": 1, "meta": 1,
    "io": 2,
    "diagnostics": 3,
    "verdict": 4,
    "report": 5,
    "api": 6,
    "testevents": 7, "standins": 7, "monitor": 7,
    "rehearsal": 8, "shop": 8,
    "cli": 9, "ui": 9,
    # documented import paths kept for users' scripts: nothing in the package imports them
    "normalize": 10, "rules": 10, "sample": 10, "graph": 10, "__main__": 10,
}
"""Each part of ``capi_diag`` and its layer: a module may import its own part and lower layers only."""

ONLY: dict[str, set[str]] = {"core": set(), "meta": {"core"}, "standins": {"core", "meta"}}
"""Parts with a narrower rule than their layer: Meta's client and the stand-ins depend on the core."""


def _modules() -> dict[str, Path]:
    mods = {}
    for p in PACKAGE.rglob("*.py"):
        parts = list(p.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = p
    return mods


MODULES = _modules()


def _resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _skipped(tree: ast.AST) -> set[int]:
    """Nodes under ``if TYPE_CHECKING:`` (types only: no import at run time)."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            t = node.test
            if (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
                    isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"):
                skip |= {id(sub) for sub in ast.walk(node)}
    return skip


def _graph() -> tuple[dict[str, set[str]], list[str]]:
    """Edges between project modules, and the private names taken across modules."""
    edges: dict[str, set[str]] = {m: set() for m in MODULES}
    private: list[str] = []
    for mod, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = _skipped(tree)
        base = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        aliases: dict[str, str] = {}
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.startswith("capi_diag"):
                        target = _resolve(a.name)
                        if target and target != mod:
                            edges[mod].add(target)
                        if a.asname:
                            aliases[a.asname] = a.name
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    b = base
                    for _ in range(node.level - 1):
                        b = b.rpartition(".")[0]
                    src = f"{b}.{node.module}" if node.module else b
                else:
                    src = node.module or ""
                if not src.startswith("capi_diag"):
                    continue
                for a in node.names:
                    full = f"{src}.{a.name}"
                    target = _resolve(full) if full in MODULES else _resolve(src)
                    if target and target != mod:
                        edges[mod].add(target)
                    if full in MODULES:
                        aliases[a.asname or a.name] = full
                    elif a.name.startswith("_") and not a.name.startswith("__") and _resolve(src) != mod:
                        private.append(f"{mod} imports {src}.{a.name}")
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and node.attr.startswith("_") and not node.attr.startswith("__")
                    and aliases[node.value.id] != mod):
                private.append(f"{mod} uses {aliases[node.value.id]}.{node.attr}")
    return edges, sorted(set(private))


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), except a package with its own
    submodules (a package's face importing what it presents)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in MODULES:
        if v not in index:
            visit(v)
    return [c for c in found if not all(x == c[0] or x.startswith(c[0] + ".") for x in c)]


def _part(mod: str) -> str | None:
    """``capi_diag.engine.db`` -> ``engine``; the root package itself -> None (it imports nothing)."""
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 else None


EDGES, PRIVATE = _graph()


def test_hygiene_every_part_of_the_package_has_a_layer() -> None:
    parts = {_part(m) for m in MODULES} - {None}
    assert parts <= set(LAYERS), f"a new part of capi_diag needs a layer in LAYERS: {sorted(parts - set(LAYERS))}"


def test_hygiene_no_import_cycle() -> None:
    assert _cycles(EDGES) == []


def test_hygiene_no_private_name_taken_across_modules() -> None:
    assert PRIVATE == []


def test_hygiene_imports_point_down_the_layers() -> None:
    up = []
    for mod, targets in EDGES.items():
        src = _part(mod)
        for target in targets:
            dst = _part(target)
            if src is None or dst is None or dst == src:
                continue
            if src in ONLY and dst not in ONLY[src]:
                up.append(f"{mod} -> {target} ({src} may import only {sorted(ONLY[src]) or 'nothing of the project'})")
            elif LAYERS[dst] >= LAYERS[src]:
                up.append(f"{mod} -> {target} ({src}, layer {LAYERS[src]}, imports {dst}, layer {LAYERS[dst]})")
    assert up == []


def test_hygiene_root_package_imports_nothing_of_the_project() -> None:
    assert EDGES["capi_diag"] == set()


def test_hygiene_each_package_docstring_says_its_role_and_what_it_may_import() -> None:
    missing = []
    for mod, path in MODULES.items():
        if path.name != "__init__.py" or _part(mod) in (None, "graph") or mod.count(".") > 1:
            continue
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        if not doc or "may import" not in doc.lower():
            missing.append(mod)
    assert missing == []


def test_hygiene_streamlit_only_in_ui() -> None:
    found = []
    for mod, path in MODULES.items():
        if _part(mod) == "ui":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n == "streamlit" or n.startswith("streamlit.") for n in names):
                found.append(mod)
    assert found == []


def test_hygiene_dashboard_session_works_without_streamlit(tmp_path: Path) -> None:
    """The dashboard's session object is plain Python: importable and usable with Streamlit absent."""
    code = (
        "import sys\n"
        "sys.modules['streamlit'] = None  # any import of streamlit now fails\n"
        "from capi_diag.io.ingest import Source\n"
        "from capi_diag.ui import session\n"
        "ws = session.import_workspace([Source('b.csv', data=b'event_name,event_id,event_time\\n"
        "Purchase,1,1795000000\\n')], [Source('s.csv', data=b'event_name,event_id,event_time,action_source\\n"
        "Purchase,1,1795000001,website\\n')])\n"
        "try:\n"
        "    print(ws.analysis().report['dedup']['paired'], ws.analysis().rows)\n"
        "finally:\n"
        "    ws.close()\n"
        "assert sys.modules['streamlit'] is None\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[0] == "1 {'browser': 1, 'server': 1}"


@pytest.mark.skipif(not (ROOT.parent / "shared" / "tools" / "import_graph.py").is_file(),
                    reason="the shared import_graph.py tool is not beside this checkout")
def test_hygiene_agrees_with_the_shared_import_graph_tool() -> None:
    tool = ROOT.parent / "shared" / "tools" / "import_graph.py"
    r = subprocess.run([sys.executable, str(tool), str(ROOT)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout
    modules, imports = (int(x) for x in r.stdout.strip().splitlines()[-1].split()[0:3:2])
    assert (modules, imports) == (len(MODULES), sum(len(e) for e in EDGES.values()))
