"""Device cost of a candidate before it is trained or built: model flash, static RAM, instructions per
layer, bytes per sample. Used to skip candidates that cannot fit and to rank the rest; every candidate on
the final front is measured instead (:mod:`mcuflow.plan.measure`).

The coefficients are fitted to the Cortex-M4 figures of docs/benchmarks.md (index-free 800->40 at
out-degree 2: 6,165 instructions = 3.1 per input (the permutation) + 1.4 per nonzero + 36 per row; 800->50
at 2% and 4% density and a measured 800->64 at out-degree 20 (36,267) take about 2.0 per nonzero, so 1.8 is
used; the benchmark's 800->50 at 6-50% density takes 20 million, which no linear model predicts: the
measured front catches such a layer; dense
40->10: 1,073 = 1.0 per input + 1.52 per weight + 42 per row) and the sizes of the paper head's export
(flash: 1 B per weight, 9 B per row, ~1,100 B of index-free kernel code, ~300 B dense, ~1,100 B of model
code and tables; the paper head is 4,990 B measured, 5,040 B estimated). Cores without the DSP extension
(M0, M0+, M3) take about 1.5 times the instructions per MAC (M3 index-free 5.70 per MAC against 3.85).
"""

from __future__ import annotations

from dataclasses import dataclass

from mcuflow.plan.space import Candidate

RESULT_WIRE_BYTES = 18  # LOCAL_RESULT on the wire (docs/protocol.md, "Sizes")
OFFLOAD_WIRE_OVERHEAD = 26  # OFFLOAD header and framing on the wire, plus the encoded tensor
DSP_CORES = ("cortex-m4", "cortex-m7", "cortex-m33")
MODEL_FIXED_FLASH = 1_100
# The exit decision (softmax-free max confidence in Q15, the flags): the paper head measures 7,867
# instructions per run under QEMU for layers of 6,160 + 1,067, so 640 per exit; a whole model's final exit
# only takes the argmax.
EXIT_DECISION = 640
FINAL_DECISION = 300


@dataclass(frozen=True)
class LayerCost:
    name: str  # the export's layer name: head.<i> or exits.<e>.<i>
    n_in: int
    n_out: int
    nnz: int
    sparse: bool
    instructions: float
    flash: int


@dataclass(frozen=True)
class Estimate:
    head: list[LayerCost]  # device junctions in order
    exits: list[list[LayerCost]]
    exit_at: list[int]
    ram_bytes: int
    intermediate_len: int
    whole_on_device: bool

    @property
    def flash_bytes(self) -> int:
        return MODEL_FIXED_FLASH + sum(c.flash for c in self.head) + sum(c.flash for e in self.exits for c in e)

    def instructions(self, exit_rate: float) -> float:
        """Mean instructions per inference when a fraction ``exit_rate`` answers at the (single) exit."""
        exits = [EXIT_DECISION + sum(c.instructions for c in e) for e in self.exits]
        final = FINAL_DECISION if self.whole_on_device else 0
        return final + expected_instructions([c.instructions for c in self.head], exits, self.exit_at, exit_rate)

    def bytes_per_sample(self, exit_rate: float, link_bits: int) -> float:
        if self.whole_on_device:
            return float(RESULT_WIRE_BYTES)
        offload = OFFLOAD_WIRE_OVERHEAD + -(-self.intermediate_len * link_bits // 8)
        return exit_rate * RESULT_WIRE_BYTES + (1.0 - exit_rate) * offload


def expected_instructions(head: list[float], exits: list[float], exit_at: list[int], exit_rate: float) -> float:
    """Head junctions up to the exit always run, then the exit branch; the junctions after it run only for
    the samples it leaves. (One exit; with none every junction runs.)"""
    if not exits:
        return float(sum(head))
    at = exit_at[0]
    return sum(head[:at]) + exits[0] + (1.0 - exit_rate) * sum(head[at:])


def _layer(name: str, n_in: int, n_out: int, degree: int, dsp: bool) -> LayerCost:
    nnz = n_in * degree
    sparse = degree < n_out
    slow = 1.0 if dsp else 1.5
    if sparse:
        ins = 3.1 * n_in + 1.8 * slow * nnz + 36 * n_out
        flash = nnz + 9 * n_out + 1_100
    else:
        ins = 1.0 * n_in + 1.52 * slow * nnz + 42 * n_out
        flash = nnz + 9 * n_out + 300
    return LayerCost(name, n_in, n_out, nnz, sparse, ins, flash)


def estimate(cand: Candidate, cpu: str = "cortex-m4") -> Estimate:
    m = cand.model
    sizes, degrees, split = m["sizes"], m["out_degrees"], m["split"]
    dsp = cpu in DSP_CORES
    pos = 1 if (m.get("input_size") or sizes[0]) < sizes[0] else 0  # a Pad comes first in the head
    head = [_layer(f"head.{pos + 2 * j}", sizes[j], sizes[j + 1], degrees[j], dsp) for j in range(split)]
    exits, at = [], []
    for e_i, e in enumerate(m["exits"]):
        widths = [sizes[e["at"]], *e["hidden"], sizes[-1]]
        exits.append(
            [
                _layer(f"exits.{e_i}.{2 * i}", a, b, b, dsp)
                for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=False))
            ]
        )
        at.append(e["at"])
    scratch = 2 * max(c.n_in for c in head if c.sparse) if any(c.sparse for c in head) else 0
    acts = [sizes[0], *(c.n_out for c in head)]
    arena = max(a + b for a, b in zip(acts[:-1], acts[1:], strict=False))
    return Estimate(
        head=head,
        exits=exits,
        exit_at=at,
        ram_bytes=arena + scratch + 4 * len(exits) + 64,
        intermediate_len=sizes[split],
        whole_on_device=split == len(sizes) - 1,
    )
