"""Puts a user's own config directory in front of dlrunner's built-in configs -- in dlrun only.

Hydra's ``--config-dir`` appends a directory *after* the primary config path, so a user's
``model/mlp.yaml`` could add options but never override a built-in one. ``dlrun --config-dir``
sets DLRUN_CONFIG_DIR instead, and this plugin prepends it. Hydra runs every search-path plugin
installed in the environment for every app, so the plugin acts only where dlrun's configs are
composed: when dlrun's built-in config folder is in the search path, or when the ``dlrun`` command
itself runs (``dlrun train --config-path SWEEP --config-name best`` names dlrun's folder only later,
in best.yaml's ``hydra.searchpath``). Any other Hydra app keeps its own search path.
(``hydra_plugins`` is a namespace package: it has no ``__init__.py``.)
"""

import os

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

# Set by the dlrun command line (dlrunner.cli.base) before it hands its arguments to Hydra.
IN_DLRUN_COMMAND = {"active": False}


class DlrunnerUserConfigDir(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        from dlrunner.config.paths import USER_CONFIG_DIR_ENV, builtin_config_dir

        user_dir = os.environ.get(USER_CONFIG_DIR_ENV)
        if not user_dir:
            return
        builtin = os.path.realpath(builtin_config_dir())
        ours = IN_DLRUN_COMMAND["active"] or any(
            entry.path is not None and os.path.realpath(entry.path.removeprefix("file://")) == builtin
            for entry in search_path.get_path()
        )
        if ours:
            search_path.prepend(provider="dlrunner-user", path=f"file://{os.path.abspath(user_dir)}")
