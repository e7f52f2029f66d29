"""The one-way flow of docs/design.md: import-linter's contracts (pyproject.toml) over every import, lazy
ones included, and the rooms that must not load torch checked at run time too."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TORCH_FREE = ["mcuflow", "mcuflow.link", "mcuflow.ir", "mcuflow.passes", "mcuflow.codegen", "mcuflow.reference",
              "mcuflow.manifest", "mcuflow.boards", "mcuflow.build", "mcuflow.qemu", "mcuflow.codec"]  # fmt: skip


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_import_contracts_are_kept():
    lint = Path(sys.executable).with_name("lint-imports")  # import-linter, a test dependency
    res = subprocess.run([str(lint), "--no-cache"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert "0 broken" in res.stdout


@pytest.mark.parametrize("module", TORCH_FREE)
def test_lower_rooms_load_no_torch(module):
    res = _python(f"import sys, {module}; assert 'torch' not in sys.modules, 'torch loaded'")
    assert res.returncode == 0, res.stderr


@pytest.mark.parametrize("argv", [["--help"], ["boards"], ["export", "--help"], ["hil", "--help"]])
def test_cli_help_and_boards_load_no_torch(argv):
    res = _python(
        "import sys\nfrom mcuflow.cli import main\n"
        f"rc = main({argv!r})\n"
        "assert rc == 0, rc\nassert 'torch' not in sys.modules, 'torch loaded'"
    )
    assert res.returncode == 0, res.stderr
