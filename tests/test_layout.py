"""The house's layout rules (DESIGN.md section 1), read from the source with ``ast``.

Every ``import`` in the package counts, also those inside functions and under
``TYPE_CHECKING``: rooms import only rooms below them, no module takes part in an import
circle, rclpy is imported under ``taptr_ros/ros/`` only, and no module is over 400 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "taptr_ros"

#: a room may import only rooms of a lower level
LEVELS = {
    "interfaces": 0, "data": 0, "resources": 0,  # generated msg/srv; resources.py
    "messages": 1, "model": 1,
    "tracking": 2,
    "eval": 3, "bench": 3,
    "train": 4, "bags": 4,
    "ros": 5,
    "ros.tools": 6,
    "cli": 7,
}
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def room_of(module: str) -> str | None:
    """The room of a ``taptr_ros.*`` module name; None outside the package."""
    parts = module.split(".")
    if parts[0] != "taptr_ros" or len(parts) < 2:
        return None
    if parts[1] in ("msg", "srv"):
        return "interfaces"
    if parts[1:3] == ["ros", "tools"]:
        return "ros.tools"
    return parts[1]


def imported_modules(path: Path, modules: set[str]) -> set[str]:
    """Every module ``path`` imports (``from a import b`` counts as ``a.b`` when that is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names
                         if f"{node.module}.{alias.name}" in modules)
    return found


SOURCES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
GRAPH = {name: imported_modules(path, set(SOURCES)) for name, path in SOURCES.items()}


def test_every_room_has_a_level():
    rooms = {room_of(name) for name in SOURCES} - {"taptr_ros", None}
    assert rooms <= set(LEVELS), f"rooms without a level in this test: {rooms - set(LEVELS)}"


def test_rooms_import_only_lower_rooms():
    wrong = []
    for name, imports in GRAPH.items():
        here = room_of(name)
        if here is None or here not in LEVELS:
            continue
        for target in imports:
            there = room_of(target)
            if there is not None and there != here and there in LEVELS and LEVELS[there] >= LEVELS[here]:
                wrong.append(f"{name} ({here}) imports {target} ({there})")
    assert not wrong, "\n".join(sorted(wrong))


def test_no_import_circles():
    internal = {name: {t for t in imports if t in SOURCES and t != name} for name, imports in GRAPH.items()}
    # a package imports its own submodules to re-export them; that is not a circle
    internal = {name: {t for t in targets if not t.startswith(name + ".")} for name, targets in internal.items()}
    state: dict[str, int] = {}
    stack: list[str] = []
    circles = []

    def visit(name: str) -> None:
        state[name] = 1
        stack.append(name)
        for target in sorted(internal[name]):
            if state.get(target) == 1:
                circles.append(" -> ".join(stack[stack.index(target):] + [target]))
            elif target not in state:
                visit(target)
        stack.pop()
        state[name] = 2

    for name in sorted(internal):
        if name not in state:
            visit(name)
    assert not circles, "\n".join(circles)


def test_rclpy_only_under_ros():
    outside = [name for name, imports in GRAPH.items()
               if any(t == "rclpy" or t.startswith("rclpy.") for t in imports)
               and room_of(name) not in ("ros", "ros.tools")]
    assert not outside, outside


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_module_size(name):
    lines = len(SOURCES[name].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{SOURCES[name]} has {lines} lines: split it by responsibility"


def test_the_rules_catch_a_violation(tmp_path):
    """The checks above can fail: an upward import and a circle are found in a made-up pair."""
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("import taptr_ros.cli.demo\nfrom taptr_ros.data import b\n")
    b.write_text("def f():\n    from taptr_ros.data import a\n")
    modules = {"taptr_ros.data.a", "taptr_ros.data.b"}
    assert imported_modules(a, modules) == {"taptr_ros.cli.demo", "taptr_ros.data", "taptr_ros.data.b"}
    assert imported_modules(b, modules) == {"taptr_ros.data", "taptr_ros.data.a"}
    assert LEVELS[room_of("taptr_ros.cli.demo")] > LEVELS[room_of("taptr_ros.data.a")]
