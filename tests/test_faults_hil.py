"""Tier 3: a HIL session under QEMU through the fault-injecting TCP proxy (`mcuflow hil --faults`).

Every sample must end verified (CRC, seq, parity with the numpy reference) and none may be lost.
The 10,000-sample measurement is not run here (minutes); see bench/faults.py."""

from __future__ import annotations

import json

import pytest
from conftest import ROOT, require_tools

from mcuflow.cli import main

CHECKPOINT = ROOT / "examples" / "paper_sparse.pt"
pytestmark = [pytest.mark.firmware, pytest.mark.slow]


@pytest.fixture(autouse=True)
def _tools(monkeypatch):
    require_tools("arm-none-eabi-gcc", "qemu-system-arm")
    monkeypatch.delenv("MCUFLOW_DATA_DIR", raising=False)  # the bundled subset: no dataset needed


def test_hil_through_a_faulty_proxy_with_reboots_loses_nothing_and_accepts_nothing_corrupt(tmp_path, capsys):
    out = tmp_path / "hil.json"
    spec = "drop=0.0004,flip=0.0002,dup=0.0001,garbage=0.0001,delim=0.0001,trunc=0.01,cut=0.01,reset=0.01"
    code = main(
        ["hil", str(CHECKPOINT), "--samples", "200", "--workdir", str(tmp_path / "w"), "--json", str(out),
         "--quiet", "--no-profile", "--faults", spec, "--fault-seed", "42", "--timeout", "0.15"]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr()
    assert f"faults: {spec} (seed 42)" in printed.err
    assert "frames sent" in printed.out and "emulator reboots" in printed.out
    r = json.loads(out.read_text())
    assert r["samples"] == 200 and r["lost"] == 0 and r["errors"] == 0
    assert r["parity_mismatches"] == 0, r["parity_examples"]
    assert r["faults"] == {"spec": spec, "seed": 42, "devices": 1}
    link = r["link"]
    injected = sum(link[f"faults_{d}_{k}"] for d in ("down", "up") for k in ("drop", "flip", "garbage", "trunc"))
    assert injected > 10
    assert link["retries"] > 0 and link["frames_sent"] >= 200 + link["retries"]
    # Damaged frames were refused (the device's count restarts at each reboot, so both sides together).
    assert link["device_frames_dropped"] + link["frames_rejected_by_host"] > 0
    resets = link["faults_down_reset"] + link["faults_up_reset"]
    cuts = link["faults_down_cut"] + link["faults_up_cut"]
    # a reset restarts the emulator (a real reboot), a cut only reconnects to it
    assert link["device_restarts"] == resets > 0 and link["proxy_reconnects"] == resets + cuts


def test_hil_at_one_percent_byte_loss_sends_requests_in_parts(tmp_path, capsys):
    """Issue 7's rates per byte: whole ~260-byte frames would arrive ~6% of the time; parts get through."""
    out = tmp_path / "hil.json"
    code = main(
        ["hil", str(CHECKPOINT), "--samples", "100", "--workdir", str(tmp_path / "w"), "--json", str(out),
         "--quiet", "--no-profile", "--faults", "drop=0.01,flip=0.001", "--fault-seed", "7", "--timeout", "0.05"]
    )  # fmt: skip
    assert code == 0
    assert "requests in parts" in capsys.readouterr().out
    r = json.loads(out.read_text())
    assert r["samples"] == 100 and r["lost"] == 0 and r["errors"] == 0
    assert r["parity_mismatches"] == 0, r["parity_examples"]
    link = r["link"]
    assert link["fragment_transfers"] >= 99 and link["fragment_statuses"] > 0 and link["rehellos"] == 0
    assert link["frames_sent"] >= link["fragment_parts_sent"] + link["fragment_commits_sent"]
    assert link["faults_down_drop"] > 500 and link["device_frames_dropped"] > 100
