"""The architecture stays layered: no import cycle between dlrunner's packages, and no module reaches
into another module's private names. Every import counts, also those inside functions (lazy imports
are still dependencies); only ``if TYPE_CHECKING:`` blocks are left out. docs/architecture.md
draws the layers this test keeps."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"


def unit_of(module: str) -> str:
    """The unit the graph is drawn between: a package of dlrunner (dlrunner.train), a top-level module
    (dlrunner.errors), or a Hydra plugin package (hydra_plugins.dlrunner_sweeper)."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else parts[0]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> list[tuple[str, list[str]]]:
    """(imported module, names taken from it) for every import of the file, outside TYPE_CHECKING blocks."""
    tree = ast.parse(path.read_text())
    type_checking = set()  # the body of `if TYPE_CHECKING:` (not its else branch)
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            type_checking.update(id(n) for statement in node.body for n in ast.walk(statement))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if id(node) in type_checking:
            continue
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this file's package
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:  # `from dlrunner import train` imports the package dlrunner.train
                submodule = f"{base}.{alias.name}"
                is_module = (SRC / submodule.replace(".", "/")).is_dir() or (
                    SRC / f"{submodule.replace('.', '/')}.py"
                ).is_file()
                found.append((submodule, []) if is_module else (base, [alias.name]))
    return found


def ours(module: str) -> bool:
    return module == "dlrunner" or module.startswith(("dlrunner.", "hydra_plugins.dlrunner"))


def package_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for path in SRC.rglob("*.py"):
        here = unit_of(module_name(path))
        for module, _names in imports(path):
            if ours(module) and unit_of(module) != here:
                graph[here].add(unit_of(module))
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a path that ends where it starts, or None."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_dlrunners_packages_import_each_other_without_a_cycle():
    graph = package_graph()
    assert "dlrunner.train" in graph  # the walk found the code
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle between packages: " + " -> ".join(cycle)


# docs/architecture.md's layers, lowest first: a package imports only from layers below its own.
LAYERS = [
    {
        "dlrunner.version",
        "dlrunner.errors",
        "dlrunner.search",
        "dlrunner.internals",
        "dlrunner.declarations",
        "dlrunner.console",
        "dlrunner.workers",
        "dlrunner.files",
    },
    {"dlrunner.models"},
    {"dlrunner.runtime", "dlrunner.config"},
    {"dlrunner.data", "dlrunner.optim", "dlrunner.diagnostics", "hydra_plugins.dlrunner_searchpath"},
    {"dlrunner.loggers"},
    {"dlrunner.train", "dlrunner.report", "dlrunner.sweep"},
    {"dlrunner.checks", "dlrunner.stack", "dlrunner.predict"},
    # dlrunner's own __init__ is the Python API (load_run): above what it re-exports
    {"dlrunner", "dlrunner.cli", "hydra_plugins.dlrunner_sweeper", "hydra_plugins.dlrunner_stacked_launcher"},
    {"dlrunner.__main__"},  # python -m dlrunner
]


def test_every_package_imports_only_from_the_layers_below_it():
    layer = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}
    graph = package_graph()
    unplaced = sorted(set(graph) - set(layer))
    assert not unplaced, f"packages missing from LAYERS (and docs/architecture.md): {unplaced}"
    unplaced = sorted({b for targets in graph.values() for b in targets} - set(layer))
    assert not unplaced, f"imported packages missing from LAYERS (and docs/architecture.md): {unplaced}"
    upward = [f"{a} -> {b}" for a in sorted(graph) for b in sorted(graph[a]) if layer[b] >= layer[a]]
    assert not upward, "imports that do not point down a layer:\n" + "\n".join(upward)


def test_no_module_imports_another_modules_private_names():
    offenders = []
    for path in SRC.rglob("*.py"):
        for module, names in imports(path):
            if not ours(module) or module == module_name(path):
                continue
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            private += [p for p in module.split(".") if p.startswith("_") and not p.startswith("__")]
            if private:
                offenders.append(f"{module_name(path)} imports {module}: {private}")
    assert not offenders, "\n".join(offenders)


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_imports_inside_functions_count_and_type_checking_ones_do_not(tmp_path, monkeypatch):
    module = tmp_path / "dlrunner" / "train" / "x.py"
    module.parent.mkdir(parents=True)
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from dlrunner.stack import y\n"
        "def f():\n    from dlrunner.models import build_mlp\n    from . import loop\n"
    )
    monkeypatch.setattr(__import__(__name__), "SRC", tmp_path)
    assert imports(module)[1:] == [("dlrunner.models", ["build_mlp"]), ("dlrunner.train", ["loop"])]


def test_from_a_package_import_a_subpackage_counts_as_importing_the_subpackage(tmp_path, monkeypatch):
    (tmp_path / "dlrunner" / "train").mkdir(parents=True)
    module = tmp_path / "dlrunner" / "models" / "x.py"
    module.parent.mkdir(parents=True)
    module.write_text(
        "from dlrunner import train, errors\nif TYPE_CHECKING:\n    pass\nelse:\n    import dlrunner.stack\n"
    )
    monkeypatch.setattr(__import__(__name__), "SRC", tmp_path)
    assert imports(module) == [("dlrunner.train", []), ("dlrunner", ["errors"]), ("dlrunner.stack", [])]
