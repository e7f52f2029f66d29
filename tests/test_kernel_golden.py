"""Golden tests of the kernel library, TFLM style: firmware/kernels/tests/kernel_tests.c holds small
hand-made cases with hand-derived expected outputs (no numpy reference involved) and prints one line per
case. Here they run on the host (gcc and clang, the reference variant and the DSP variant on C models of
its instructions) and under QEMU (Cortex-M4 with the real DSP instructions, Cortex-M4 forced to the
reference variant, Cortex-M3)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT, require_tools

KERNELS = ROOT / "firmware" / "kernels"
TESTS = KERNELS / "tests"
STRICT = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic"]
STRICTER = ["-Wshadow", "-Wconversion", "-Wno-sign-conversion"]

# Every case kernel_tests.c runs, in order: each must report `ok` (a case that silently did not run fails).
CASES = [
    "requant.le32_identity",
    "requant.le32_half_round",
    "requant.le32_shift32",
    "requant.gt32_shift33",
    "requant.gt32_shift34",
    "requant.mult_three_quarters",
    "requant.shift62_extremes",
    "requant.zero_point",
    "requant.clamp_int8",
    "requant.relu_clamp",
    "requant.act_range_clamp",
    "fc_dense.n8_aligned",
    "fc_dense.n8_no_scratch",
    "fc_dense.n13_unaligned",
    "fc_dense.n7_partial_group",
    "fc_dense.n7_no_scratch",
    "fc_fixed.cols_u8",
    "fc_fixed.cols_u16",
    "fc_fixed.cols_u32",
    "fc_csr.cols_u8_rows_u8",
    "fc_csr.cols_u16_rows_u16",
    "fc_csr.cols_u16_rows_u32",
    "index_free.n7_d3_permuted",
    "index_free.n7_d3_walk",
    "index_free.n11_d6_permuted",
    "index_free.n11_d6_permuted_plan_m4",
    "index_free.n11_d6_walk",
    "index_free.n24_d16_aligned_permuted",
    "index_free.n24_d16_walk",
    "index_free.n5_d4_permuted",
    "index_free.n5_d4_walk",
    "index_free.n16_nx13_runs_permuted",
    "index_free.n16_nx13_general_permuted",
    "index_free.n16_nx13_walk",
    "exit.tie_lowest_index",
    "exit.tie_first_and_last",
    "exit.clamp_32767",
    "exit.at_threshold",
    "exit.below_threshold",
    "exit.two_classes",
    "exit.table_cut",
    "pad.copy",
    "pad.in_place",
    "pad.no_padding",
    "conv.dense_2x2_c2",
    "conv.pad_zero_point",
    "conv.sparse_straddle",
    "conv.stride2_relu",
    "pool.max_2x2",
    "pool.max_relu",
    "pool.max_in_place",
    "pool.avg_2x2_rounding",
    "pool.avg_global",
]
SUMMARY = re.compile(r"^summary cases=(\d+) failed=(\d+) variant=(\S+)$", re.MULTILINE)


def _assert_all_ok(text: str, variant: str) -> None:
    lines = text.splitlines()
    fails = [ln for ln in lines if ln.startswith("FAIL")]
    assert not fails, "\n".join(fails)
    oks = [ln[len("ok ") :] for ln in lines if ln.startswith("ok ")]
    missing = [c for c in CASES if c not in oks]
    assert not missing, f"cases without an ok line: {missing}\n{text[-2000:]}"
    assert oks == CASES, f"unexpected or repeated cases: {sorted(set(oks) ^ set(CASES))}"
    m = SUMMARY.search(text)
    assert m, f"no summary line:\n{text[-2000:]}"
    assert (int(m.group(1)), int(m.group(2)), m.group(3)) == (len(CASES), 0, variant)


def _host_build(compiler: str, flags: list[str], exe: Path) -> Path:
    cmd = [compiler, *STRICT, *flags, f"-I{KERNELS}", "-o", str(exe)]
    cmd += [str(TESTS / "kernel_tests.c"), str(TESTS / "host_main.c")]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, f"{' '.join(cmd)}\n{res.stderr[-4000:]}"
    return exe


@pytest.mark.toolchain
@pytest.mark.parametrize("compiler", ["gcc", "clang"])
@pytest.mark.parametrize(
    "flags,variant",
    [([], "reference"), (["-DMCUFLOW_EMULATE_DSP=1"], "dsp-emulated"), (STRICTER, "reference"),
     (STRICTER + ["-DMCUFLOW_EMULATE_DSP=1"], "dsp-emulated")],
    ids=["reference", "dsp-emulated", "reference-wconversion", "dsp-emulated-wconversion"],
)  # fmt: skip
def test_host_golden(compiler, flags, variant, tmp_path):
    require_tools(compiler)
    exe = _host_build(compiler, flags, tmp_path / "kernel_tests")
    res = subprocess.run([str(exe)], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    _assert_all_ok(res.stdout, variant)


@pytest.mark.toolchain
def test_host_failure_is_reported(tmp_path):
    """One spoiled expected value: a FAIL line in the documented form, the count, a non-zero exit."""
    require_tools("gcc")
    exe = _host_build("gcc", ["-DMCUFLOW_TESTS_BREAK_ONE=1"], tmp_path / "kernel_tests")
    res = subprocess.run([str(exe)], capture_output=True, text=True, timeout=30)
    assert res.returncode == 1
    for name in ("fc_dense.n8_aligned", "fc_dense.n8_no_scratch"):  # the two cases that share it
        assert f"FAIL {name}: index 2 got 10 want 11\n" in res.stdout
        assert f"ok {name}\n" not in res.stdout
    assert "ok fc_dense.n13_unaligned\n" in res.stdout  # the other cases still run
    m = SUMMARY.search(res.stdout)
    assert m and (int(m.group(1)), int(m.group(2))) == (len(CASES), 2)


@pytest.mark.firmware
@pytest.mark.parametrize(
    "board,cflags,variant",
    [("qemu-mps2-an386", (), "dsp"), ("qemu-mps2-an386", ("-DMCUFLOW_HAS_DSP=0",), "reference"),
     ("qemu-mps2-an385", (), "reference")],
    ids=["m4-dsp", "m4-reference", "m3-reference"],
)  # fmt: skip
def test_qemu_golden(board, cflags, variant, tmp_path):
    require_tools("arm-none-eabi-gcc", "qemu-system-arm")
    from mcuflow.build import build_app
    from mcuflow.qemu import QemuSession

    app = build_app(
        board,
        [TESTS / "kernel_tests.c", TESTS / "firmware_main.c"],
        [KERNELS],
        tmp_path,
        ("-Werror", *cflags),
    )
    assert app.elf.is_file() and app.flash_bytes > 0
    with QemuSession(app.elf, board) as q:
        text = q.read_until(b"summary ", timeout=30) + q.read_until(b"\n", timeout=10)
        status = q.wait(timeout=10)  # the semihosting exit status: 0 only when every case passed
    _assert_all_ok(text.decode(errors="replace"), variant)
    assert status == 0
