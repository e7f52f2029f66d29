"""In-place steps of the buffer plan: pooling may write its output over its input.

Output element ``j = (oy * OW + ox) * C + c`` of a pool without padding reads inputs at indices
``>= ((oy * sy) * W + ox * sx) * C + c >= j`` (``W >= OW``, strides >= 1), and every later output reads
only later inputs, so overwriting in order never destroys a value still to be read. A pool's output then
shares its input's offset when the input dies at that step (nothing else reads it afterwards); the
input's buffer is free again past the output's size, so the next layer's output can start right after."""

from __future__ import annotations

from mcuflow.ir.memory import Step

IN_PLACE_KINDS = ("pool",)


def in_place_aliases(steps: list[Step], life: dict[str, list[int]]) -> dict[str, str]:
    """dst -> the tensor whose buffer it may reuse: the input of an in-place step that dies at that step.
    The planner puts dst at its input's offset when nothing else alive then is in the way."""
    alias: dict[str, str] = {}
    for i, s in enumerate(steps):
        if s.kind in IN_PLACE_KINDS and s.src in life and s.src != s.dst and life[s.src][1] == i:
            alias[s.dst] = s.src
    return alias


def placement_order(life: dict[str, list[int]], sizes: dict[str, int], alias: dict[str, str]) -> list[str]:
    """Biggest tensor first, as the planner places them, except that an in-place output comes right
    after its input: placed before anything else can take the input's offset for its lifetime."""
    after = {src: dst for dst, src in alias.items()}
    order: list[str] = []
    for name in sorted(life, key=lambda n: (-sizes[n], life[n][0])):
        if name in alias:
            continue  # placed right after its input
        while name is not None:
            order.append(name)
            name = after.get(name)
    return order
