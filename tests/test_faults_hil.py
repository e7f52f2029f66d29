"""Tier 3: a HIL session under QEMU through the fault-injecting TCP proxy (`mcuflow hil --faults`).

Every sample must end verified (CRC, seq, parity with the numpy reference) and none may be lost.
The 10,000-sample measurement is not run here (minutes); see bench/faults.py."""

from __future__ import annotations

import pytest
from conftest import ROOT, require_tools

from mcuflow.cli import main
from mcuflow.hil_result import FaultSession, read_result

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
    r = read_result(out)
    assert r.samples == 200 and r.lost == 0 and r.errors == 0
    assert r.parity_mismatches == 0, r.parity_examples
    assert r.faults == FaultSession(spec, 42, 1)
    link, extra = r.link, r.link.faults
    injected = sum(extra.injected[d][k] for d in ("down", "up") for k in ("drop", "flip", "garbage", "trunc"))
    assert injected > 10
    assert link.retries > 0 and link.frames_sent >= 200 + link.retries
    # Damaged frames were refused (the device's count restarts at each reboot, so both sides together).
    assert extra.device_frames_dropped + extra.frames_rejected_by_host > 0
    resets = extra.injected["down"]["reset"] + extra.injected["up"]["reset"]
    cuts = extra.injected["down"]["cut"] + extra.injected["up"]["cut"]
    # a reset restarts the emulator (a real reboot), a cut only reconnects to it
    assert extra.device_restarts == resets > 0 and extra.proxy_reconnects == resets + cuts


def test_hil_at_one_percent_byte_loss_sends_requests_in_parts(tmp_path, capsys):
    """Issue 7's rates per byte: whole ~260-byte frames would arrive ~6% of the time; parts get through."""
    out = tmp_path / "hil.json"
    code = main(
        ["hil", str(CHECKPOINT), "--samples", "100", "--workdir", str(tmp_path / "w"), "--json", str(out),
         "--quiet", "--no-profile", "--faults", "drop=0.01,flip=0.001", "--fault-seed", "7", "--timeout", "0.05"]
    )  # fmt: skip
    assert code == 0
    assert "requests in parts" in capsys.readouterr().out
    r = read_result(out)
    assert r.samples == 100 and r.lost == 0 and r.errors == 0
    assert r.parity_mismatches == 0, r.parity_examples
    link, extra = r.link, r.link.faults
    assert extra.fragment_transfers >= 99 and extra.fragment_statuses > 0 and extra.rehellos == 0
    assert link.frames_sent >= extra.fragment_parts_sent + extra.fragment_commits_sent
    assert extra.injected["down"]["drop"] > 500 and extra.device_frames_dropped > 100


@pytest.mark.parametrize("frames", ["lean", "full"])
def test_a_replay_through_a_faulty_proxy_with_reboots_loses_nothing(tmp_path, frames):
    """Sensor replay with lean (or full) answers through byte faults both ways, cuts and emulator reboots
    (the input table is loaded again at each): lost answers are asked for again, every sample verified."""
    out = tmp_path / "hil.json"
    spec = "drop=0.002,flip=0.001,garbage=0.0005,trunc=0.005,cut=0.01,reset=0.01"
    code = main(
        ["hil", str(CHECKPOINT), "--samples", "200", "--workdir", str(tmp_path / "w"), "--json", str(out),
         "--quiet", "--no-profile", "--feed", "replay", "--frames", frames, "--faults", spec, "--fault-seed", "5",
         "--timeout", "0.25"]
    )  # fmt: skip
    assert code == 0
    r = read_result(out)
    assert r.samples == 200 and r.lost == 0 and r.errors == 0
    assert r.parity_mismatches == 0, r.parity_examples
    assert (r.feed.feed, r.feed.frames) == ("replay", frames)
    extra = r.link.faults
    assert extra.injected["up"]["drop"] + extra.injected["up"]["flip"] > 0
    assert r.feed.replay_asked_again > 0 and r.feed.replay_requests > 1
    assert extra.device_restarts == extra.injected["down"]["reset"] + extra.injected["up"]["reset"]
