"""The energy model of a board: energy per cycle (one instruction under QEMU is taken as one cycle) and
per byte sent on the UART, from the board file's ``[energy]`` table or a default per core.

    E_inference = instructions * active_mw / clock_hz + bytes * 10 / baud * active_mw

A byte costs its 10 bit times (start, 8 data, stop) with the core running: the firmware polls the UART
while it sends. This is a first-order model to rank candidates, not a measurement.
"""

from __future__ import annotations

from dataclasses import dataclass

from mcuflow.boards import Board

# Active power of the core when a board file states none, per core (mW). Sources: Cortex-M4 from the
# nRF52840 (PS v1.7 5.2.1.1, 52 uA/MHz at 3 V, 64 MHz); Cortex-M3 from the STM32F103 (DS5319 table
# 14, 36 mA at 72 MHz, 3.3 V, from flash, peripherals off); Cortex-M7 from the STM32F746 (DS10916 table 23,
# 102 mA at 216 MHz, 3.3 V); Cortex-M0+ from the RP2040 (datasheet 5.5.3, about 20 mA at 125 MHz, 3.3 V,
# whole chip). Figures are typical values, rounded.
DEFAULT_ACTIVE_MW = {
    "cortex-m0": (66.0, "RP2040 datasheet 5.5.3: ~20 mA at 3.3 V (Cortex-M0+ figure, default for M0)"),
    "cortex-m0plus": (66.0, "RP2040 datasheet 5.5.3: ~20 mA at 3.3 V"),
    "cortex-m3": (119.0, "STM32F103 DS5319 table 14: 36 mA at 72 MHz, 3.3 V"),
    "cortex-m4": (9.9, "nRF52840 PS v1.7 5.2.1.1: 52 uA/MHz at 3 V x 64 MHz (default for Cortex-M4)"),
    "cortex-m7": (337.0, "STM32F746 DS10916 table 23: 102 mA at 216 MHz, 3.3 V"),
    "cortex-m33": (9.9, "no M33 figure: the Cortex-M4 default"),
}
BITS_PER_BYTE = 10  # UART: start + 8 data + stop


@dataclass(frozen=True)
class EnergyModel:
    active_mw: float
    clock_hz: int
    baud: int
    source: str

    @classmethod
    def of(cls, board: Board) -> EnergyModel:
        if board.energy is not None:
            mw, source = board.energy.active_mw, f"{board.name} board file: {board.energy.source}"
        else:
            mw, source = DEFAULT_ACTIVE_MW[board.cpu]
            source = f"default for {board.cpu}: {source}"
        return cls(active_mw=mw, clock_hz=board.clock_hz, baud=board.uart.baud, source=source)

    @property
    def nj_per_cycle(self) -> float:
        return self.active_mw * 1e6 / self.clock_hz  # mW / Hz = mJ per cycle; * 1e6 -> nJ

    @property
    def nj_per_byte(self) -> float:
        return self.active_mw * 1e6 * BITS_PER_BYTE / self.baud

    def inference_uj(self, instructions: float, bytes_sent: float) -> float:
        """Microjoules per inference: the head's cycles and the bytes it sends."""
        return (instructions * self.nj_per_cycle + bytes_sent * self.nj_per_byte) / 1000.0

    def describe(self) -> str:
        return (
            f"{self.nj_per_cycle:.3g} nJ/cycle, {self.nj_per_byte:.3g} nJ/byte at {self.baud:,} baud "
            f"({self.active_mw:g} mW active; {self.source})"
        )
