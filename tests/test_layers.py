"""The package's floors: imports go down only, and round no cycle.

Read from the source with `ast`, so every import counts: those inside functions and under `if TYPE_CHECKING:` too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "watcher"

# Bottom first (docs/DEVELOPMENT.md, "Floors"). A module imports from its own package and from lower
# floors, never from a higher floor, nor from a neighbour on its own floor. The package's own __init__ (a
# docstring and the version) is below them all.
FLOORS: tuple[tuple[str, ...], ...] = (
    ("vocabulary", "filesystem"),
    ("intake",),
    ("vision",),
    ("ledger",),
    ("forms",),
    ("model",),
    ("recognise",),
    ("service",),
    ("report", "review"),
    ("cli",),
    ("__main__",),
)
FLOOR = {part: number for number, parts in enumerate(FLOORS) for part in parts} | {"": -1}


def modules(package: Path = PACKAGE) -> dict[str, Path]:
    """Every module of the package by its dotted name (a folder's __init__ by the folder's)."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = (package.name, *path.relative_to(package).with_suffix("").parts)
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported(name: str, path: Path, known: set[str]) -> Iterator[str]:
    """The package's modules that `name` (at `path`) imports, anywhere in it: the names as written, or for
    `from X import y` the module X.y when y is one."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                above = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*above, base] if base else above)
            submodules = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known]
            yield from submodules or [base]


def graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Each module's imports of the package's modules (of the longest module name an import starts with)."""
    found = modules(package)
    known = set(found)
    edges: dict[str, set[str]] = {}
    for name, path in found.items():
        edges[name] = set()
        for target in imported(name, path, known):
            parts = target.split(".")
            while parts and ".".join(parts) not in known:
                parts.pop()
            if parts and ".".join(parts) != name:
                edges[name].add(".".join(parts))
    return edges


def part(module: str) -> str:
    """The floor's part a module belongs to: its top-level package or module under watcher ("" for watcher)."""
    return module.split(".")[1] if "." in module else ""


def upward(edges: dict[str, set[str]]) -> list[str]:
    """Every import that does not go down a floor (nor stays in its own package), as a line naming it."""
    wrong = []
    for source, targets in sorted(edges.items()):
        for target in sorted(targets):
            here, there = part(source), part(target)
            if here != there and here in FLOOR and there in FLOOR and FLOOR[there] >= FLOOR[here]:
                wrong.append(f"{source} imports {target} (floor {FLOOR[there]} from floor {FLOOR[here]})")
    return wrong


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles: each strongly connected set of modules of two or more, sorted (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in sorted(edges.get(module, ())):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            members = []
            while True:
                member = stack.pop()
                members.append(member)
                if member == module:
                    break
            if len(members) > 1:
                found.append(sorted(members))

    for module in sorted(edges):
        if module not in index:
            visit(module)
    return sorted(found)


def test_every_module_is_on_a_floor() -> None:
    unplaced = sorted({part(module) for module in modules()} - set(FLOOR))
    assert not unplaced, f"not on any floor (add to FLOORS and docs/DEVELOPMENT.md): {unplaced}"


def test_imports_only_go_down() -> None:
    wrong = upward(graph())
    assert not wrong, "imports up a floor or across one:\n" + "\n".join(wrong)


def test_no_import_cycles() -> None:
    found = cycles(graph())
    assert not found, "modules that import each other, round a cycle:\n" + "\n".join(", ".join(c) for c in found)


def test_imports_in_functions_and_for_type_checking_count(tmp_path: Path) -> None:
    package = tmp_path / "watcher"
    (package / "low").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "low" / "__init__.py").write_text("")
    (package / "low" / "a.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from watcher.cli import main\n"
        "def f() -> None:\n    from . import b\n"
    )
    (package / "low" / "b.py").write_text("from watcher.low.a import f\nimport watcher.vocabulary\n")
    (package / "cli.py").write_text("from watcher.low import a, b\n")
    (package / "vocabulary.py").write_text("")
    edges = graph(package)
    assert edges["watcher.low.a"] == {"watcher.cli", "watcher.low.b"}
    assert edges["watcher.low.b"] == {"watcher.low.a", "watcher.vocabulary"}
    assert edges["watcher.cli"] == {"watcher.low.a", "watcher.low.b"}
    assert cycles(edges) == [["watcher.cli", "watcher.low.a", "watcher.low.b"]]
