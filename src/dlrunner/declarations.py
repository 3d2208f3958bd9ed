"""Builder functions read from their source, without importing them.

A config option is a builder function and its YAML file: the function's signature says which keys
the option has, their types and their defaults (``dlrunner.config.derive`` turns it into the
structured-config schema). Reading the signature from the source with ``ast``, instead of importing
the function, keeps composing a config free of torch: ``dlrun show`` and ``--help`` stay fast.

The same reading finds where a package's public functions live, so that ``dlrunner.models`` can
import a builder's module on first use without a hand-kept table of homes.
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
NO_DEFAULT = object()  # a parameter the config must set


@dataclass(frozen=True)
class Parameter:
    name: str
    annotation: str | None  # the annotation's source text, e.g. "float | list[float]"
    default: object  # a Python literal, or NO_DEFAULT
    keyword_only: bool  # after the ``*``: supplied by the trainer (n_inputs, input_shape, ...), not the config


@functools.cache
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _functions(path: Path) -> dict[str, ast.FunctionDef]:
    return {node.name: node for node in _tree(path).body if isinstance(node, ast.FunctionDef)}


def module_file(module: str) -> Path | None:
    """The source file of a dlrunner module (``dlrunner.optim.schedules``), or None outside dlrunner."""
    parts = module.split(".")
    if parts[0] != "dlrunner":
        return None
    base = PACKAGE_DIR.joinpath(*parts[1:])
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


@functools.cache
def public_functions(package_dir: Path) -> dict[str, str]:
    """Public top-level function name -> the module (file stem) of ``package_dir`` that defines it."""
    homes = {}
    for path in sorted(package_dir.glob("*.py")):
        if path.name == "__init__.py":
            continue
        for name in _functions(path):
            if name.startswith("_"):
                continue
            if name in homes:
                raise RuntimeError(f"{package_dir.name}: {name} is defined in both {homes[name]}.py and {path.stem}.py")
            homes[name] = path.stem
    return homes


def functions_of(module: str) -> list[str]:
    """The public functions a dlrunner module offers: its own, and for a package those of its modules."""
    path = module_file(module)
    if path is None:
        return []
    names = [name for name in _functions(path) if not name.startswith("_")]
    if path.name == "__init__.py":
        names += public_functions(path.parent)
    return sorted(set(names))


def find_function(target: str) -> ast.FunctionDef | None:
    """The definition of the function a ``_target_`` names: in its module, or -- for a package that
    imports its builders on first use (``dlrunner.models``) -- in the package module that defines it."""
    module, _, name = target.rpartition(".")
    path = module_file(module)
    if path is None:
        return None
    if name in (functions := _functions(path)):
        return functions[name]
    if path.name == "__init__.py" and (home := public_functions(path.parent).get(name)):
        return _functions(path.parent / f"{home}.py").get(name)
    return None


def signature(target: str) -> list[Parameter] | None:
    """The parameters of the builder ``target`` names, from its source; None when it is not dlrunner's."""
    function = find_function(target)
    if function is None:
        return None
    args = function.args
    positional = args.posonlyargs + args.args
    defaults = [NO_DEFAULT] * (len(positional) - len(args.defaults)) + [_literal(d, target) for d in args.defaults]
    parameters = [Parameter(a.arg, _annotation(a), d, False) for a, d in zip(positional, defaults)]
    for a, d in zip(args.kwonlyargs, args.kw_defaults):
        parameters.append(Parameter(a.arg, _annotation(a), NO_DEFAULT if d is None else _literal(d, target), True))
    return parameters


def _annotation(arg: ast.arg) -> str | None:
    return None if arg.annotation is None else ast.unparse(arg.annotation)


def _literal(node: ast.expr, target: str) -> object:
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise RuntimeError(
            f"{target}: the default {ast.unparse(node)} is not a literal; a builder's defaults are its config's"
        ) from None
