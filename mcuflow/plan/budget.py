"""What a planned model must fit on a board: model flash, RAM, device instructions per inference, and
bytes per sample on the link."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from mcuflow.boards import Board
from mcuflow.errors import ConfigError

# The firmware's own share (protocol app, link, libc, startup, drivers), measured with `mcuflow build` of
# examples/paper_sparse.pt for nrf52840dk: flash 10,856 B of which the model is 4,990 B, so 5,866 B are the
# firmware's; RAM 3,820 B of which the model's static buffers are 2,521 B. Rounded up; the measured build of
# every front candidate checks the whole image against the board anyway.
FIRMWARE_FLASH_BYTES = 6_144
FIRMWARE_RAM_BYTES = 1_536


@dataclass(frozen=True)
class Budget:
    """Limits on the measured (or, before training, estimated) figures; ``None`` is no limit."""

    model_flash_bytes: int
    ram_bytes: int
    instructions: float | None = None  # mean device instructions (cycles) per inference
    bytes_per_sample: float | None = None  # mean bytes the device sends per sample

    @classmethod
    def for_board(
        cls,
        board: Board,
        flash: int | None = None,
        ram: int | None = None,
        instructions: float | None = None,
        ms: float | None = None,
        bytes_per_sample: float | None = None,
        link_ms: float | None = None,
        baud: int | None = None,
    ) -> Budget:
        """The budget the options give, the board's memory less the firmware's share by default. ``ms`` is
        turned into cycles at the board's clock, ``link_ms`` into bytes at ``baud`` (10 bits a byte)."""
        free_flash = board.flash_bytes - board.boot2_bytes - FIRMWARE_FLASH_BYTES
        free_ram = board.ram_bytes - board.stack_bytes - FIRMWARE_RAM_BYTES
        for name, v in (("flash", flash), ("RAM", ram), ("instructions", instructions), ("ms", ms)):
            if v is not None and v <= 0:
                raise ConfigError(f"the {name} budget must be positive, got {v}")
        if flash is not None and flash > free_flash:
            raise ConfigError(
                f"a model flash budget of {flash:,} B does not fit {board.name}: {board.flash_bytes:,} B less the "
                f"firmware's ~{FIRMWARE_FLASH_BYTES:,} B leaves {free_flash:,} B"
            )
        if instructions is not None and ms is not None:
            raise ConfigError("give the compute budget as instructions or as milliseconds, not both")
        if bytes_per_sample is not None and link_ms is not None:
            raise ConfigError("give the link budget as bytes per sample or as link milliseconds, not both")
        if ms is not None:
            instructions = ms * 1e-3 * board.clock_hz
        if link_ms is not None:
            rate = baud or board.uart.baud
            if link_ms <= 0 or rate <= 0:
                raise ConfigError("the link budget and the baud must be positive")
            bytes_per_sample = link_ms * 1e-3 * rate / 10
        if bytes_per_sample is not None and bytes_per_sample <= 0:
            raise ConfigError(f"the bytes-per-sample budget must be positive, got {bytes_per_sample}")
        return cls(
            model_flash_bytes=int(flash if flash is not None else free_flash),
            ram_bytes=int(ram if ram is not None else free_ram),
            instructions=instructions,
            bytes_per_sample=bytes_per_sample,
        )

    def violations(self, flash: float, ram: float, instructions: float, bytes_per_sample: float) -> list[str]:
        out = []
        if flash > self.model_flash_bytes:
            out.append(f"model flash {flash:,.0f} > {self.model_flash_bytes:,} B")
        if ram > self.ram_bytes:
            out.append(f"RAM {ram:,.0f} > {self.ram_bytes:,} B")
        if self.instructions is not None and instructions > self.instructions:
            out.append(f"instructions {instructions:,.0f} > {self.instructions:,.0f}")
        if self.bytes_per_sample is not None and bytes_per_sample > self.bytes_per_sample:
            out.append(f"bytes/sample {bytes_per_sample:,.1f} > {self.bytes_per_sample:,.1f}")
        return out

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        parts = [f"model flash <= {self.model_flash_bytes:,} B", f"RAM <= {self.ram_bytes:,} B"]
        if self.instructions is not None:
            parts.append(f"<= {self.instructions:,.0f} instructions/inference")
        if self.bytes_per_sample is not None:
            parts.append(f"<= {self.bytes_per_sample:,.1f} B/sample")
        return ", ".join(parts)
