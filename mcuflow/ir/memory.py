"""The run's schedule and static memory: what each step reads and writes, and where every buffer lives."""

from __future__ import annotations

from dataclasses import dataclass, field

from mcuflow.ir.quantized import QLinear

ALIGN = 4


@dataclass
class Step:
    """One step of ``mcuflow_head_run``: pad the input, run a layer, or take an exit's decision."""

    kind: str  # "pad" | "linear" | "exit"
    src: str  # tensor names; "input" is the caller's buffer, not in the arena
    dst: str
    layer: QLinear | None = None
    exit_index: int = -1
    src_offset: int | None = None  # arena offsets, set by plan_memory; None: the caller's input
    dst_offset: int | None = None


@dataclass
class MemoryPlan:
    """Every static buffer of the generated library, in bytes: the activation arena, the kernels' scratch
    buffer (whole words) and one "evaluated" flag per exit. Nothing else is allocated, ever."""

    offsets: dict[str, int]
    sizes: dict[str, int]
    arena_bytes: int
    steps: list[Step]
    scratch_bytes: int = 0
    state_bytes: int = 0
    head_input_offset: int | None = None  # where a zero-copy input goes (the padded input), if in the arena
    final_offset: int = 0  # the head output
    logits_offsets: list[int] = field(default_factory=list)  # per exit

    @property
    def static_ram_bytes(self) -> int:
        return self.arena_bytes + self.scratch_bytes + self.state_bytes

    @property
    def peak_ram_bytes(self) -> int:
        """All the RAM the library needs besides the stack: it allocates nothing at run time."""
        return self.static_ram_bytes
