"""The shape of the code: no import cycles, no room importing a room later in the flow, no private
function used across modules. Read from the source tree with ``ast``, lazy imports included."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: source folders and the package name each installs as
SOURCES = {"mmeval": "mmeval", "tasks": "mmeval.tasks", "prompts": "mmeval.prompts",
           "model_adapters": "mmeval.model_adapters"}

#: the flow, first to last: a module may import its own room, the foundation, and rooms before it
FOUNDATION = ("mmeval", "mmeval.errors", "mmeval.jsonsafe", "mmeval.home", "mmeval.launch", "mmeval.regions",
              "mmeval.tasks", "mmeval.optionspec", "mmeval.prompts", "mmeval.layout", "mmeval.lean", "mmeval.heap",
              "mmeval.registry", "mmeval.locks")
ROOMS = ("mmeval.data", "mmeval.prompting", "mmeval.experts", "mmeval.boosts", "mmeval.config",
         "mmeval.model_adapters", "mmeval.answers", "mmeval.predictions", "mmeval.scoring", "mmeval.report",
         "mmeval.builders", "mmeval.run", "mmeval.watch", "mmeval.human", "mmeval.cli", "mmeval.__main__")


def modules() -> dict[str, Path]:
    out = {}
    for folder, package in SOURCES.items():
        for path in (ROOT / folder).rglob("*.py"):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            out[".".join([package, *parts])] = path
    return out


MODULES = modules()


def _resolve(name: str) -> str | None:
    """The project module an imported name refers to (the longest known prefix), or None."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def imports(module: str) -> list[tuple[str, int, list[str]]]:
    """(imported project module, line, names taken from it) for every import statement, lazy ones too."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = _resolve(alias.name)
                if target:
                    out.append((target, node.lineno, []))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = _resolve(f"{node.module}.{alias.name}")
                target = sub if sub == f"{node.module}.{alias.name}" else _resolve(node.module)
                if target:
                    out.append((target, node.lineno, [] if sub == target and target != _resolve(node.module)
                                else [alias.name]))
    return out


def graph() -> dict[str, set[str]]:
    g: dict[str, set[str]] = defaultdict(set)
    for module in MODULES:
        for target, _, _ in imports(module):
            if target != module and not module.startswith(target + "."):  # a package's own parent is not a cycle
                g[module].add(target)
    return g


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(g.get(v, ())):
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

    for v in sorted(set(g) | {w for ws in g.values() for w in ws}):
        if v not in index:
            visit(v)
    return found


def room(module: str) -> int | None:
    """Position of the module's room in the flow; None for the foundation."""
    if module in FOUNDATION or module.startswith("mmeval.tasks."):
        return None
    for i, name in enumerate(ROOMS):
        if module == name or module.startswith(name + "."):
            return i
    raise AssertionError(f"{module} belongs to no room: add it to FOUNDATION or ROOMS in this test")


def test_every_module_has_a_room() -> None:
    for module in MODULES:
        room(module)


def test_no_import_cycles() -> None:
    assert cycles(graph()) == []


def test_cycle_detection_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_room_imports_a_later_room() -> None:
    bad = []
    for module in MODULES:
        mine = room(module)
        for target, line, _ in imports(module):
            theirs = room(target)
            if theirs is not None and (mine is None or theirs > mine):
                bad.append(f"{MODULES[module].relative_to(ROOT)}:{line} imports {target}")
    assert bad == []


def test_foundation_imports_only_the_foundation() -> None:
    bad = [f"{module} imports {target}" for module in MODULES if room(module) is None
           for target, _, _ in imports(module) if room(target) is not None]
    assert bad == []


@pytest.mark.parametrize("room_name", ["mmeval.model_adapters"])
def test_adapters_know_nothing_of_running_or_scoring(room_name: str) -> None:
    forbidden = ("mmeval.run", "mmeval.scoring", "mmeval.report", "mmeval.answers", "mmeval.predictions")
    bad = [f"{m} imports {t}" for m in MODULES if m.startswith(room_name)
           for t, _, _ in imports(m) if t.startswith(forbidden)]
    assert bad == []


def test_no_private_name_is_used_across_modules() -> None:
    bad = []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        aliases: dict[str, str] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and _resolve(node.module):
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        bad.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {node.module}.{alias.name}")
                    target = _resolve(f"{node.module}.{alias.name}")
                    if target == f"{node.module}.{alias.name}":
                        aliases[alias.asname or alias.name] = target
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if _resolve(alias.name) and alias.asname:
                        aliases[alias.asname] = alias.name
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and node.attr.startswith("_") and not node.attr.startswith("__")
                    and aliases[node.value.id] != module):
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno} uses {aliases[node.value.id]}.{node.attr}")
    assert bad == []


def test_only_the_command_line_imports_the_report_room() -> None:
    """The report reads what the run wrote; nothing in the flow depends on how it is shown (the watch, after the
    flow, draws the curve by the report's rules)."""
    bad = [f"{m} imports {t}" for m in MODULES if not m.startswith(("mmeval.report", "mmeval.cli", "mmeval.watch"))
           for t, _, _ in imports(m) if t.startswith("mmeval.report")]
    assert bad == []
