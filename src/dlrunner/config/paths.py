"""Where the configs are: the built-in ones and a user's own directory."""

from __future__ import annotations

import os
from pathlib import Path

# Set by `dlrun --config-dir DIR` (or by the user); read by the Hydra search-path plugin in
# hydra_plugins/dlrunner_searchpath, which puts DIR *before* the built-in configs so that a
# user's file of the same name overrides a built-in option.
USER_CONFIG_DIR_ENV = "DLRUN_CONFIG_DIR"


def builtin_config_dir() -> Path:
    """The built-in conf/ directory: inside the installed wheel, or at the repository's top."""
    package_dir = Path(__file__).resolve().parent.parent
    installed = package_dir / "conf"
    if installed.is_dir():
        return installed
    source_checkout = package_dir.parent.parent / "conf"  # src/dlrunner -> repo root
    if source_checkout.is_dir():
        return source_checkout
    raise FileNotFoundError(f"dlrunner's configs are missing: looked in {installed} and {source_checkout}")


def user_config_dir() -> Path | None:
    value = os.environ.get(USER_CONFIG_DIR_ENV)
    return Path(value).resolve() if value else None


def config_dirs() -> list[Path]:
    """Search order: the user's directory first, then the built-in one."""
    user = user_config_dir()
    return ([user] if user else []) + [builtin_config_dir()]
