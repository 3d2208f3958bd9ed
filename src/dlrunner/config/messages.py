"""Hydra's and OmegaConf's composition errors, retold as one message: key, value, what is valid."""

from __future__ import annotations

import dataclasses
import difflib
import re


def _did_you_mean(name: str, choices) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def install_command(*extras: str) -> str:
    """The pip command that adds dlrunner's optional ``extras`` to this installation: an editable
    install (a clone, pip install -e) is reinstalled from its folder, not from PyPI."""
    import json
    from importlib import metadata

    wanted = ",".join(extras)
    try:
        origin = json.loads(metadata.distribution("dlrunner").read_text("direct_url.json") or "{}")
    except (metadata.PackageNotFoundError, ValueError):
        origin = {}
    if origin.get("dir_info", {}).get("editable") and origin.get("url", "").startswith("file://"):
        return f"pip install -e '{origin['url'][len('file://') :]}[{wanted}]'"
    return f"pip install 'dlrunner[{wanted}]'"


def section_of(name: str) -> str:
    """'; did you mean optimizer.lr?' for a setting typed without its section (lr=0.1)."""
    from dlrunner.config.schema import all_schemas

    found = sorted(
        {
            f"{path.split('/')[1]}.{name}"
            for path, schema in all_schemas().items()
            if path.count("/") == 2 and name in {f.name for f in dataclasses.fields(schema)}
        }
    )
    return f"; did you mean {' or '.join(found)}?" if found else ""


def _builder_key(full_key: str, node, message: str) -> str | None:
    """A key that a node with a ``_target_`` (a data source: a plain mapping, no schema) does not
    hold: a misspelt setting (the builder's settings listed), or one of its builder's arguments that
    the config file leaves to the builder's default (then it is added with +)."""
    from dlrunner.config.builders import builder_settings

    try:
        target = node.get("_target_") if node is not None else None
        if not target:
            return None
        valid, takes_any = builder_settings(str(target), full_key.rsplit(".", 1)[0])
    except Exception:  # a hint only: a target outside the allowed packages is said where it is called
        return None
    name = full_key.rsplit(".", 1)[-1]
    given = re.search(rf"\+{re.escape(full_key)}=(.*)", message)
    value = given[1].strip() if given else "VALUE"
    if name in valid:
        return (
            f"{full_key}={value}: an argument of {target} that its config file does not list (it takes the "
            f"function's default); add it with +{full_key}={value}"
        )
    close = _did_you_mean(name, valid)
    if takes_any and not close:
        return (
            f"{full_key}={value}: not in {target}'s config file; the function takes other keyword arguments "
            f"too: if it takes this one, add it with +{full_key}={value}"
        )
    if not valid:
        return None
    return f"{full_key}={value}: not a setting of {target}{close}\nValid keys: {', '.join(sorted(valid))}"


