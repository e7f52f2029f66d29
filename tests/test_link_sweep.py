"""Link compression across the system: the device's serve loop (host C, fake head) with
compiled-in pruning, the link-sweep command, and a QEMU hil session with pruning and 4-bit
values whose intermediate codes and bytes match the numpy reference."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import require_tools

from mcuflow.cli.main import main
from mcuflow.codec import compress as C
from mcuflow.codec import encodings as E
from mcuflow.hil_result import read_result
from mcuflow.link import DeviceClient, Offload, ProcessTransport

HERE = Path(__file__).resolve().parent
CHECKPOINT = HERE.parent / "examples" / "paper_sparse.pt"


def _fake_intermediate(x: np.ndarray) -> np.ndarray:
    """tests/c/link/fake_head.c's offloaded tensor (zero point -128, scale 2^-7)."""
    return ((x[:40].astype(np.int16) + x[::-1][:40].astype(np.int16)) & 0xFF).astype(np.uint8).view(np.int8)


@pytest.mark.toolchain
@pytest.mark.parametrize(
    "cfg",
    [
        C.LinkConfig(threshold=40, topk=5, bits=4, shift=4, code_zp=0),
        C.LinkConfig(topk=3),
        C.LinkConfig(bits=6, shift=2),
    ],
    ids=["T40-k5-4bit", "k3-8bit", "6bit"],
)
def test_serve_sends_what_the_reference_predicts(tmp_path, cfg):
    require_tools("gcc")
    spec = importlib.util.spec_from_file_location("link_build", HERE / "c" / "link" / "build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)  # type: ignore[union-attr]
    defines = [
        f"-DMCUFLOW_LINK_PRUNE_THRESHOLD={cfg.threshold}u",
        f"-DMCUFLOW_LINK_PRUNE_TOPK={cfg.topk}u",
        f"-DMCUFLOW_LINK_BITS={cfg.bits}u",
        f"-DMCUFLOW_LINK_SHIFT={cfg.shift}u",
        f"-DMCUFLOW_LINK_CODE_ZP={cfg.code_zp}u",
    ]
    srcs = [build.LINK_C, build.SERVE_C, HERE / "c" / "link" / "fake_head.c", HERE / "c" / "link" / "host_platform.c"]
    exe = build.compile_program(tmp_path / "device", srcs, "gcc", sanitize=True, extra=defines)
    t = ProcessTransport([str(exe)])
    try:
        client = DeviceClient(t, timeout=3.0)
        assert client.hello().encodings == [0, 1, 2, 3]
        rng = np.random.default_rng(3)
        for _ in range(12):
            x = rng.integers(-128, 128, 784).astype(np.int8)
            x[0] = 0
            x[100:700] = 0  # a mostly-zero tail, so some fake intermediates sum odd and offload
            if int(x.astype(np.int64).sum()) % 2 == 0:
                x[1] ^= 1
            reply = client.infer(x)
            assert isinstance(reply, Offload)
            codes, fill = C.link_codes(_fake_intermediate(x), -128, cfg)
            np.testing.assert_array_equal(reply.values, codes)
            assert (reply.bits, reply.zero_point) == (cfg.bits, fill)
            assert reply.scale == C.link_scale(2.0**-7, cfg)
            assert reply.encoding == E.choose(codes, cfg.bits, fill)
            assert reply.wire_len == len(E.encode(reply.encoding, codes, cfg.bits, fill)) + 26
    finally:
        t.close()


def test_link_sweep_writes_csv_plot_and_pareto(tmp_path, mnist_dir):
    out = tmp_path / "sweep"
    code = main(
        [
            "link-sweep",
            str(CHECKPOINT),
            "-o",
            str(out),
            "--data-dir",
            str(mnist_dir),
            "--samples",
            "400",
            "--thresholds",
            "0,32",
            "--topks",
            "0,6",
            "--bits",
            "8,4",
            "-q",
        ]
    )
    assert code in (0, None)
    rows = list(csv.DictReader((out / "link_sweep.csv").open()))
    assert len(rows) == 1 + 7  # the dense int8 baseline, then the 2*2*2 grid minus the identity
    base = rows[0]
    assert base["label"] == "8b" and float(base["accuracy_loss_points"]) == 0.0
    for r in rows:
        tensor = float(r["tensor_bytes"])
        assert 0 < tensor <= 40 and float(r["wire_bytes"]) == pytest.approx(tensor + 26, abs=1e-3)
        assert float(r["compression_vs_float32"]) == pytest.approx(160 / tensor, rel=1e-4)
    pruned = [r for r in rows if r["topk"] == "6" and r["bits"] == "4"]
    assert all(float(r["tensor_bytes"]) < float(base["tensor_bytes"]) / 3 for r in pruned)
    assert any(r["pareto"] == "True" for r in rows)
    assert (out / "link_pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((out / "link_sweep.json").read_text())
    rec = summary["recommended"]
    assert rec["accuracy_loss_points"] <= 1.0 + 1e-9 and rec["tensor_bytes"] <= float(base["tensor_bytes"])


@pytest.mark.firmware
@pytest.mark.slow
def test_hil_with_pruning_is_bit_exact_on_the_wire(tmp_path, monkeypatch):
    require_tools("arm-none-eabi-gcc", "qemu-system-arm")
    monkeypatch.delenv("MCUFLOW_DATA_DIR", raising=False)
    out = tmp_path / "hil.json"
    code = main(
        [
            "hil",
            str(CHECKPOINT),
            "--samples",
            "150",
            "--workdir",
            str(tmp_path / "w"),
            "--json",
            str(out),
            "-q",
            "--prune-topk",
            "6",
            "--link-bits",
            "4",
            "--prune-threshold",
            "8",
        ]
    )
    assert code in (0, None)
    r = read_result(out)
    lc = r.link_compression
    assert r.parity_mismatches == 0 and r.lost == 0 and r.errors == 0
    assert lc.offloads > 0 and lc.config.topk == 6 and lc.config.bits == 4
    assert lc.wire_bytes_per_offload_measured == pytest.approx(lc.wire_bytes_per_offload_predicted)
    assert lc.tensor_bytes_per_offload <= 1 + 6 + 3  # zero runs or index/value of at most 6 4-bit values
    assert r.reference_accuracy == r.accuracy
