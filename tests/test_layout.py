"""The package layout is the pipeline: deepen/ holds one package per stage family, and imports run one way, down the
stages (core < data < models < expand < train < evaluate < report < workflow), with no cycle between modules, not even
under TYPE_CHECKING or inside a function."""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "deepen"
# the stage families in pipeline order: a package may import its own modules and those of the packages before it
STAGES = ["core", "data", "models", "expand", "train", "evaluate", "report", "workflow"]


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imported(path: Path, known: set[str]) -> set[str]:
    """The deepen modules ``path`` imports anywhere in it (a package's submodule named in ``from pkg import mod``
    counts as that module)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("deepen")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("deepen"):
            assert node.level == 0, f"{path}: relative import"
            subs = {f"{node.module}.{a.name}" for a in node.names}
            out |= (subs & known) or {node.module}
    return out - ({module_name(path)} if path.is_relative_to(REPO) else set())


def stage_of(module: str) -> int | None:
    parts = module.split(".")
    return STAGES.index(parts[1]) if len(parts) > 1 and parts[1] in STAGES else None


def import_graph() -> dict[str, set[str]]:
    found = modules()
    return {m: imported(p, set(found)) & set(found) for m, p in found.items()}


def test_every_module_lives_in_a_stage_family_package():
    loose = [m for m in modules() if m != "deepen" and stage_of(m) is None]
    assert not loose, f"modules outside the stage packages {STAGES}: {loose}"


def test_imports_run_down_the_stages():
    upward = [f"{m} ({STAGES[stage_of(m)]}) imports {d} ({STAGES[stage_of(d)]})"
              for m, deps in import_graph().items() if m != "deepen" for d in deps
              if stage_of(d) is not None and stage_of(d) > stage_of(m)]
    assert not upward, "\n".join(upward)


def test_no_import_cycle():
    graph = import_graph()
    state: dict[str, int] = {}

    def visit(node, path):
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                pytest.fail("import cycle: " + " -> ".join(path[path.index(dep):] + [dep]))
            if dep not in state:
                visit(dep, path + [dep])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_the_checks_find_what_they_look_for(tmp_path):
    """The graph sees a function-level import and a package's submodule: a cycle planted through both is found."""
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("def f():\n    from deepen.train import growth\n")
    b.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from deepen.expand.plan import load\n")
    known = set(modules())
    assert imported(a, known) == {"deepen.train.growth"}
    assert imported(b, known) == {"deepen.expand.plan"}


def test_the_docs_layout_page_is_the_folder_tree():
    """docs/layout.md names every package of deepen/, one line each, in stage order."""
    text = (REPO / "docs" / "layout.md").read_text()
    packages = sorted({str(p.parent.relative_to(REPO)) for p in PACKAGE.rglob("__init__.py")})
    missing = [p for p in packages if f"{p}/" not in text]
    assert not missing, f"docs/layout.md does not name {missing}"
    positions = [text.index(f"deepen/{s}/") for s in STAGES]
    assert positions == sorted(positions), "docs/layout.md lists the stage packages out of order"
