"""Shared fixtures. Tier 2/3 tests need toolchains; with MCUFLOW_REQUIRE_TOOLCHAIN=1 (CI)
a missing tool is a failure, never a skip."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from hypothesis import settings

ROOT = Path(__file__).resolve().parents[1]
REQUIRE = os.environ.get("MCUFLOW_REQUIRE_TOOLCHAIN") == "1"

# CI must not go red on a slow machine (deadline) or on an example never seen before (derandomize):
# the property tests run the same examples every time. `--hypothesis-profile explore` searches anew.
settings.register_profile("mcuflow", deadline=None, derandomize=True, print_blob=True)
settings.register_profile("explore", deadline=None, max_examples=2000)
settings.load_profile("mcuflow")


# libFuzzer's RSS limit reads getrusage's peak RSS, which a child started by vfork+exec inherits
# from this pytest process (several GB after the MNIST tests), so it would stop a healthy fuzzer at
# its first check. The serve loop has no heap: bound single allocations instead (ASan finds leaks).
LIBFUZZER_MEMORY_FLAGS = ["-rss_limit_mb=0", "-malloc_limit_mb=1024"]


def load_script(relpath: str):
    """Import a script that is not part of the package (``bench/run.py``, say) as a module."""
    import importlib.util

    path = ROOT / relpath
    spec = importlib.util.spec_from_file_location(f"mcuflow_script_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def require_tools(*tools: str) -> None:
    """Skip (locally) or fail (CI) when a tool is not on PATH."""
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        msg = f"missing tools: {', '.join(missing)}"
        if REQUIRE:
            pytest.fail(msg + " (MCUFLOW_REQUIRE_TOOLCHAIN=1)")
        pytest.skip(msg)


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The MNIST directory: $MCUFLOW_DATA_DIR, else ../shared/datasets/mnist."""
    d = Path(os.environ.get("MCUFLOW_DATA_DIR") or ROOT.parent / "shared" / "datasets" / "mnist")
    if not (d / "t10k-images-idx3-ubyte.gz").exists() and not (d / "t10k-images-idx3-ubyte").exists():
        if REQUIRE:
            pytest.fail(f"MNIST not found in {d}")
        pytest.skip(f"MNIST not found in {d}")
    return d
