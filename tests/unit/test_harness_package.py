"""The import directions of rawstack and its harness, held by a test (as test_codec_package does).

* ``rawstack`` never imports the harness;
* the harness's module-level imports have no cycle;
* nothing outside ``harness/backends/`` imports a backend module
  (``rawstack_harness.backends.linux*``, ``...freebsd*``, ``...common``) or compares anything
  with a backend's name: what differs is read from ``Backend.capabilities``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import rawstack_harness

import rawstack

HARNESS = Path(rawstack_harness.__file__).parent
RAWSTACK = Path(rawstack.__file__).parent
BACKEND_NAMES = {"linux", "freebsd"}
HARNESSES = {"rawstack_harness", "harness"}
BACKEND_MODULES = (
    "rawstack_harness.backends.linux",
    "rawstack_harness.backends.freebsd",
    "rawstack_harness.backends.common",
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(HARNESS).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["rawstack_harness", *parts])


def _is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def _imports(tree: ast.Module, *, top_level_only: bool) -> set[str]:
    """Absolute module names imported (``from a import b`` counts ``a`` and ``a.b``)."""
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.If) and not (top_level_only and _is_type_checking(node)):
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
            elif not top_level_only:
                for child in ast.iter_child_nodes(node):
                    if isinstance(child, ast.stmt):
                        visit([child])
                    else:
                        for sub in ast.walk(child):
                            if isinstance(sub, ast.stmt):
                                visit([sub])

    visit(tree.body)
    return found


def _sources(root: Path) -> dict[str, ast.Module]:
    return {str(p): ast.parse(p.read_text(encoding="utf-8")) for p in sorted(root.rglob("*.py"))}


def _graph() -> dict[str, set[str]]:
    """Module -> the harness modules it imports at load time (``from pkg import submodule``
    is an edge to the submodule only: the package's own ``__init__`` has run already)."""
    modules = {_module_name(Path(p)): tree for p, tree in _sources(HARNESS).items()}
    graph = {}
    for name, tree in modules.items():
        found = {m for m in _imports(tree, top_level_only=True) if m in modules and m != name}
        graph[name] = {m for m in found if not any(o.startswith(m + ".") for o in found)}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle, or [] (depth-first search for a back edge)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := dfs(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state and (found := dfs(node)):
            return found
    return []


def test_rawstack_never_imports_the_harness() -> None:
    offenders = {
        path: sorted(
            m for m in _imports(tree, top_level_only=False) if m.split(".")[0] in HARNESSES
        )
        for path, tree in _sources(RAWSTACK).items()
    }
    assert {p: m for p, m in offenders.items() if m} == {}


def test_harness_imports_have_no_cycle() -> None:
    graph = _graph()
    assert "rawstack_harness.backends.linux.nodes" in graph  # the scan sees the packages
    assert _cycle(graph) == []


def test_the_cycle_search_finds_one() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) == []


def _outside_backends() -> dict[str, ast.Module]:
    backends = HARNESS / "backends"
    return {p: t for p, t in _sources(HARNESS).items() if not Path(p).is_relative_to(backends)}


def test_nothing_outside_backends_imports_a_backend_module() -> None:
    offenders = {
        path: sorted(
            m for m in _imports(tree, top_level_only=False) if m.startswith(BACKEND_MODULES)
        )
        for path, tree in _outside_backends().items()
    }
    assert {p: m for p, m in offenders.items() if m} == {}


def _name_comparisons(tree: ast.Module) -> list[str]:
    """String constants naming a backend that take part in a comparison."""
    hits = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            for operand in [node.left, *node.comparators]:
                if isinstance(operand, ast.Constant) and operand.value in BACKEND_NAMES:
                    hits.append(f"line {node.lineno}: {operand.value!r}")
    return hits


def test_nothing_outside_backends_branches_on_a_backend_name() -> None:
    offenders = {path: _name_comparisons(tree) for path, tree in _outside_backends().items()}
    assert {p: h for p, h in offenders.items() if h} == {}


def test_the_scans_would_catch_a_violation() -> None:
    tree = ast.parse(
        "def f(backend):\n"
        "    from rawstack_harness.backends.freebsd import NO_NODE_SOCKETS\n"
        "    if backend.name == 'freebsd':\n"
        "        pass\n"
    )
    assert "rawstack_harness.backends.freebsd" in _imports(tree, top_level_only=False)
    assert "rawstack_harness.backends.freebsd" not in _imports(tree, top_level_only=True)
    assert _name_comparisons(tree) == ["line 3: 'freebsd'"]