def explain(err: BaseException) -> str:
    """A short explanation of a Hydra/OmegaConf error, or Hydra's own text where we know no better."""
    cause = err.__cause__ or err
    message = str(err).strip()
    full_key = getattr(cause, "full_key", None)
    object_type = getattr(cause, "object_type", None)

    if "does not support sweep type" in message:  # interval(...) or tag(...) given to Hydra's basic sweeper
        return (
            f"{message}: intervals and tag(...) are search distributions; search them with dlrun sweep "
            "(hydra/sweeper=dlrunner). dlrun train -m runs lists only: key=a,b,c"
        )
    ambiguous = re.search(r"Ambiguous value for argument '([^=']+)=([^']*)'", message)
    if ambiguous:  # key=a,b without -m: Hydra's text names --multirun and escapes its quotes
        key, values = ambiguous.groups()
        return (
            f"{key}={values}: several values; to train one run for each, add -m (dlrun train -m {key}={values}); "
            f"for a list, write {key}=[{values}]"
        )
    evaluating = re.search(r"Error parsing override '([^']+)'\n\w+ while evaluating '([^']+)': (.+)", message)
    if evaluating:  # interval(1e-4): a search distribution's own arguments
        override, call, why = evaluating.groups()
        return f"{override}: {why} in {call} (e.g. interval(1e-4, 1), tag(log, interval(1e-4, 1)))"
    cut = re.search(r"no viable alternative at input '([^']*)'", message)
    typed = (getattr(err, "override", None) or getattr(cause, "override", None) or "").strip()
    if cut and typed.endswith(",") and (typed.count("[") > typed.count("]") or typed.count("(") > typed.count(")")):
        return (
            f"{typed}: the value ends at a space, where the shell split it; quote the whole override "
            "('model.layers=[64, 32]') or leave out the spaces (model.layers=[64,32])"
        )
    twice = re.search(r"Multiple values for ([\w/]+)\. To override a value use 'override [\w/]+: ([^']+)'", message)
    if twice:  # +group=option where the config already has the group
        group, option = twice.groups()
        return f"+{group}={option}: {group} has an option already; choose it with {group}={option} (without +)"
    missing = re.search(r"Could not find '([\w/]+)/([^']+)'", message)
    if missing:
        group, name = missing.groups()
        options = re.findall(r"^\t(\S+)$", message, flags=re.M)
        text = f"{group}={name}: no such option{_did_you_mean(name, options)}\nOptions of {group}: {', '.join(options)}"
        if group.startswith("hydra/launcher"):
            text += (
                f"\nLaunchers are optional extras: {install_command('joblib')} (hydra/launcher=joblib) "
                f"or {install_command('slurm')} (submitit_local, submitit_slurm)"
            )
        return text
    if "does not support deletion" in str(cause) and full_key:
        return (
            f"~{full_key}: a setting of the schema cannot be removed; set it instead "
            f"(e.g. {full_key}=null where null is allowed)"
        )
    builder_node = getattr(cause, "parent_node", None)
    if full_key and object_type is dict and ("not in" in str(cause) or "Could not override" in message):
        told = _builder_key(full_key, builder_node, message)
        if told:
            return told
    if (
        full_key
        and object_type is not None
        and dataclasses.is_dataclass(object_type)
        and ("not in" in str(cause) or "Could not override" in message)
    ):
        name = full_key.rsplit(".", 1)[-1]
        valid = sorted(f.name for f in dataclasses.fields(object_type) if f.name != "_target_")
        where = f"{full_key.rsplit('.', 1)[0]} ({object_type.__name__})" if "." in full_key else "the top level"
        hint = _did_you_mean(name, valid)
        if "." not in full_key:
            hint = (
                hint
                or section_of(name)
                or (" (to select an option of a config group, write GROUP=OPTION; dlrun ls lists them)")
            )
        if full_key.startswith("hydra.sweeper.") and object_type.__name__ == "BasicSweeperConf":
            hint = hint or " (a setting of dlrunner's sweeper? Those apply to dlrun sweep, not dlrun train)"
        return f"{full_key}: no such setting in {where}{hint}\nValid keys: {', '.join(valid)}"
    wrong_type = re.search(r"Value '(.*)' of type '\w+' could not be converted to (\w+)", str(cause)) or re.search(
        r"Value '(.*)' is not a valid (bool)", str(cause)
    )
    if wrong_type and full_key:
        value, kind = wrong_type.groups()
        kind = "Boolean" if kind == "bool" else kind
        wanted = {
            "Float": "a number",
            "Integer": "a whole number",
            "Boolean": "true or false",
            "String": "a string",
        }.get(kind, kind)
        return f"{full_key}={value}: must be {wanted}"
    # A scalar where the schema has a list or a group of settings (model.layers=64, data.split=3)
    scalar = re.search(
        r"Error merging override ([^=\s]+)=(.*)\nInvalid (?:value|type) assigned: "
        r"\w+ is not a (ListConfig|subclass of (\w+))",
        f"{message}\n{cause}",
    )
    if scalar:
        key, value, kind, schema = scalar.groups()
        wanted = (
            "a list in brackets, e.g. [64, 32]"
            if kind == "ListConfig"
            else f"a group of settings ({schema}): set its keys, e.g. {key}.KEY=VALUE"
        )
        return f"{key}={value}: must be {wanted}"
    if err.__cause__ is not None and str(err.__cause__) not in message:
        message += "\n" + str(err.__cause__).strip()
    return message.split("\nConfig search path:")[0]  # Hydra's search-path dump is noise here
