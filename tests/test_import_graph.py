"""The package's import graph: no cycles anywhere and nothing in tether.hardware imports tether.ros.

Every import counts, the ones inside functions too (a lazy import is still a dependency: it only moves the
failure to run time). The graph is read from the source with ``ast``, so nothing is imported to check it.
Two levels: modules (``tether.ros.deploy`` -> ``tether.ros.recorder``) and top-level subpackages
(``ros`` -> ``hardware``), the level ARCHITECTURE.md orders.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "tether"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """Tether modules ``path`` imports (a ``from pkg import name`` that names a submodule counts as it)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in modules else mod for a in node.names]
        for t in targets:
            while t and t not in modules:  # `import tether.ros.types as T` -> the module itself
                t = t.rpartition(".")[0]
            if t and t != name and t.startswith("tether"):
                out.add(t)
    return out


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in ROOT.rglob("*.py")}
    modules = set(files)
    return {m: _imports(p, modules) for m, p in files.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan), each a cycle to report."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
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
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def test_hardware_never_imports_ros_and_sim_never_imports_ros() -> None:
    forbidden = {"hardware": {"ros"}, "sim": {"ros"}}
    bad = sorted(f"{m} -> {d}" for m, deps in _graph().items() for d in deps
                 if _top(d) in forbidden.get(_top(m), ()))
    assert not bad, bad


def test_no_module_import_cycles() -> None:
    assert _cycles(_graph()) == []


def test_no_subpackage_import_cycles() -> None:
    top: dict[str, set[str]] = {}
    for m, deps in _graph().items():
        top.setdefault(_top(m), set()).update(_top(d) for d in deps if _top(d) != _top(m))
    assert _cycles(top) == []


def test_the_checker_sees_function_level_imports_and_cycles(tmp_path) -> None:
    """The checker itself: a lazy import inside a function is an edge, and a two-module loop is a cycle."""
    g = {"a": {"b"}, "b": {"a"}, "c": {"a"}}
    assert _cycles(g) == [["a", "b"]]
    src = ROOT / "ros" / "deploy.py"  # imports tether.hardware.loop inside deploy()
    assert "tether.hardware.loop" in _imports(src, set(_graph()))
