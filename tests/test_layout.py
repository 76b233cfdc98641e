"""The house's rules, checked from the source without importing it: no import circle, no arrow
back up between rooms, and a ``postconv`` command that starts without torch or a simulator."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"extension": "postconv", "selection": "postconv.selection", "tasks": "postconv.tasks",
           "sim2sim": "postconv.sim2sim", "cputrain": "postconv.cputrain", "study": "postconv.study"}  # fmt: skip
FLOORS = (
    ("postconv.tasks", "postconv.selection", "postconv.interrupt", "postconv.console"),
    ("postconv.storage",),
    ("postconv.evaluation",),
    ("postconv.ranking",),
    ("postconv.dashboard",),
    ("postconv.review",),
    ("postconv.sim2sim",),
    ("postconv.stage",),
    ("postconv.cputrain",),
    ("postconv.study",),
    ("postconv.cli", "postconv.hook", "postconv.__main__"),
)
"""Rooms from the ground up (README, Layout): a module imports its own floor and those below."""


def _modules() -> dict[str, Path]:
    mods = {}
    for folder, package in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            if "assets" in path.parts:
                continue
            parts = [p for p in path.relative_to(ROOT / folder).with_suffix("").parts if p != "__init__"]
            mods[".".join([package, *parts])] = path
    return mods


def _imports() -> dict[str, set[str]]:
    """Module -> the postconv modules it imports, at module level or inside functions."""
    mods = _modules()

    def owner(name: str) -> str:
        while name not in mods:
            name = name.rpartition(".")[0]
        return name

    edges: dict[str, set[str]] = {m: set() for m in mods}
    for module, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.ImportFrom)
                and node.level == 0
                and (node.module or "").startswith("postconv")
            ):
                names = [f"{node.module}.{a.name}" for a in node.names]
                targets = [n if n in mods else node.module for n in names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.startswith("postconv")]
            else:
                continue
            for target in map(owner, targets):
                if target != "postconv" and target != module:  # the root holds only __version__
                    edges[module].add(target)
    return edges


def _floor(module: str) -> int:
    for level, rooms in enumerate(FLOORS):
        if any(module == r or module.startswith(r + ".") for r in rooms):
            return level
    raise AssertionError(f"{module} is in no room of FLOORS: give it one (and a line in the README's layout)")


def test_no_module_imports_itself_through_others():
    edges = _imports()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while (w := stack.pop()) != v:
                component.append(w)
            if component:
                circles.append(sorted([v, *component]))

    sys.setrecursionlimit(10_000)
    for v in edges:
        if v not in index:
            visit(v)
    assert circles == []


def test_imports_point_down_the_floors():
    up = sorted((a, b) for a, targets in _imports().items() for b in targets if _floor(b) > _floor(a))
    assert up == []


@pytest.mark.parametrize("argv", [["--help"], ["run", "RUN", "--k", "-1"], ["sim2sim", "--help"]])
def test_the_command_answers_help_and_bad_options_without_torch_or_a_simulator(argv):
    heavy = ("torch", "mujoco", "isaaclab", "wandb", "matplotlib", "cvxpy", "ray", "gymnasium")
    script = (
        "import sys\nfrom postconv.cli import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
        f"print('LOADED', [m for m in {heavy!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert "LOADED []" in out.stdout, out.stdout[-2000:] + out.stderr[-2000:]
