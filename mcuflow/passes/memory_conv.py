"""In-place steps of the buffer plan: pooling may write its output over its input.

Output element ``j = (oy * OW + ox) * C + c`` of a pool without padding reads inputs at indices
``>= ((oy * sy) * W + ox * sx) * C + c >= j`` (``W >= OW``, strides >= 1), and every later output reads
only later inputs, so overwriting in order never destroys a value still to be read. A pool's output then
shares its input's buffer when the input dies at that step (nothing else reads it afterwards)."""

from __future__ import annotations

from mcuflow.ir.memory import Step

IN_PLACE_KINDS = ("pool",)


def in_place_aliases(steps: list[Step], life: dict[str, list[int]], sizes: dict[str, int]) -> dict[str, str]:
    """dst -> the tensor whose buffer it reuses; the source's lifetime and size grow to cover it."""
    alias: dict[str, str] = {}
    for i, s in enumerate(steps):
        if s.kind not in IN_PLACE_KINDS or s.src not in life or s.src == s.dst or life[s.src][1] != i:
            continue
        root = alias.get(s.src, s.src)
        alias[s.dst] = root
        life[root][1] = max(life[root][1], life[s.dst][1])
        sizes[root] = max(sizes[root], sizes[s.dst])
    return alias
