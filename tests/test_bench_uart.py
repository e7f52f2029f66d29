"""bench/uart_rate.py: the emulator's per-byte receive cost is measured, positive and bounded."""

from __future__ import annotations

import pytest
from conftest import load_script, require_tools


@pytest.mark.firmware
def test_receive_cost_is_measured(tmp_path, capsys):
    require_tools("arm-none-eabi-gcc", "qemu-system-arm")
    bench = load_script("bench/uart_rate.py")
    elf = bench.build_firmware("qemu-mps2-an386", tmp_path)
    cost = bench.receive_cost_us(elf, "qemu-mps2-an386", 2000)
    # A device that dropped the burst unread would answer at once (cost ~0); a device that choked on it
    # would not answer the HELLO after it (the client would raise).
    assert 0.5 < cost < 5000
    assert bench.main(["--bytes", "1000", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "us per received byte" in out and "samples/s needs at most" in out


def test_lossless_estimate_is_below_raw_and_above_zero(mnist_dir):
    bench = load_script("bench/uart_rate.py")
    est = bench.lossless_estimate_bytes(mnist_dir)
    assert 40 < est < 784
