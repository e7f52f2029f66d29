"""Where mcuflow's non-Python assets live: C templates, firmware sources and board files.

They sit next to the package in the source tree (the package is installed editable); the
environment variables let a packaged install or a test point elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

from mcuflow.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def _asset_dir(env: str, name: str) -> Path:
    d = Path(os.environ.get(env) or ROOT / name)
    if not d.is_dir():
        raise ConfigError(f"mcuflow's {name}/ directory not found at {d} (set {env} to its location)")
    return d


def templates_dir() -> Path:
    """The Jinja2 templates of the generated C library."""
    return _asset_dir("MCUFLOW_TEMPLATES_DIR", "templates")


def firmware_dir() -> Path:
    """Startup code, drivers, linker-script template and applications."""
    return _asset_dir("MCUFLOW_FIRMWARE_DIR", "firmware")


def boards_dir() -> Path:
    """One TOML file per board."""
    return _asset_dir("MCUFLOW_BOARDS_DIR", "boards")
