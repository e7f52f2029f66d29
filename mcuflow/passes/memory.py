"""Buffer planning: the run's schedule, tensor lifetimes, offsets in one static arena, and the other
static buffers (the kernels' scratch, the exits' flags), so that the plan's RAM is all the library uses.

Tensors live from the step that writes them to the last step that reads them; the head
output and every exit's logits live to the end (the caller reads them after the run).
Offsets are 4-byte aligned and assigned greedily, biggest tensor first, at the lowest
offset that does not overlap a tensor alive at the same time; a step that may run in place (pooling)
writes over its input when that input dies there (``passes.memory_conv``). The scratch buffer is shared by
the layers (they run one at a time), sized for the one that needs most (``plan_kernels``).
"""

from __future__ import annotations

from mcuflow.ir.memory import ALIGN, MemoryPlan, Step
from mcuflow.ir.quantized import QModel
from mcuflow.passes.memory_conv import in_place_aliases, placement_order


def schedule(model: QModel) -> list[Step]:
    steps: list[Step] = []
    x = "input"
    first = model.head[0].kernel if model.head else None
    if model.padded_len != model.input_len and not (first is not None and first.reads_unpadded):
        steps.append(Step("pad", "input", "padded"))
        x = "padded"
    head_tensor = [x]
    head_tensor += [f"h{i}" for i in range(len(model.head))]
    for pos in range(len(model.head) + 1):
        for e, ex in enumerate(model.exits):
            if ex.at != pos:
                continue
            src = head_tensor[pos]
            for j, layer in enumerate(ex.layers):
                dst = f"e{e}_{j}"
                steps.append(Step(layer.kind, src, dst, layer, e))
                src = dst
            steps.append(Step("exit", src, src, None, e))
        if pos < len(model.head):
            steps.append(Step(model.head[pos].kind, head_tensor[pos], head_tensor[pos + 1], model.head[pos]))
    return steps


def _size(model: QModel, name: str, steps: list[Step]) -> int:
    if name == "padded":
        return model.padded_len
    for s in steps:
        if s.dst == name and s.layer is not None:
            return s.layer.n_out
    raise KeyError(name)


def plan_memory(model: QModel) -> MemoryPlan:
    steps = schedule(model)
    end = len(steps)
    life: dict[str, list[int]] = {}
    for i, s in enumerate(steps):
        for name in (s.src, s.dst):
            if name != "input":
                life.setdefault(name, [i, i])[1] = i
    final = f"h{len(model.head) - 1}" if model.head else ("padded" if "padded" in life else None)
    keep = {final} | {s.src for s in steps if s.kind == "exit"}
    for name in keep:
        if name in life:
            life[name][1] = end
    sizes = {name: _size(model, name, steps) for name in life}
    alias = in_place_aliases(steps, life)  # dst -> the src it may overwrite (pooling)
    offsets: dict[str, int] = {}
    for name in placement_order(life, sizes, alias):
        src = alias.get(name)
        alive = [o for o in offsets if life[o][0] <= life[name][1] and life[name][0] <= life[o][1]]
        if src in offsets and all(
            offsets[src] + sizes[name] <= offsets[o] or offsets[o] + sizes[o] <= offsets[src] for o in alive if o != src
        ):
            offsets[name] = offsets[src]  # in place: written over its dying input
            continue
        busy = sorted((offsets[o], offsets[o] + sizes[o]) for o in alive)  # elsewhere: its input included
        off = 0
        for lo, hi in busy:
            if off + sizes[name] <= lo:
                break
            off = max(off, -(-hi // ALIGN) * ALIGN)
        offsets[name] = off
    arena = max((offsets[n] + sizes[n] for n in offsets), default=0)
    arena = -(-arena // ALIGN) * ALIGN
    for s in steps:
        s.src_offset = offsets.get(s.src)
        s.dst_offset = offsets.get(s.dst)
    exit_src = {s.exit_index: s.src for s in steps if s.kind == "exit"}  # a final exit reads the head output itself
    kernels = [layer.kernel for layer in model.all_layers()]
    assert all(k is not None for k in kernels), "run plan_kernels before plan_memory"
    plan = MemoryPlan(
        offsets,
        sizes,
        arena,
        steps,
        scratch_bytes=-(-max((k.scratch_bytes for k in kernels), default=0) // ALIGN) * ALIGN,
        state_bytes=len(model.exits),
        head_input_offset=offsets.get("padded"),
        final_offset=offsets[final] if final else 0,
        logits_offsets=[offsets[exit_src[e]] for e in range(len(model.exits))],
    )
    model.plan = plan
    return plan
