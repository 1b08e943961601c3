"""The report room's arrows, read from the source (ast): no import cycle among its modules, nothing below
it imports it, and no module uses another module's private names."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "mmeval"
REPORT = "mmeval.report"
#: the only modules of the package allowed to import the report room (besides the room itself)
REPORT_USERS = {"mmeval.cli.report", "mmeval.cli.run"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, ast.Module]:
    return {module_name(p): ast.parse(p.read_text(encoding="utf-8")) for p in sorted(PACKAGE.rglob("*.py"))}


def imports(tree: ast.Module, known: set[str]) -> set[str]:
    """The project modules a module imports, at any depth (imports inside functions count too)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                out.add(sub if sub in known else node.module)
    return {m for m in out if m in known}


def in_room(name: str) -> bool:
    return name == REPORT or name.startswith(REPORT + ".")


def test_no_import_cycle_in_the_report_room() -> None:
    mods = modules()
    known = set(mods)
    graph = {m: {d for d in imports(t, known) if in_room(d) or d == "mmeval.scoring"}
             for m, t in mods.items() if in_room(m) or m == "mmeval.scoring"}

    def package_of(m: str, d: str) -> bool:  # a package's __init__ importing its own modules is no cycle
        return m.startswith(d + ".") or d.startswith(m + ".")

    state: dict[str, int] = {}
    cycles = []

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for d in sorted(graph.get(m, ())):
            if package_of(m, d):
                continue
            if state.get(d) == 1:
                cycles.append(path[path.index(d):] + [d] if d in path else [m, d])
            elif d not in state:
                visit(d, path + [d])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, cycles


def test_only_the_cli_imports_the_report_room() -> None:
    mods = modules()
    known = set(mods)
    users = {m for m, t in mods.items() if not in_room(m) and any(in_room(d) for d in imports(t, known))}
    assert users <= REPORT_USERS, users - REPORT_USERS
    assert not any(in_room(d) for d in imports(mods["mmeval.scoring"], known))


def test_no_private_name_used_across_modules() -> None:
    mods = modules()
    known = set(mods)
    found = []
    for name, tree in mods.items():
        if not (in_room(name) or name == "mmeval.scoring"):
            continue
        aliases = {}  # local name -> project module it stands for
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mmeval"):
                for a in node.names:
                    sub = f"{node.module}.{a.name}"
                    if sub in known:
                        aliases[a.asname or a.name] = sub
                    elif a.name.startswith("_") and node.module != name:
                        found.append(f"{name}: from {node.module} import {a.name}")
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name in known and a.asname:
                        aliases[a.asname] = a.name
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and node.attr.startswith("_") and not node.attr.startswith("__")):
                found.append(f"{name}: {aliases[node.value.id]}.{node.attr}")
    assert not found, found
