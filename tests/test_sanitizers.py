"""Memory safety of the device's protocol code: libFuzzer + ASan + UBSan on the host build of
firmware/link/mcuflow_link.c and firmware/app/serve.c (receiver, handlers, decoders), for a
bounded time; every crash reproducer kept in tests/bad_inputs/fuzz_regressions/ is replayed."""

from __future__ import annotations

import importlib.util
import os
import subprocess

import pytest
from conftest import LIBFUZZER_MEMORY_FLAGS, ROOT, require_tools

HERE = ROOT / "tests"
REGRESSIONS = HERE / "bad_inputs" / "fuzz_regressions"
SECONDS = int(os.environ.get("MCUFLOW_FUZZ_SECONDS", "30"))
SEED = int(os.environ.get("MCUFLOW_FUZZ_SEED", "20261122"))


def _build_module():
    spec = importlib.util.spec_from_file_location("link_c_build", HERE / "c" / "link" / "build.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def fuzzer(tmp_path_factory):
    require_tools("clang")
    build = _build_module()
    return build.compile_program(
        tmp_path_factory.mktemp("sanitizers") / "fuzz_serve",
        [build.LINK_C, HERE / "c" / "link" / "fuzz_serve.c"],
        "clang",
        extra=["-fsanitize=fuzzer,address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"],
    )


def _failure(proc: subprocess.CompletedProcess) -> str:
    return proc.stderr.decode(errors="replace")[-4000:]


def test_crash_reproducers_stay_fixed(fuzzer):
    files = sorted(p for p in REGRESSIONS.iterdir() if p.is_file())
    assert len(files) >= 5
    proc = subprocess.run([str(fuzzer), *map(str, files)], capture_output=True, timeout=120)
    assert proc.returncode == 0, _failure(proc)
    assert proc.stderr.count(b"Running: ") == len(files)


@pytest.mark.slow
def test_bounded_fuzz_run_finds_nothing(fuzzer, tmp_path):
    """A crash leaves its input in tmp_path/crash-*: copy it into tests/bad_inputs/fuzz_regressions/."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for p in REGRESSIONS.iterdir():  # the regression inputs are good seeds too
        (corpus / p.name).write_bytes(p.read_bytes())
    proc = subprocess.run(
        [str(fuzzer), f"-max_total_time={SECONDS}", f"-seed={SEED}", "-max_len=2200", *LIBFUZZER_MEMORY_FLAGS,
         "-timeout=10", f"-artifact_prefix={tmp_path}/", str(corpus)],
        capture_output=True,
        timeout=SECONDS + 120,
    )  # fmt: skip
    crashes = [p.name for p in tmp_path.glob("crash-*")] + [p.name for p in tmp_path.glob("timeout-*")]
    assert proc.returncode == 0 and not crashes, f"seed {SEED}, artifacts {crashes}\n{_failure(proc)}"
    runs = [line for line in proc.stderr.decode(errors="replace").splitlines() if line.startswith("Done ")]
    assert runs and int(runs[-1].split()[1]) > 1000, runs  # it really ran
    print(f"sanitizer fuzz: {runs[-1]} (seed {SEED}, {SECONDS} s)")
