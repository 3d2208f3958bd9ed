"""`dlrun ls`: the options of each config group, read straight from the config folders.

In a Hydra project the files of a group *are* the list of its options, so there is no registry
to keep in sync. Reading the files needs neither Hydra nor torch, which keeps `dlrun ls` instant.
Hydra's launcher and sweeper groups are plugins, not files: ``HYDRA_GROUPS`` lists them, each
shown where its plugin is installed.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path

from dlrunner.config.paths import builtin_config_dir, config_dirs, user_config_dir

_DEFAULT_LINE = re.compile(r"^\s*-\s*(?:override\s+)?(\w+)\s*:\s*([\w./-]+)\s*$")


@dataclass
class Option:
    group: str
    name: str
    description: str
    path: Path
    is_default: bool
    is_users: bool


def describe(path: Path) -> str:
    """The first comment line of a config file is its description."""
    for line in path.read_text().splitlines():
        if line.startswith("# @"):  # a Hydra directive such as "# @package _global_"
            continue
        if line.startswith("#"):
            return line.lstrip("#").strip()
        if line.strip():
            break
    return ""


def default_choices() -> dict[str, str]:
    """The default option of each group, from the primary config's defaults list."""
    for folder in config_dirs():
        primary = folder / "config.yaml"
        if primary.is_file():
            return dict(m.groups() for m in map(_DEFAULT_LINE.match, primary.read_text().splitlines()) if m)
    return {}


def options() -> dict[str, list[Option]]:
    """Every group's options; a user's file shadows a built-in one of the same name."""
    defaults, user = default_choices(), user_config_dir()
    found: dict[str, dict[str, Option]] = {}
    for folder in reversed(config_dirs()):  # built-in first, so the user's files replace them
        for file in sorted(folder.glob("*/*.yaml")):
            group = file.parent.name
            if group in ("hydra", "schema"):
                continue
            found.setdefault(group, {})[file.stem] = Option(
                group, file.stem, describe(file), file, defaults.get(group) == file.stem, folder == user
            )
    return {group: [found[group][n] for n in sorted(found[group])] for group in sorted(found)}


SUBMITIT = "hydra_plugins.hydra_submitit_launcher"
# Hydra's own groups for a sweep (options registered by plugins, not files here): each option with
# what it does and the module that must be installed for it (None: always there).
HYDRA_GROUPS = {
    "hydra/launcher": [
        ("basic", "one trial at a time, in the sweep's process (Hydra's default)", None),
        (
            "joblib",
            "trials in parallel worker processes: hydra.launcher.n_jobs (pip install '.[joblib]')",
            "hydra_plugins.hydra_joblib_launcher",
        ),
        (
            "stacked",
            "trials that share an architecture trained as one model: hydra.launcher.max_stack rows (64)",
            None,
        ),
        ("submitit_local", "each trial a local submitit job (pip install '.[slurm]')", SUBMITIT),
        ("submitit_slurm", "each trial a SLURM job (pip install '.[slurm]')", SUBMITIT),
    ],
    "hydra/sweeper": [
        ("dlrunner", "coarse to fine, random or grid search, with resume and pruning (dlrun sweep's default)", None),
        ("basic", "Hydra's grid over comma-separated values", None),
        ("optuna", "Optuna's samplers (pip install hydra-optuna-sweeper)", "hydra_plugins.hydra_optuna_sweeper"),
    ],
}


def hydra_options() -> dict[str, list[Option]]:
    """The options of Hydra's launcher and sweeper groups that are installed here."""
    from importlib.util import find_spec

    found = {}
    for group, entries in HYDRA_GROUPS.items():
        defaults = {"hydra/launcher": "basic", "hydra/sweeper": "dlrunner"}
        found[group] = [
            Option(group, name, description, Path(), defaults[group] == name, False)
            for name, description, module in entries
            if module is None or find_spec(module) is not None
        ]
    return found


def print_catalog(group: str | None = None) -> None:
    from rich.markup import escape
    from rich.table import Table

    from dlrunner.console import make_console

    catalog = {**options(), **hydra_options()}
    if group is not None and group not in catalog:
        close = difflib.get_close_matches(group, list(catalog), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise KeyError(f"no config group {group!r}{hint}; groups are: {', '.join(catalog)}")
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    table.add_column("group")
    table.add_column("option")
    table.add_column("description")
    for name, group_options in catalog.items():
        if group is not None and name != group:
            continue
        for option in group_options:
            label = option.name + (" *" if option.is_default else "") + (" (yours)" if option.is_users else "")
            table.add_row(name, label, escape(option.description))  # descriptions hold brackets: a[l+2]
    console = make_console()
    console.print(table)
    console.print(
        "* = default.  Select with GROUP=OPTION, e.g. dlrun train model=logreg.  "
        f"Built-in configs: {builtin_config_dir()}"
    )
