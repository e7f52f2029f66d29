"""`mcuflow selftest`: the selftest firmware of a real export, end to end under QEMU (a QEMU board,
and a hardware image on its stand-in reached through --port as a board would be), checked against
the numpy reference; a model that differs from its firmware fails with status 3."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import numpy as np
import pytest
from conftest import ROOT, require_tools

from mcuflow.boards import load_board
from mcuflow.cli import main
from mcuflow.qemu import _free_port, _kill_group, qemu_command

pytestmark = [pytest.mark.firmware, pytest.mark.slow]


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    require_tools("arm-none-eabi-gcc", "qemu-system-arm")
    out = tmp_path_factory.mktemp("st") / "export"
    assert main(["export", str(ROOT / "examples" / "paper_sparse.pt"), "-o", str(out)]) == 0
    return out


def lines_of(capsys) -> tuple[list[str], str]:
    cap = capsys.readouterr()
    return cap.out.splitlines(), cap.err


def test_selftest_on_a_qemu_board(export_dir, capsys):
    assert main(["selftest", str(export_dir), "--board", "qemu-mps2-an386"]) == 0
    out, _ = lines_of(capsys)
    assert out[0] == "board      qemu-mps2-an386 on QEMU mps2-an386"
    assert out[1].startswith("banner     mcuflow-selftest board=qemu-mps2-an386 unit=instructions input_len=784 hash=")
    assert out[1].endswith("(matches the export)")
    assert out[2] == "clock      25,000,000 Hz (the emulated machine's; QEMU counts instructions, not cycles)"
    assert out[3].startswith("inputs     11 of 11 bit-exact against the numpy reference")
    head = int(out[4].split()[1].replace(",", ""))
    assert out[4].endswith("instructions per head run") and head > 1600  # at least one per weight
    layers = dict(part.rsplit(" ", 1) for part in out[5].removeprefix("per layer  ").split(", "))
    assert set(layers) == {"head.1", "exits.0.0"}
    assert sum(int(v.replace(",", "")) for v in layers.values()) <= head


def test_selftest_through_a_port_on_the_stand_in(export_dir, capsys):
    """The hardware path (--port): the NUCLEO-F446RE's own selftest image, on QEMU's netduinoplus2
    with its USART2 on a TCP socket the command opens as a serial port."""
    assert main(["build", str(export_dir), "--board", "nucleo-f446re", "--app", "selftest"]) == 0
    capsys.readouterr()
    board = load_board("nucleo-f446re")
    port = _free_port()
    elf = export_dir / "build" / "nucleo-f446re" / "firmware.elf"
    cmd = qemu_command(board, elf, f"tcp:127.0.0.1:{port},server=on,wait=off,nodelay=on", emulate=True)
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    try:
        _wait_listening(port, proc)
        code = main(["selftest", str(export_dir), "--board", "nucleo-f446re", "--no-build",
                     "--port", f"socket://127.0.0.1:{port}"])  # fmt: skip
    finally:
        _kill_group(proc)
    out, err = lines_of(capsys)
    assert code == 0, err
    assert out[0] == f"board      nucleo-f446re on socket://127.0.0.1:{port}"
    assert "unit=cycles" in out[1] and out[1].endswith("(matches the export)")
    assert out[2] == "clock      16,000,000 Hz (fallback to the reset clock: oscillator did not start)"
    assert out[3].startswith("inputs     11 of 11 bit-exact")
    assert out[4] == "counts     the cycles counter read 0: it does not run here (DWT not enabled or emulated)"


def _wait_listening(port: int, proc, tries: int = 200) -> None:
    """Until QEMU listens (a probe connection it forgets at once: the server takes the next one)."""
    for _ in range(tries):
        assert proc.poll() is None, "QEMU exited"
        with socket.socket() as s:
            s.settimeout(0.1)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError("QEMU did not listen")


def test_selftest_finds_a_model_that_is_not_the_firmwares(export_dir, tmp_path, capsys):
    other = tmp_path / "export"
    shutil.copytree(export_dir, other)
    assert main(["build", str(other), "--board", "qemu-mps2-an385", "--app", "selftest"]) == 0
    z = dict(np.load(other / "quantized.npz"))
    key = next(k for k in z if k.endswith("bias"))
    z[key] = z[key] + 1000  # the reference now computes another model than the firmware holds
    np.savez(other / "quantized.npz", **z)
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:  # status 3, as `mcuflow hil` on a parity failure
        main(["selftest", str(other), "--board", "qemu-mps2-an385", "--no-build"])
    out, err = lines_of(capsys)
    assert stop.value.code == 3
    assert any(line.startswith("  MISMATCH ") for line in out)
    assert err.strip().endswith("mcuflow: error: the selftest did not pass")


def test_selftest_needs_a_port_or_a_stand_in(export_dir, capsys):
    assert main(["selftest", str(export_dir), "--board", "nucleo-h743zi"]) != 0
    assert (
        capsys.readouterr().err.strip() == "mcuflow: error: nucleo-h743zi is hardware: give its serial port with --port"
    )
    assert main(["selftest", str(export_dir), "--board", "nucleo-f401re"]) != 0
    assert "--port or --emulate (QEMU netduinoplus2)" in capsys.readouterr().err
