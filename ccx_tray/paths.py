"""Where ccx-tray keeps its files: the config path, the log folder, bundled assets.

Rules:
- The config path is `$CCX_TRAY_CONFIG` when set, else `<user config dir>/config.yaml`
  (platformdirs, app name "ccx-tray"); `--config` on the command line beats both.
- Assets are found through `resource_path` only, which works from a source checkout and
  from a PyInstaller bundle (files unpacked under `sys._MEIPASS`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

import platformdirs

APP_NAME = "ccx-tray"
CONFIG_ENV = "CCX_TRAY_CONFIG"
CONFIG_NAME = "config.yaml"


def default_config_path(env: Mapping[str, str] | None = None) -> Path:
    """The config file to use when none is given on the command line."""
    env = os.environ if env is None else env
    override = env.get(CONFIG_ENV)
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_config_dir(APP_NAME)) / CONFIG_NAME


def log_dir() -> Path:
    return Path(platformdirs.user_log_dir(APP_NAME))


def _asset_roots() -> list[Path]:
    roots = []
    bundle = getattr(sys, "_MEIPASS", None)  # set by PyInstaller's bootloader
    if bundle:
        roots.append(Path(bundle) / "assets")
    roots.append(Path(__file__).resolve().parent.parent / "assets")  # source checkout
    return roots


def resource_path(name: str) -> Path:
    """The path of `assets/<name>`; FileNotFoundError naming the places tried if absent."""
    tried = [root / name for root in _asset_roots()]
    for path in tried:
        if path.exists():
            return path
    raise FileNotFoundError(f"asset {name!r} not found in: " + ", ".join(map(str, tried)))
