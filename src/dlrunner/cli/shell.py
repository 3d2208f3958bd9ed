"""What the shell sees of ``dlrun``: the command classes that complete overrides and end the help
with the config groups and Hydra's flags, and Hydra's flags accepted anywhere on the line.

Everything here reads the config folders the way ``dlrun ls`` does (``config.catalog``): files and
YAML only, no Hydra composition and no torch, so that a completion query and ``--help`` answer at
once.
"""

from __future__ import annotations

import os
from pathlib import Path

from typer.core import TyperCommand, TyperGroup

# Hydra's flags that take a value, and --info's optional one (hydra/_internal/utils.py's parser).
HYDRA_FLAGS_WITH_VALUE = {
    "-cp",
    "--config-path",
    "-cn",
    "--config-name",
    "-p",
    "--package",
    "-c",
    "--cfg",
    "-sc",
    "--shell-completion",
    "--experimental-rerun",
}
INFO_CHOICES = {"all", "config", "defaults", "defaults-tree", "plugins", "searchpath"}
# Every option of Hydra's parser (hydra/_internal/utils.py), each spelling
HYDRA_OPTIONS = HYDRA_FLAGS_WITH_VALUE | {
    *("-h", "--help", "-hh", "--hydra-help", "--version", "--resolve", "-r", "--run"),
    *("-m", "--multirun", "-cd", "--config-dir", "-i", "--info"),
}
HYDRA_FLAGS = [
    "-m",
    "--multirun",
    "--cfg",
    "--resolve",
    "--package",
    "--info",
    "--config-path",
    "--config-name",
    "--hydra-help",
]
COMMANDS_WITH_OVERRIDES = ("train", "sweep", "show", "summary", "gradcheck", "check", "learning-curve")


def hydra_order(args: list[str]) -> list[str]:
    """Hydra's flags (with their values) first, then the overrides, each in the order given.

    Hydra's argument parser takes its overrides as one run of positional words, so a flag between
    two overrides (`dlrun sweep sweep=lr -cn config data=moons`) was "unrecognized arguments"."""
    flags, overrides = [], []
    it = iter(range(len(args)))
    for i in it:
        arg = args[i]
        if not arg.startswith("-") or arg.startswith(("~", "+")):
            overrides.append(arg)
            continue
        flags.append(arg)
        takes_value = arg in HYDRA_FLAGS_WITH_VALUE or (
            arg in ("-i", "--info") and i + 1 < len(args) and args[i + 1] in INFO_CHOICES
        )
        if takes_value and i + 1 < len(args):
            flags.append(args[next(it)])
        elif arg in ("-i", "--info"):  # bare: its default said, or it would take the first override as its choice
            flags.append("all")
    return flags + overrides


