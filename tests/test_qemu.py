"""The self-test firmware under QEMU on all four QEMU boards, over the socket UART, and the
launcher's guarantee that no QEMU outlives its session."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import require_tools
from firmware_helpers import QEMU_BOARDS, builtin_input, copy_fake_export, load_fake_model, parse_fields

from mcuflow import paths
from mcuflow.boards import load_board
from mcuflow.build import build
from mcuflow.errors import ConfigError, ToolchainError
from mcuflow.qemu import QemuSession

pytestmark = pytest.mark.firmware
fake = load_fake_model()


@pytest.fixture(scope="module")
def firmwares(tmp_path_factory) -> dict[str, Path]:
    require_tools("arm-none-eabi-gcc", "qemu-system-arm")
    export = copy_fake_export(tmp_path_factory.mktemp("qemu") / "export")
    return {b: build(export, b, app="selftest").elf for b in QEMU_BOARDS}


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def check_result(line: str, x: np.ndarray) -> dict:
    """The device's answer must equal the Python mirror of the model's integer arithmetic."""
    f = parse_fields(line)
    want = fake.head_run(x)
    assert f["rc"] == "0" and int(f["exited"]) == want["exited"], line
    if want["exited"]:
        assert (int(f["label"]), int(f["conf"])) == (want["label"], want["confidence_q15"]), line
    else:
        assert bytes.fromhex(f["inter"]) == want["intermediate"] and int(f["zp"]) == want["zero_point"], line
    return f


def inputs_of_both_kinds() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    found: dict[int, np.ndarray] = {}
    while len(found) < 2:
        x = rng.integers(-128, 128, size=fake.INPUT_LEN).astype(np.int8)
        x[rng.random(fake.INPUT_LEN) < rng.random()] = -128  # vary the density, like MNIST's blank border
        found.setdefault(fake.head_run(x)["exited"], x)
    return found[1], found[0]


@pytest.mark.parametrize("board", QEMU_BOARDS)
def test_selftest_answers_over_serial(firmwares, board):
    counts = {}
    with QemuSession(firmwares[board], board, boot_token=b"ready\n") as q:
        banner = q.boot_text.decode()
        lines = banner.splitlines()
        head = parse_fields(lines[0])
        assert head["board"] == board and head["unit"] == "instructions" and head["hash"] == fake.MODEL_HASH.hex()
        f = check_result(lines[1], builtin_input(fake.INPUT_LEN))
        counts["builtin"] = int(f["count"])

        exits, stays = inputs_of_both_kinds()
        for x in (exits, stays):
            q.write(b"r" + x.tobytes())
            check_result(q.read_until(b"\n").decode(), x)

        q.write(b"e\xa5")
        assert q.read_until(b"\n") == b"echo=a5\n"

        # Two instructions per loop iteration: checks the board's SysTick scale end to end.
        n = 100_000
        q.write(b"c" + n.to_bytes(4, "little"))
        calib = int(parse_fields(q.read_until(b"\n").decode())["count"])
        per_tick = float(load_board(board).counter.per_tick)
        assert abs(calib - 2 * n) <= 2 * per_tick + 64, calib

        # 50 runs in one window: the per-run count is deterministic, so the total scales linearly.
        q.write(b"b" + (50).to_bytes(4, "little"))
        bench = parse_fields(q.read_until(b"\n").decode())
        assert bench["runs"] == "50"
        assert int(bench["count"]) / 50 == pytest.approx(counts["builtin"], rel=0.01)

        q.write(b"q\x03")
        q.read_until(b"bye\n")
        assert q.wait(timeout=10) == 3  # the semihosting exit status reaches the host
    # An inference of this model is tens of thousands of instructions, not zero (DWT would read 0).
    assert 5_000 < counts["builtin"] < 200_000


def test_no_qemu_left_when_the_body_raises(firmwares):
    board = "qemu-mps2-an386"
    with pytest.raises(RuntimeError, match="boom"), QemuSession(firmwares[board], board, boot_token=b"ready\n") as q:
        pid = q.pid
        raise RuntimeError("boom")
    assert gone(pid)
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)


def test_unclosed_session_is_killed_by_its_finalizer(firmwares):
    q = QemuSession(firmwares["qemu-mps2-an385"], "qemu-mps2-an385").start()
    pid = q.pid
    assert not gone(pid)
    del q  # never stopped: the finalizer is the backstop
    deadline = time.monotonic() + 5
    while not gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone(pid)


def test_qemu_that_cannot_start_is_reported(firmwares, tmp_path):
    bad = tmp_path / "not-an-elf.elf"
    bad.write_text("hello")
    with pytest.raises(ConfigError, match="is not an ELF file"):
        QemuSession(bad, "qemu-mps2-an386").start()
    text = (paths.boards_dir() / "qemu-mps2-an386.toml").read_text()
    board = tmp_path / "odd.toml"
    board.write_text(text.replace('machine = "mps2-an386"', 'machine = "no-such-machine"'))
    t0 = time.monotonic()
    with pytest.raises(ToolchainError, match="QEMU exited with status 1: .*unsupported machine type"):
        QemuSession(firmwares["qemu-mps2-an386"], board).start()
    assert time.monotonic() - t0 < 5


def test_read_timeout_is_reported(firmwares):
    with QemuSession(firmwares["qemu-mps2-an386"], "qemu-mps2-an386", boot_token=b"ready\n") as q:
        t0 = time.monotonic()
        with pytest.raises(ToolchainError, match="no b'never' from the firmware within 0.5 s"):
            q.read_until(b"never", timeout=0.5)
        assert time.monotonic() - t0 < 3


@pytest.mark.parametrize("board", ["qemu-mps2-an385", "qemu-netduinoplus2"])
def test_idle_firmware_sleeps_instead_of_spinning(firmwares, board):
    # Waiting for input, the firmware sits in WFI (uart.rx_irq): QEMU then costs no host CPU,
    # which matters on shared CI machines. It must still wake up for the next byte.
    with QemuSession(firmwares[board], board, boot_token=b"ready\n") as q:
        before = cpu_seconds(q.pid)
        time.sleep(1.0)
        assert cpu_seconds(q.pid) - before < 0.3
        q.write(b"e\x5a")
        assert q.read_until(b"\n", timeout=2) == b"echo=5a\n"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.slow
def test_counter_survives_systick_wraps(firmwares):
    # 2 * 0x14000000 = 671 M instructions > 2^24 ticks * 40: the 24-bit SysTick wraps once.
    n = 0x14000000
    with QemuSession(firmwares["qemu-mps2-an385"], "qemu-mps2-an385", read_timeout=60, boot_token=b"ready\n") as q:
        q.write(b"c" + n.to_bytes(4, "little"))
        calib = int(parse_fields(q.read_until(b"\n", timeout=60).decode())["count"])
    assert abs(calib - 2 * n) <= 2 * 40 + 64, calib


def test_a_socket_connected_to_itself_is_not_taken_for_qemu():
    # Linux TCP simultaneous open: a socket bound to port P that connects to P reaches itself. Polling
    # QEMU's port before it listens can land there; the session must retry rather than read nothing.
    import socket

    import serial

    from mcuflow.link.transport import self_connected

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.connect(s.getsockname())
        fake = serial.serial_for_url("loop://")
        fake._socket = s
        assert self_connected(fake)
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = serial.serial_for_url(f"socket://127.0.0.1:{server.getsockname()[1]}")
        try:
            assert not self_connected(port)
        finally:
            port.close()
