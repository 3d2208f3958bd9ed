"""The structured-config schemas of builder options, derived from the builders' signatures.

An option of the model, optimizer or schedule group is a builder function and its YAML file. The
schema Hydra checks a composed config against -- which keys exist, their types, their defaults --
is read from the function (``dlrunner.declarations``): a key is a parameter the config sets (not
one the trainer supplies, such as ``n_inputs``), its type comes from the annotation and its
default from the function's default; a parameter without a default must be set in the YAML or
on the command line. So an option is declared once: adding a parameter to a builder adds the key.

A short function of our own rather than hydra-zen's ``builds(populate_full_signature=True)``:
hydra-zen inspects the imported function, and importing the builders imports torch, which
composing a config (``dlrun show``, ``--help``, completion) must not.
"""

from __future__ import annotations

import functools
import re
from dataclasses import field, make_dataclass
from typing import Any, List, Optional

from omegaconf import MISSING

from dlrunner.config.builders import RUNTIME
from dlrunner.declarations import NO_DEFAULT, functions_of, signature

# Config group -> the module of its builders and the prefix of a builder's name; the rest of the
# name names the option's schema (dlrunner.models.build_mlp -> schema/model/mlp).
BUILDER_GROUPS = {
    "model": ("dlrunner.models", "build_"),
    "optimizer": ("dlrunner.optim", "build_"),
    "schedule": ("dlrunner.optim.schedules", ""),
}
# Keys a group's nodes may carry for the trainer rather than the builder: the former place of the
# batch size (now trainer.batch_size), still read where a config sets it.
GROUP_KEYS = {"optimizer": {"batch_size": Optional[Any]}}

SIMPLE_TYPES = {"int": int, "float": float, "str": str, "bool": bool, "list": List[Any], "tuple": List[Any]}
LIST = re.compile(r"^(?:list|List|tuple|Tuple)\[(.+?)(?:,\.\.\.)?\]$")


def field_type(annotation: str | None) -> Any:
    """The OmegaConf type for a builder parameter's annotation: int, float, str, bool, lists of
    those, Optional of them; anything else (unions of several kinds, nested lists) is Any."""
    if annotation is None:
        return Any
    text = annotation.replace(" ", "")
    optional = text.startswith("Optional[")
    kinds = [k for k in (text[9:-1] if optional else text).split("|") if k != "None"]
    optional = optional or len(kinds) < len(text.split("|"))
    if len(kinds) != 1:
        return Any
    kind = SIMPLE_TYPES.get(kinds[0])
    if kind is None and (inner := LIST.match(kinds[0])):
        kind = List[SIMPLE_TYPES[inner.group(1)]] if inner.group(1) in SIMPLE_TYPES else List[Any]
    if kind is None:
        return Any
    return Optional[kind] if optional else kind


def schema_for(target: str, group: str, name: str) -> type:
    """The dataclass schema of the option whose builder is ``target``."""
    fields = [("_target_", str, field(default=target))]
    for parameter in signature(target):
        if parameter.keyword_only or parameter.name in RUNTIME:
            continue
        default = MISSING if parameter.default is NO_DEFAULT else parameter.default
        if isinstance(default, (list, dict)):
            default_field = field(default_factory=lambda value=default: type(value)(value))
        else:
            default_field = field(default=default)
        fields.append((parameter.name, field_type(parameter.annotation), default_field))
    fields += [(key, kind, field(default=None)) for key, kind in GROUP_KEYS.get(group, {}).items()]
    schema = make_dataclass(f"{group.title()}{name.title().replace('_', '')}Config", fields)
    # A class of this module (found by ``__getattr__`` below) pickles by reference. A class pickled
    # by value (cloudpickle, to and from joblib's workers) and unpickled in the process that made it
    # had its fields overwritten there with copies whose dataclasses.MISSING is another object.
    schema.__module__ = __name__
    return schema


def __getattr__(name: str) -> type:
    """The derived schemas by class name (``dlrunner.config.derive.ModelMlpConfig``), for pickle."""
    if not name.startswith("__"):
        for schema in builder_schemas().values():
            if schema.__name__ == name:
                return schema
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.cache  # one set of classes per process: Hydra's ConfigStore and the messages share them
def builder_schemas() -> dict[str, type]:
    """``schema/<group>/<option>`` -> its derived schema, for every builder of every builder group."""
    schemas = {}
    for group, (module, prefix) in BUILDER_GROUPS.items():
        for function in functions_of(module):
            if function.startswith(prefix):
                name = function[len(prefix) :]
                schemas[f"schema/{group}/{name}"] = schema_for(f"{module}.{function}", group, name)
    return schemas
