"""A wheel carries everything mcuflow reads at run time, and works without the source tree."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT, require_tools

ASSETS = {"templates": "templates", "firmware": "firmware", "boards": "boards", "examples": "examples"}


def _source_files(directory: str) -> set[str]:
    base = ROOT / directory
    return {
        p.relative_to(base).as_posix()
        for p in base.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc",)
    }


def test_every_package_is_listed():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "mcuflow").rglob("__init__.py")}
    assert on_disk <= listed, f"add to [tool.setuptools] packages: {sorted(on_disk - listed)}"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    cmd = [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q", "-w", str(out)]
    subprocess.run(cmd, check=True, timeout=300, capture_output=True)
    (whl,) = out.glob("mcuflow-*.whl")
    return whl


def test_wheel_carries_every_asset(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for packaged, source in ASSETS.items():
        shipped = {
            n.split(f"mcuflow/_assets/{packaged}/", 1)[1] for n in names if n.startswith(f"mcuflow/_assets/{packaged}/")
        }
        missing = _source_files(source) - shipped
        assert not missing, f"{source}/ files missing from the wheel: {sorted(missing)}"
    assert "mcuflow/_assets/results_model/table1.csv" in names


@pytest.mark.firmware
def test_unpacked_wheel_exports_and_builds_without_the_source_tree(wheel, tmp_path):
    require_tools("arm-none-eabi-gcc")
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCUFLOW_")}
    env["PYTHONPATH"] = str(site)
    work = tmp_path / "work"  # outside the repository: nothing can be found by walking up from cwd
    work.mkdir()

    def mcuflow(*argv: str) -> str:
        proc = subprocess.run(
            [sys.executable, "-m", "mcuflow", *argv], cwd=work, env=env, capture_output=True, text=True, timeout=600
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout + proc.stderr

    where = subprocess.run(
        [sys.executable, "-c", "import mcuflow.paths as p; print(p.__file__); print(p.firmware_dir())"],
        cwd=work, env=env, capture_output=True, text=True, timeout=60, check=True,
    ).stdout.split()  # fmt: skip
    assert all(Path(w).is_relative_to(site) for w in where), where
    ckpt = site / "mcuflow" / "_assets" / "examples" / "paper_sparse.pt"
    mcuflow("export", str(ckpt), "-o", "export", "--calibration-samples", "50")
    out = mcuflow("build", "export", "--board", "qemu-mps2-an386")
    assert (work / "export" / "build" / "qemu-mps2-an386" / "firmware.elf").is_file(), out
    assert "qemu-mps2-an386" in mcuflow("boards")
