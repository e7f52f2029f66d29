"""Tier 3: real host-in-the-loop sessions under QEMU, checked against the numpy reference."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from conftest import ROOT, require_tools

from mcuflow.cli import main
from mcuflow.hil_result import FORMAT_VERSION, read_result

CHECKPOINT = ROOT / "examples" / "paper_sparse.pt"
KEYS = (
    "samples",
    "accuracy",
    "float_accuracy",
    "reference_accuracy",
    "exit_rate",
    "parity_mismatches",
    "bytes_up_per_sample",
    "bytes_per_offload",
    "bytes_down_per_sample",
    "device_instructions_mean",
    "samples_per_second",
    "lost",
)

pytestmark = [pytest.mark.firmware, pytest.mark.slow]


def _qemu_pids() -> set[str]:
    """This test process's own emulators (its children): other sessions' QEMUs on the machine do not count."""
    cmd = ["pgrep", "-P", str(os.getpid()), "-f", "qemu-system-arm"]
    return set(subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.split())


@pytest.fixture(autouse=True)
def _tools(monkeypatch):
    require_tools("arm-none-eabi-gcc", "qemu-system-arm")
    monkeypatch.delenv("MCUFLOW_DATA_DIR", raising=False)  # the bundled subset: no dataset needed


@pytest.mark.parametrize(
    "board,samples,feed",
    [
        ("qemu-mps2-an386", 120, "auto"),
        ("qemu-mps2-an386", 60, "host"),
        ("qemu-mps2-an385", 25, "auto"),
        ("qemu-mps2-an500", 25, "auto"),
        ("qemu-netduinoplus2", 25, "auto"),
    ],
)
def test_hil_session_is_bit_exact(tmp_path, board, samples, feed):
    before = _qemu_pids()
    out = tmp_path / "hil.json"
    report = tmp_path / "report.html"
    code = main(
        [
            "hil",
            str(CHECKPOINT),
            "--board",
            board,
            "--samples",
            str(samples),
            "--feed",
            feed,
            "--workdir",
            str(tmp_path / "w"),
            "--json",
            str(out),
            "--report",
            str(report),
            "--quiet",
        ]
    )
    assert code == 0
    written = json.loads(out.read_text())
    for key in KEYS:  # what readers of --json rely on
        assert key in written, key
    assert written["format_version"] == FORMAT_VERSION
    r = read_result(out)
    assert r.samples == samples
    assert r.lost == 0 and r.errors == 0
    assert r.parity_mismatches == 0, r.parity_examples
    # Bit-exact device + the same tail means the device's accuracy is the reference's.
    assert r.accuracy == pytest.approx(r.reference_accuracy)
    assert 0.0 <= r.exit_rate <= 1.0
    assert r.device_instructions_mean > 1000  # the head has 1,600 MACs: a counter stuck at 0 fails here
    assert r.bytes_down_per_sample > 0 and r.bytes_up_per_sample > 0
    assert r.samples_per_second > 0
    if feed == "auto":  # every QEMU board has a replay region: the inputs never cross the link
        assert (r.feed.feed, r.feed.frames, r.feed.instructions_from) == ("replay", "lean", "device totals")
        assert r.bytes_down_per_sample < 1 and r.bytes_per_local_result == 11
        assert r.feed.replay_runs == 1 and r.feed.replay_asked_again == 0
    else:
        assert (r.feed.feed, r.feed.frames, r.feed.instructions_from) == ("host", "full", "answers")
        assert r.bytes_down_per_sample > 100 and r.bytes_per_local_result == 18
    assert report.read_text().count("data:image/png;base64,") >= 3
    assert _qemu_pids() <= before  # no orphan emulator
    # Per-layer counts from the selftest firmware: every layer, each at least one instruction per MAC,
    # and together no more than the whole head (which adds the exit decision and the input copy).
    per_layer = r.layer_instructions
    layers = r.export.all_layers()
    assert list(per_layer) == [x.name for x in layers]
    for x in layers:
        assert per_layer[x.name] >= x.nnz, x.name
    assert sum(per_layer.values()) <= r.device_instructions_mean
    html = report.read_text()
    assert "<th>device instructions</th>" in html and "not measured" not in html
    assert f"<td>{per_layer[layers[0].name]:,.0f}</td>" in html
    # the report command renders the same page from the JSON
    again = tmp_path / "again.html"
    assert main(["report", str(out), "-o", str(again)]) == 0
    assert again.read_text() == html


def test_hil_refuses_a_hardware_board(tmp_path, capsys):
    code = main(["hil", str(CHECKPOINT), "--board", "nucleo-f401re", "--samples", "5", "--workdir", str(tmp_path)])
    assert code != 0
    assert "hardware" in capsys.readouterr().err


def test_hil_rejects_more_samples_than_bundled(tmp_path, capsys):
    code = main(["hil", str(CHECKPOINT), "--samples", "100000", "--workdir", str(tmp_path / "w")])
    assert code != 0
    err = capsys.readouterr().err
    assert "--data-dir" in err and "Traceback" not in err


@pytest.mark.parametrize("feed", ["replay", "host"])
def test_hil_with_parallel_devices_keeps_every_sample_in_order(tmp_path, feed):
    out = tmp_path / "hil.json"
    code = main(
        [
            "hil",
            str(CHECKPOINT),
            "--samples",
            "40",
            "--feed",
            feed,
            "--devices",
            "2",
            "--no-profile",
            "--workdir",
            str(tmp_path / "w"),
            "--json",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    r = read_result(out)
    assert r.devices == 2 and r.samples == 40 and r.answered == 40
    assert r.parity_mismatches == 0 and r.lost == 0
    assert r.accuracy == pytest.approx(r.reference_accuracy)
    assert r.link.faults is None and r.feed.feed == feed
    if feed == "host":
        assert r.link.requests >= 40  # both devices' counters, added up
    else:  # one REPLAY per device, each for its own half of the table
        assert r.feed.replay_runs == 2 and r.feed.replay_requests == 2 and r.feed.replay_asked_again == 0


def test_a_paced_replay_gives_the_same_answers(tmp_path):
    out = tmp_path / "hil.json"
    args = ["hil", str(CHECKPOINT), "--samples", "30", "--no-profile", "--quiet", "--json", str(out)]
    assert main([*args, "--replay-period", "100000", "--frames", "full", "--workdir", str(tmp_path / "w")]) == 0
    r = read_result(out)
    assert (r.feed.period, r.feed.frames, r.feed.instructions_from) == (100000, "full", "answers")
    assert r.parity_mismatches == 0 and r.lost == 0 and r.bytes_per_local_result == 18


def test_replay_refuses_more_samples_than_the_region_holds_and_a_board_without_one(tmp_path, capsys):
    from mcuflow.boards import load_board
    from mcuflow.hil import choose_feed

    an386 = load_board("qemu-mps2-an386").qemu
    assert choose_feed("auto", an386, (100, 784), None, "b") == "replay"
    assert choose_feed("auto", an386, (100, 784), "drop=0.01", "b") == "host"  # faults: the host feeds
    assert choose_feed("auto", an386, (30000, 784), None, "b") == "host"
    assert choose_feed("replay", an386, (100, 784), "drop=0.01", "b") == "replay"
    with pytest.raises(Exception, match="do not fit"):
        choose_feed("replay", an386, (30000, 784), None, "b")
    code = main(["hil", str(CHECKPOINT), "--board", "nucleo-f401re", "--emulate", "--feed", "replay",
                 "--samples", "5", "--no-profile", "--workdir", str(tmp_path / "w")])  # fmt: skip
    assert code != 0 and "no replay region" in capsys.readouterr().err
