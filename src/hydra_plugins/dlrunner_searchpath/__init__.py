"""Puts a user's own config directory in front of dlrunner's built-in configs.

Hydra's ``--config-dir`` appends a directory *after* the primary config path, so a user's
``model/mlp.yaml`` could add options but never override a built-in one. ``dlrun --config-dir``
sets DLRUN_CONFIG_DIR instead, and this plugin prepends it. (``hydra_plugins`` is a namespace
package: it has no ``__init__.py``.)
"""

import os

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin


class DlrunnerUserConfigDir(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        user_dir = os.environ.get("DLRUN_CONFIG_DIR")
        if user_dir:
            search_path.prepend(provider="dlrunner-user", path=f"file://{os.path.abspath(user_dir)}")
