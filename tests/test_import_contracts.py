"""The package's floors, checked over its imports (every ``import``, also inside functions).

Floors, lowest first (README, Layout):

* shared: plumbing every floor may use - it never imports the OGC adapter, the write side,
  a room or the composition root;
* ``auth``: the write side (tokens, audit, guarded writes) - shared only;
* ``ogc``: the OGC API adapter - shared and ``auth``;
* rooms (``hazards``, ``guide``, ``sightings``, ``city3d``) - the floors below, never each
  other (what one room needs from another is handed over by ``geoservice.app``);
* top: the composition root and the commands (``app``, ``asgi``, ``cli``, ``build``, the
  portal routes) - anything.

And no import cycle between the package's parts (sub-packages and top-level modules; a
package may import itself in circles, e.g. a loader registry).  A few modules are leaves of
their own (``LEAVES``): a lower part may import them because they import nothing of the
package but ``errors`` and each other - e.g. the catalogue checks a ``reinfolib`` layer
against the documented API list without importing the API source.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "geoservice"
ROOMS = ("hazards", "guide", "sightings", "city3d")
#: Modules of the top floor (by dotted prefix below ``geoservice``).
TOP = ("app", "asgi", "cli", "build", "web.routes", "__main__")
SHARED_FLOOR, AUTH, OGC, ROOM, TOP_FLOOR = range(5)
#: Modules that are parts of their own (see the module docstring).
LEAVES = ("reinfolib.apis", "reinfolib.errors", "reinfolib.settings")


def module_name(path: Path) -> str:
    """``geoservice/ogc/routes.py`` -> ``ogc.routes`` (the package itself is ``""``)."""
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def part_of(module: str) -> str:
    """The unit cycles are checked between: a sub-package, or a top-level module."""
    if module in LEAVES or module.startswith("web.routes"):
        return module
    return module.split(".")[0]


def floor_of(module: str) -> int:
    """The floor a module lives on."""
    head = module.split(".")[0]
    if any(module == t or module.startswith(t + ".") for t in TOP):
        return TOP_FLOOR
    if head in ROOMS:
        return ROOM
    return {"auth": AUTH, "ogc": OGC}.get(head, SHARED_FLOOR)


def imports_of(path: Path) -> set[str]:
    """Every ``geoservice`` module ``path`` imports, as names below the package."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            if name == "geoservice" or name.startswith("geoservice."):
                found.add(name.removeprefix("geoservice").lstrip("."))
    return found


def _known(modules: set[str], name: str) -> str | None:
    """The module an imported name refers to (``from x import f`` names ``x.f``)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name if name in modules else None


def graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports."""
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    out: dict[str, set[str]] = {}
    for mod, path in files.items():
        targets = {_known(set(files), n) for n in imports_of(path)}
        out[mod] = {t for t in targets if t is not None and t != mod}
    return out


def violations(g: dict[str, set[str]]) -> list[str]:
    """Imports from a lower floor to a higher one, and between two rooms."""
    bad = []
    for mod, targets in g.items():
        for t in targets:
            low, high = floor_of(mod), floor_of(t)
            if high > low and low != TOP_FLOOR:
                bad.append(f"{mod or 'geoservice'} imports {t} (floor {low} -> {high})")
            elif low == high == ROOM and part_of(mod) != part_of(t):
                bad.append(f"room {part_of(mod)} imports room {part_of(t)}: {mod} -> {t}")
    return sorted(bad)


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups (more than one part) of the graph between parts."""
    parts: dict[str, set[str]] = defaultdict(set)
    for mod, targets in g.items():
        parts[part_of(mod)] |= {part_of(t) for t in targets} - {part_of(mod)}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in parts.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in list(parts):
        if v not in index:
            visit(v)
    return groups


def test_no_import_goes_up_a_floor_or_across_rooms() -> None:
    """Every floor rule of the module docstring, over every import in the package."""
    assert violations(graph()) == []


def test_no_import_cycle_between_parts_of_the_package() -> None:
    assert cycles(graph()) == []


def test_leaves_import_only_errors_and_each_other() -> None:
    g = graph()
    beyond = {leaf: g[leaf] - {"errors", *LEAVES} for leaf in LEAVES}
    assert beyond == {leaf: set() for leaf in LEAVES}


def test_the_checks_can_fail() -> None:
    """The checker sees what it must forbid (a made-up graph)."""
    g = {"store.base": {"ogc.routes"}, "guide.api": {"hazards.api"}, "ogc.routes": {"store.base"},
         "app": {"guide.api"}, "hazards.api": set()}
    assert violations(g) == [
        "room guide imports room hazards: guide.api -> hazards.api",
        "store.base imports ogc.routes (floor 0 -> 2)",
    ]
    assert cycles(g) == [["ogc", "store"]]
