"""An export is a library for someone else's firmware: CMake (host and Cortex-M4) and PlatformIO."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, require_tools

from mcuflow import reference
from mcuflow.data import bundled_test_subset
from mcuflow.export import export
from mcuflow.manifest import load_model

pytestmark = pytest.mark.toolchain

APP = r"""
#include <stdio.h>
#include "mcuflow_model.h"

/* Someone's own main loop: read raw int8 samples from stdin, print one line each. */
int main(void) {
    static int8_t x[MCUFLOW_INPUT_LEN];
    mcuflow_head_result_t r;
    while (fread(x, 1, sizeof x, stdin) == sizeof x) {
        if (mcuflow_head_run(x, &r) != 0) return 1;
        if (r.exited) {
            printf("exit %u %u %u\n", r.exit_index, r.label, r.confidence_q15);
        } else {
            unsigned i;
            printf("offload");
            for (i = 0; i < r.intermediate_len; i++) printf(" %d", r.intermediate[i]);
            printf("\n");
        }
    }
    return 0;
}
"""

M4_APP = r"""
#include "mcuflow_model.h"

static int8_t input[MCUFLOW_INPUT_LEN];
volatile uint8_t sink;

int main(void) {
    mcuflow_head_result_t r;
    for (;;) {
        if (mcuflow_head_run(input, &r) == 0) sink = r.exited ? r.label : (uint8_t)r.intermediate[0];
    }
}
"""

TOOLCHAIN = """
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR arm)
set(CMAKE_C_COMPILER arm-none-eabi-gcc)
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)
set(CMAKE_C_FLAGS_INIT "-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16 -O2")
set(CMAKE_EXE_LINKER_FLAGS_INIT "--specs=nosys.specs --specs=nano.specs")
"""


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory, monkeypatch_module) -> Path:
    out = tmp_path_factory.mktemp("lib") / "export"
    export(ROOT / "examples" / "paper_sparse.pt", out)
    return out


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    mp.delenv("MCUFLOW_DATA_DIR", raising=False)  # calibrate on the bundled images: no dataset needed
    yield mp
    mp.undo()


def _project(root: Path, export_dir: Path, main_c: str, extra: str = "") -> Path:
    root.mkdir(parents=True)
    (root / "main.c").write_text(main_c)
    (root / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.13)\n"
        "project(customer_app C)\n"
        f"{extra}"
        f'add_subdirectory("{export_dir}" mcuflow_model)\n'
        "add_executable(app main.c)\n"
        "target_link_libraries(app PRIVATE mcuflow_model)\n"
    )
    return root


def _cmake(src: Path, build: Path, *args: str) -> None:
    require_tools("cmake", "make")
    for cmd in (["cmake", "-S", str(src), "-B", str(build), *args], ["cmake", "--build", str(build), "-j2"]):
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


def test_export_carries_cmake_and_platformio_files(export_dir):
    assert (export_dir / "CMakeLists.txt").read_text().count("add_library(mcuflow_model STATIC") == 1
    meta = json.loads((export_dir / "library.json").read_text())
    assert meta["build"]["srcDir"] == "." and "+<*.c>" in meta["build"]["srcFilter"]
    assert json.loads((export_dir / "export.json").read_text())["model_hash"] in meta["description"]


def test_library_in_a_host_cmake_project_matches_the_reference(tmp_path, export_dir):
    require_tools("gcc")
    src = _project(tmp_path / "host", export_dir, APP, 'set(CMAKE_C_FLAGS "-Wall -Wextra -Werror")\n')
    _cmake(src, tmp_path / "host-build")
    images = bundled_test_subset().images[:200]
    x = reference.pixels_to_input(images)
    proc = subprocess.run([str(tmp_path / "host-build" / "app")], input=x.tobytes(), capture_output=True, timeout=60)
    assert proc.returncode == 0
    lines = proc.stdout.decode().splitlines()
    ref = reference.run(load_model(export_dir), x)
    assert len(lines) == len(x)
    for i, line in enumerate(lines):
        words = line.split()
        if ref.exited[i]:
            assert words == ["exit", str(ref.exit_index[i]), str(ref.label[i]), str(ref.confidence_q15[i])], i
        else:
            assert words[0] == "offload", i
            assert np.array_equal(np.array(words[1:], dtype=np.int64), ref.intermediate[i].astype(np.int64)), i


def test_library_in_a_cortex_m4_cmake_project(tmp_path, export_dir):
    require_tools("arm-none-eabi-gcc", "arm-none-eabi-size")
    src = _project(tmp_path / "m4", export_dir, M4_APP)
    (tmp_path / "m4" / "toolchain.cmake").write_text(TOOLCHAIN)
    _cmake(src, tmp_path / "m4-build", f"-DCMAKE_TOOLCHAIN_FILE={tmp_path / 'm4' / 'toolchain.cmake'}")
    elf = tmp_path / "m4-build" / "app"
    header = elf.read_bytes()[:20]
    assert header[:4] == b"\x7fELF" and header[18] == 40  # e_machine EM_ARM
    size = subprocess.run(["arm-none-eabi-size", "-A", str(elf)], capture_output=True, text=True, timeout=30).stdout
    weights = json.loads((export_dir / "export.json").read_text())["totals"]["all"]["weight_bytes"]
    rodata_and_text = sum(int(line.split()[1]) for line in size.splitlines() if line.startswith((".text", ".rodata")))
    assert rodata_and_text > weights  # the weights were linked in, not dropped


def test_hostile_model_name_stays_inside_comments_and_strings(tmp_path, monkeypatch_module):
    import shutil

    # The model is named after the checkpoint file, which may hold quotes and newlines.
    hostile = tmp_path / 'm"\n)\nexecute_process(COMMAND rm -rf x)\n# {"x": 1}.pt'
    shutil.copy(ROOT / "examples" / "paper_sparse.pt", hostile)
    out = tmp_path / "export"
    export(hostile, out)
    cmake = (out / "CMakeLists.txt").read_text()
    code = "\n".join(line for line in cmake.splitlines() if not line.lstrip().startswith("#"))
    assert "execute_process" not in code and "rm -rf" not in code
    meta = json.loads((out / "library.json").read_text())  # still valid JSON, same keys
    assert set(meta) == {"name", "version", "description", "keywords", "frameworks", "platforms", "build"}