def config_help() -> str:
    """The epilog of the commands that take overrides: dlrun's groups and the Hydra flags that work."""
    from dlrunner.config.catalog import options

    lines = ["\b", "Config groups (GROUP=OPTION; * = the default; dlrun ls GROUP describes them):"]
    for group, found in options().items():
        lines.append(f"  {group}: " + ", ".join(o.name + ("*" if o.is_default else "") for o in found))
    lines += [
        "",
        "\b",
        "Hydra's flags (anywhere on the line):",
        "  -m, --multirun        one run per combination of a,b,c values",
        "  --cfg job|hydra|all   print the config instead of running (--resolve: with values resolved)",
        "  -p, --package KEY     with --cfg: only this part of the config",
        "  --info [config|defaults|defaults-tree|plugins|searchpath]",
        "  -cp DIR -cn NAME      another primary config, e.g. a sweep's best.yaml",
        "  --hydra-help          Hydra's own help; hydra.* overrides set Hydra (hydra.run.dir=DIR)",
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------ the command classes


class DlrunGroup(TyperGroup):
    """dlrun's command group: the commands that take overrides answer shell completion from the
    config tree and end their help with dlrun's config groups and the Hydra flags that work."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for name, command in self.commands.items():
            # The commands are declared in commands.py and diagnostics.py with Typer's own class;
            # giving them ours here keeps those declarations plain.
            if name in COMMANDS_WITH_OVERRIDES and type(command) is TyperCommand:
                command.__class__ = OverridesCommand

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        # -h is --help (it used to reach Hydra's app help, which listed the internal schema/*
        # groups; Hydra's own help stays at --hydra-help). Not a click option named -h: click would
        # then read -cd=/path/with/h/in/it as a cluster of short options and find -h in it.
        return super().parse_args(ctx, ["--help" if arg == "-h" else arg for arg in args])


class OverridesCommand(TyperCommand):
    def format_epilog(self, ctx, formatter) -> None:
        super().format_epilog(ctx, formatter)
        formatter.write_paragraph()
        formatter.write_text(config_help())  # read only when help is asked for

    def shell_complete(self, ctx, incomplete: str):
        from click.shell_completion import CompletionItem

        if not incomplete and _bash_word() == "=":
            incomplete = "="  # click turns bash's "=" word into "": `model=<TAB>` and `model <TAB>` would look alike
        found = super().shell_complete(ctx, incomplete) if incomplete.startswith("-") else []
        return found + [CompletionItem(word) for word in complete_override(list(ctx.args), incomplete)]


def _bash_word() -> str | None:
    """The word bash is completing, from the variables Typer's bash script passes."""
    words, index = os.environ.get("COMP_WORDS"), os.environ.get("COMP_CWORD", "")
    if words is None or not index.isdigit():
        return None
    split = words.replace("\n", " ").split(" ")  # Typer's bash script joins them with its IFS, a newline
    return split[int(index)] if int(index) < len(split) else ""


# ------------------------------------------------------------------ completion

COMPLETION_SHELLS = ("bash", "zsh", "fish", "powershell", "pwsh")  # the shells Typer writes scripts for


def shown_completion(args: list[str]) -> str | None:
    """The script of `dlrun --show-completion SHELL` (None when ``args`` are something else).

    Typer's own --show-completion takes no value where shellingham is installed: it prints the
    script of the shell that runs dlrun, so `--show-completion zsh` typed in bash gave bash's script,
    and outside an interactive shell it found none. A shell named on the line is taken here.
    Raises ValueError, with the message to show, for a shell Typer has no script for."""
    if len(args) != 2 or args[0] != "--show-completion":
        return None
    from typer.completion import get_completion_script

    if args[1] not in COMPLETION_SHELLS:
        raise ValueError(
            f"--show-completion {args[1]!r}: not a shell dlrun completes; choose one of {', '.join(COMPLETION_SHELLS)}"
        )
    return get_completion_script(prog_name="dlrun", complete_var="_DLRUN_COMPLETE", shell=args[1])


def complete_override(words: list[str], incomplete: str) -> list[str]:
    """Completions of one override, from the config tree: `model=<TAB>` the group's options,
    `optimizer.<TAB>` the chosen option's keys, a bare word the groups and top-level keys.

    bash splits `model=ml` into `model`, `=`, `ml` (= is one of its word breaks) and replaces only
    the part after `=`: then the options alone are answered. zsh and fish keep the word whole."""
    from dlrunner.config.catalog import options

    groups = options()
    if incomplete.startswith("-"):
        return [flag for flag in HYDRA_FLAGS if flag.startswith(incomplete)]
    if incomplete == "=" and words:  # bash, cursor right after `model=`
        return _option_names(groups, words[-1], "")
    if len(words) >= 2 and words[-1] == "=":  # bash, `model=ml`
        return _option_names(groups, words[-2], incomplete)
    if "=" in incomplete:  # zsh, fish
        key, _, partial = incomplete.partition("=")
        return [f"{key}={name}" for name in _option_names(groups, key, partial)]
    if "." in incomplete:
        return _keys(groups, words, incomplete)
    top = [f"{group}=" for group in groups] + [f"{key}." for key in _top_level_nodes()]
    return [word for word in top if word.startswith(incomplete.lstrip("+~"))]


def _option_names(groups: dict, key: str, partial: str) -> list[str]:
    group = key.lstrip("+~").split("@")[0]
    return [o.name for o in groups.get(group, []) if o.name.startswith(partial)]


def _keys(groups: dict, words: list[str], incomplete: str) -> list[str]:
    """`optimizer.l` -> optimizer.lr=, ...: the keys of the option chosen on the line (or the default)."""
    prefix = incomplete.lstrip("+~")
    head, _, partial = prefix.rpartition(".")
    root, *inner = head.split(".")
    if root in groups:
        chosen = next((w.split("=", 1)[1] for w in reversed(words) if w.lstrip("+~").startswith(f"{root}=")), None)
        found = [o for o in groups[root] if o.name == chosen] or [o for o in groups[root] if o.is_default]
        node = _with_schema_keys(_load(found[0].path)) if found else {}
    else:
        node = _top_level_nodes().get(root, {})
    for part in inner:
        node = node.get(part) if isinstance(node, dict) else None
    if not isinstance(node, dict):
        return []
    return [
        f"{head}.{key}" + ("." if isinstance(value, dict) else "=")
        for key, value in node.items()
        if key != "defaults" and str(key).startswith(partial)
    ]


def _with_schema_keys(node: dict) -> dict:
    """An option's own keys and those of the schema its defaults list names: the keys its builder
    defaults (dlrunner.config.derive) are not written in its YAML file."""
    import dataclasses

    from dlrunner.config.schema import all_schemas

    schemas = all_schemas()
    for entry in node.get("defaults") or []:
        name = entry.split("@")[0].lstrip("/") if isinstance(entry, str) else None
        if name in schemas:
            keys = {f.name: None for f in dataclasses.fields(schemas[name]) if f.name != "_target_"}
            node = {**keys, **node}
    return node


def _top_level_nodes() -> dict:
    """The primary config's own nodes that are not groups (diagnosis, metric, ...)."""
    from dlrunner.config.paths import config_dirs

    for folder in config_dirs():
        if (folder / "config.yaml").is_file():
            config = _load(folder / "config.yaml")
            return {k: v for k, v in config.items() if k not in ("defaults", "hydra") and isinstance(v, dict)}
    return {}


def _load(path: Path) -> dict:
    import yaml

    try:
        loaded = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return loaded if isinstance(loaded, dict) else {}
