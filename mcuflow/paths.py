"""Where mcuflow's non-Python assets live: C templates, firmware sources and board files.

In a source checkout (an editable install) they sit next to the package; a wheel carries
them inside it, as ``mcuflow/_assets/<name>`` (see pyproject.toml). The environment variables
let a test or a user point elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

from mcuflow.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
PACKAGED = Path(__file__).resolve().parent / "_assets"


def _asset_dir(env: str, name: str, packaged: str | None = None) -> Path:
    if os.environ.get(env):
        d = Path(os.environ[env])
    elif (ROOT / name).is_dir() and (ROOT / "pyproject.toml").is_file():
        d = ROOT / name
    else:
        d = PACKAGED / (packaged or name)
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


def examples_dir() -> Path:
    """The bundled checkpoint and the 500-image MNIST test subset."""
    return _asset_dir("MCUFLOW_EXAMPLES_DIR", "examples")


def model_results_dir() -> Path:
    """The model sweep (Table I) the report plots by default."""
    return _asset_dir("MCUFLOW_RESULTS_DIR", "docs/results-model", packaged="results_model")
