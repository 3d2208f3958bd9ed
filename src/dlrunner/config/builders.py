"""Calling the builder functions that config nodes name with ``_target_``.

A config node is a function call: ``{_target_: dlrunner.models.build_mlp, layers: [64, 32]}``
means ``build_mlp(layers=[64, 32], ...)``. Before calling, the node's keys are bound to the
function's signature so that a misspelt or missing key is reported by name (with the valid ones),
not as a TypeError from deep inside.
"""

from __future__ import annotations

import importlib
import inspect
import os
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, OmegaConf

from dlrunner.declarations import find_function
from dlrunner.errors import ConfigError, Problem

# A config is data, yet a _target_ names code to import and call: a config handed to you could
# name os.system. So only callables inside these packages may be named, plus those the user lists
# in $DLRUN_ALLOWED_TARGETS. An environment variable and not a config key, so that a config cannot
# widen its own allow-list.
ALLOWED_TARGETS_ENV = "DLRUN_ALLOWED_TARGETS"
BUILTIN_ALLOWED_TARGETS = ("dlrunner", "torch.optim", "torch.nn")


def allowed_target_packages() -> list[str]:
    extra = os.environ.get(ALLOWED_TARGETS_ENV, "").split(",")
    return [*BUILTIN_ALLOWED_TARGETS, *(name.strip() for name in extra if name.strip())]


def _inside(name: str, packages: list[str]) -> bool:
    return any(name == package or name.startswith(package + ".") for package in packages)


def resolve_target(path: str, key: str) -> Callable:
    """The callable a ``_target_`` names; refused, before its module is imported, outside the allow-list."""
    module_name, _, attribute = str(path).rpartition(".")
    packages = allowed_target_packages()
    refused = Problem(
        f"{key}._target_",
        path,
        f"not an allowed builder: a _target_ may only name callables in {packages}; "
        f"to allow your own package, list it in ${ALLOWED_TARGETS_ENV} (e.g. {ALLOWED_TARGETS_ENV}=mypkg,otherpkg)",
    )
    if not _inside(module_name, packages):
        raise ConfigError(refused)
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError):
        raise ConfigError(Problem(f"{key}._target_", path, "not an importable function (module.function)")) from None
    # A name an allowed module imported from elsewhere (``from os import system``) is not its own.
    if not callable(found) or not _inside(str(getattr(found, "__module__", None) or ""), packages):
        raise ConfigError(refused)
    return found


# Arguments the trainer supplies, never the config. A builder takes those it names: a CNN takes
# input_shape (C, H, W), an MLP takes n_inputs (the flattened size), both take n_outputs.
RUNTIME = ("param_groups", "n_inputs", "n_outputs", "input_shape")


def builder_kwargs(node: DictConfig | dict, key: str, skip: tuple[str, ...] = ()) -> tuple[str, dict]:
    """The ``_target_`` a node names and the keyword arguments it gives, checked against the
    builder's signature.

    ``skip`` names keys that the node carries for someone else (e.g. the trainer's batch_size).
    """
    if isinstance(node, DictConfig):
        missing = [k for k in node if OmegaConf.is_missing(node, k)]
        if missing:
            raise ConfigError(
                [
                    Problem(
                        f"{key}.{k}",
                        "???",
                        f"required: set it in the config file or on the command line ({key}.{k}=...)",
                    )
                    for k in missing
                ]
            )
        node = OmegaConf.to_container(node, resolve=True)
    if not isinstance(node, dict) or "_target_" not in node:
        raise ConfigError(Problem(key, node, "a config node with a _target_ builder function"))
    kwargs = {k: v for k, v in node.items() if k != "_target_" and k not in skip}
    named, takes_any = builder_settings(node["_target_"], key)
    unknown = [] if takes_any else [k for k in kwargs if k not in named]
    if unknown:
        valid = sorted({n for n in named if n not in RUNTIME} | set(skip))
        raise ConfigError(
            [
                Problem(f"{key}.{k}", kwargs[k], f"not a setting of {node['_target_']}; valid keys: {', '.join(valid)}")
                for k in unknown
            ]
        )
    return node["_target_"], kwargs


def builder_settings(target: str, key: str) -> tuple[list[str], bool]:
    """The keyword arguments a builder takes (a model's include the RUNTIME ones the trainer
    gives), and whether it takes any (``**kwargs``). dlrunner's own builders are read from their source:
    checking a config imports no torch (a parallel sweep's process checks its ranges while its
    workers import torch, on the same cores)."""
    function = find_function(str(target))
    if function is not None:
        named = [a.arg for a in function.args.args + function.args.kwonlyargs]
        takes_any = function.args.kwarg is not None
    else:
        parameters = inspect.signature(resolve_target(target, key)).parameters
        named = [n for n, p in parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        takes_any = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    return named, takes_any


def call_builder(node, key: str, skip: tuple[str, ...] = (), **runtime: Any) -> Any:
    """Call the builder a node names, with its keys plus the ``runtime`` arguments it takes (e.g. n_inputs)."""
    target, kwargs = builder_kwargs(node, key, skip)
    builder = resolve_target(target, key)
    parameters = inspect.signature(builder).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        runtime = {name: value for name, value in runtime.items() if name in parameters}
    return builder(**kwargs, **runtime)
