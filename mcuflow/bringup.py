"""Bring-up self-test (``mcuflow selftest``): the selftest firmware of an export on a board, under
QEMU or on hardware through a serial port, checked against the numpy reference.

It reads the firmware's banner (board, counter unit, clock, model hash), runs the head on a small
input table (the firmware's built-in input, seeded random inputs, and bundled MNIST digits when
the model takes 28x28 images) comparing every answer with :func:`mcuflow.reference.run`, and counts
the head and each layer with the device's own counter: instructions under QEMU, cycles (DWT or
SysTick at the core clock) on hardware, with the clock the firmware reports.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import serial

from mcuflow.boards import Board, load_board
from mcuflow.errors import ConfigError, LinkError, ToolchainError
from mcuflow.link.messages import CLOCK_STATES

RANDOM_INPUTS = 4
DIGITS = 6
SEED = 2024


@dataclass
class SampleCheck:
    name: str
    ok: bool
    exited: bool
    problem: str | None = None


@dataclass
class SelftestReport:
    board: str
    where: str  # "QEMU mps2-an386", "QEMU netduinoplus2 (stand-in)", "/dev/ttyACM0"
    unit: str
    banner: dict[str, str]
    hash_ok: bool
    clock_hz: int | None
    clock_state: int | None
    samples: list[SampleCheck] = field(default_factory=list)
    head_count: float | None = None  # per inference, in `unit`
    layer_counts: dict[str, float] = field(default_factory=dict)
    counted: bool = True  # False where the counter does not run (DWT under a stand-in emulator)

    @property
    def mismatches(self) -> list[SampleCheck]:
        return [s for s in self.samples if not s.ok]

    @property
    def passed(self) -> bool:
        return self.hash_ok and not self.mismatches and bool(self.samples)

    def clock_text(self) -> str:
        if self.clock_hz is None:
            return "n/a"
        if self.clock_state is None:
            return f"{self.clock_hz:,} Hz (the emulated machine's; QEMU counts instructions, not cycles)"
        return f"{self.clock_hz:,} Hz ({CLOCK_STATES.get(self.clock_state, f'state {self.clock_state}')})"

    def lines(self) -> list[str]:
        b = self.banner
        exited = sum(s.exited for s in self.samples)
        ok = len(self.samples) - len(self.mismatches)
        out = [
            f"board      {self.board} on {self.where}",
            f"banner     mcuflow-selftest board={b.get('board')} unit={b.get('unit')} input_len={b.get('input_len')} "
            f"hash={b.get('hash', '')[:16]}... ({'matches the export' if self.hash_ok else 'NOT the export'})",
            f"clock      {self.clock_text()}",
            f"inputs     {ok} of {len(self.samples)} bit-exact against the numpy reference "
            f"({exited} exited early, {len(self.samples) - exited} offloaded)",
        ]
        out += [f"  MISMATCH {s.name}: {s.problem}" for s in self.mismatches]
        if not self.counted:
            out.append(f"counts     not measured: the {self.unit} counter does not run on {self.where}")
        elif self.head_count == 0:
            out.append(f"counts     the {self.unit} counter read 0: it does not run here (DWT not enabled or emulated)")
        elif self.head_count is not None:
            per_s = ""
            if self.unit == "cycles" and self.clock_hz:
                per_s = f" = {1e6 * self.head_count / self.clock_hz:,.1f} us at {self.clock_hz / 1e6:g} MHz"
            out.append(f"inference  {self.head_count:,.0f} {self.unit} per head run{per_s}")
            out.append("per layer  " + ", ".join(f"{n} {c:,.0f}" for n, c in self.layer_counts.items()))
        return out


class SerialSession:
    """A board's UART on a serial port, with QemuSession's ``write`` / ``read_until``."""

    def __init__(self, port: str, baud: int, read_timeout: float = 5.0):
        self.port, self.baud, self.read_timeout = port, baud, read_timeout
        self.serial = None

    def __enter__(self) -> SerialSession:
        try:
            self.serial = serial.serial_for_url(self.port, baudrate=self.baud, timeout=self.read_timeout)
        except (serial.SerialException, ValueError) as err:
            raise LinkError(f"cannot open serial port {self.port}: {err}") from None
        self.serial.reset_input_buffer()
        return self

    def __exit__(self, *exc) -> None:
        if self.serial is not None:
            self.serial.close()

    def write(self, data: bytes) -> None:
        self.serial.write(data)
        self.serial.flush()

    def read_until(self, token: bytes, timeout: float | None = None) -> bytes:
        timeout = self.read_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        buf = bytearray()
        while not buf.endswith(token):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LinkError(
                    f"no {token!r} from {self.port} within {timeout:.0f} s (got {bytes(buf)[-80:]!r}): is the selftest "
                    f"firmware flashed (mcuflow selftest --flash) and this the board's UART?"
                )
            self.serial.timeout = min(remaining, 0.5)
            buf += self.serial.read(1)
        return bytes(buf)


def parse_fields(text: str) -> dict[str, str]:
    return dict(re.findall(r"(\w+)=(\S+)", text))


def input_table(export_dir: Path, input_len: int, builtin: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """The inputs the self-test runs: the firmware's built-in one, seeded random ones, and bundled
    MNIST digits quantised as the export says (when the model takes 784 inputs)."""
    from mcuflow.manifest import ExportManifest
    from mcuflow.reference import quantize_input

    rng = np.random.default_rng(SEED)
    table = [("built-in", builtin)]
    table += [
        (f"random {i}", rng.integers(-128, 128, input_len, dtype=np.int16).astype(np.int8))
        for i in range(RANDOM_INPUTS)
    ]
    if input_len == 784:
        from mcuflow.data import bundled_test_subset

        q = ExportManifest.read(export_dir).quantization.input
        digits = bundled_test_subset()
        x = digits.images[:DIGITS].reshape(DIGITS, -1).astype(np.float64) / 255.0
        for i, row in enumerate(quantize_input(x, q.scale, q.zero_point)):
            table.append((f"digit {i} (label {digits.labels[i]})", row))
    return table


def _compare(line: bytes, ref, i: int) -> tuple[bool, bool, str | None]:
    got = parse_fields(line.decode(errors="replace"))
    if got.get("rc") != "0":
        return False, False, f"the head returned rc={got.get('rc')}"
    exited = got.get("exited") == "1"
    if exited != bool(ref.exited[i]):
        return False, exited, f"device {'exits' if exited else 'offloads'}, the reference does not"
    if exited:
        want = (int(ref.exit_index[i]), int(ref.label[i]), int(ref.confidence_q15[i]))
        have = (int(got.get("exit", -1)), int(got.get("label", -1)), int(got.get("conf", -1)))
        return have == want, True, None if have == want else f"exit/label/confidence {have} vs reference {want}"
    inter = bytes.fromhex(got.get("inter", ""))
    want = ref.intermediate[i].astype(np.int8).tobytes()
    return inter == want, False, None if inter == want else "intermediate bytes differ"


def run_selftest(
    export_dir: str | Path,
    board: str | Path | Board,
    *,
    port: str | None = None,
    emulate: bool = False,
    runs: int = 10,
    build: bool = True,
    flash: bool = False,
    probe: str | None = None,
    log=print,
) -> SelftestReport:
    """Build (or use) the selftest firmware of `export_dir` for `board`, run it under QEMU (a QEMU
    board, or with `emulate` a hardware board's stand-in) or on the board at `port` (after
    flashing it when `flash`), and check and count it. Replaces ``export_dir/build/<board>``."""
    import json

    from mcuflow import reference
    from mcuflow.build import build as build_firmware
    from mcuflow.manifest import ExportManifest, load_model
    from mcuflow.profile import SelftestDevice, layer_names

    export_dir = Path(export_dir)
    b = board if isinstance(board, Board) else load_board(board)
    if port is None and b.emulator(emulate) is None:
        stand_in = f" or --emulate (QEMU {b.emulation.machine})" if b.emulation else ""
        raise ConfigError(f"{b.name} is hardware: give its serial port with --port{stand_in}")
    manifest = ExportManifest.read(export_dir)
    out = export_dir / "build" / b.name
    if build:
        log(f"selftest: building the selftest firmware for {b.name}")
        build_firmware(export_dir, b, app="selftest")
    elif not (out / "build.json").is_file() or json.loads((out / "build.json").read_text()).get("app") != "selftest":
        raise ConfigError(f"{out} holds no selftest build; run without --no-build")
    if flash:
        from mcuflow.flash import flash as flash_board

        log(f"selftest: flashing {b.name}")
        flash_board(export_dir, b, probe=probe)

    if port is not None:
        where, session = port, SerialSession(port, b.uart.baud)
    else:
        machine = b.emulator(emulate)
        where, session = f"QEMU {machine.machine}" + (" (stand-in)" if b.qemu is None else ""), None
    names = layer_names(export_dir)
    counted = not (b.qemu is None and port is None)  # a stand-in emulator runs no DWT
    elf = out / "firmware.elf"
    ctx = session if session is not None else _Null()
    with ctx, SelftestDevice(elf, b, reply_timeout=30.0, emulate=emulate, session=session) as dev:
        banner_text = dev.banner.decode(errors="replace")
        first = banner_text.splitlines()[0] if banner_text else ""
        fields = parse_fields(first)
        builtin_line = next((ln for ln in banner_text.splitlines() if ln.startswith("result ")), "")
        if not first.startswith("mcuflow-selftest"):
            raise ToolchainError(f"unexpected selftest banner {first[:120]!r}")
        model = load_model(export_dir)
        table = input_table(export_dir, model.input_len, _builtin(model.input_len))
        ref = reference.run(model, np.stack([x for _, x in table]))
        clock = int(fields["clock"]) if "clock" in fields else (b.clock_hz if b.qemu else None)
        rep = SelftestReport(
            board=b.name,
            where=where,
            unit=fields.get("unit", b.counter.unit),
            banner=fields,
            hash_ok=fields.get("hash") == manifest.model_hash,
            clock_hz=clock,
            clock_state=int(fields["clock_state"]) if "clock_state" in fields else None,
            counted=counted,
        )
        for i, (name, x) in enumerate(table):
            line = builtin_line.encode() if i == 0 else dev.run(x.tobytes())
            ok, exited, problem = _compare(line, ref, i)
            rep.samples.append(SampleCheck(name, ok, exited, problem))
        if counted:
            rep.head_count = dev.head(runs)
            rep.layer_counts = {n: round(dev.layer(i, runs)[0], 1) for i, n in enumerate(names)}
    return rep


def _builtin(n: int) -> np.ndarray:
    """The input the selftest firmware runs at start (firmware/selftest/selftest.c)."""
    return np.array([((i * 73 + 19) % 256) - 128 for i in range(n)], dtype=np.int8)


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None
