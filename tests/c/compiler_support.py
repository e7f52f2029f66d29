"""Shared helpers for the compiler tests: a quickly trained paper model, C builds, harness I/O."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import torch

import mcuflow
import mcuflow.errors
from mcuflow.nn.config import build_model, paper_config

HERE = Path(__file__).resolve().parent
KERNELS = HERE.parents[1] / "firmware" / "kernels"  # the static kernel library
CFLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2"]


def mnist(mnist_dir: Path, split: str):
    from mcuflow.data import load_mnist

    return load_mnist(split, mnist_dir, download=False)


def train_quick(model, images: np.ndarray, labels: np.ndarray, steps: int = 400, seed: int = 0):
    """A few hundred Adam steps on the joint exit + final loss: enough for parity tests. uint8 ``images`` are
    pixels (divided by 255); float ones are taken as they are."""
    torch.manual_seed(seed)
    flat = images.reshape(len(images), -1)
    x = torch.from_numpy(flat.astype(np.float32) / (255.0 if flat.dtype == np.uint8 else 1.0))
    y = torch.from_numpy(labels.astype(np.int64))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(x), (128,), generator=g)
        exits, final = model(x[idx])
        loss = torch.nn.functional.cross_entropy(final, y[idx]) + sum(
            torch.nn.functional.cross_entropy(e, y[idx]) for e in exits
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return model


_CACHE: dict[str, Path] = {}


def paper_checkpoint(mnist_dir: Path, path: Path, steps: int = 300) -> Path:
    """examples/paper_sparse.pt if it exists (and loads), else a quickly trained paper model saved at
    ``path``; trained once per test process."""
    shipped = HERE.parents[1] / "examples" / "paper_sparse.pt"
    if shipped.exists():
        try:
            mcuflow.load(shipped)
            return shipped
        except mcuflow.errors.McuflowError:
            pass  # a stale checkpoint from an older pattern rule: train our own
    if "paper" in _CACHE and _CACHE["paper"].exists():
        return _CACHE["paper"]
    train = mnist(mnist_dir, "train")
    model = build_model(paper_config())
    train_quick(model, train.images[:20000], train.labels[:20000], steps=steps)
    mcuflow.save(model, path)
    _CACHE["paper"] = path
    return path


def compile_c(sources: list[Path], exe: Path, compiler: str = "gcc", extra: list[str] | None = None) -> Path:
    cmd = [compiler, *CFLAGS, *(extra or []), "-o", str(exe), *map(str, sources)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if res.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{res.stderr[-4000:]}")
    return exe


def build_harness(export_dir: Path, exe: Path, compiler: str = "gcc") -> Path:
    sources = sorted(export_dir.glob("*.c")) + [HERE / "harness.c"]
    return compile_c(sources, exe, compiler, ["-I", str(export_dir)])


def run_harness(exe: Path, inputs: np.ndarray, num_exits: int, num_classes: int, inter_len: int, tmp: Path) -> dict:
    """Run the batch harness: one process, binary inputs in, binary records out."""
    inp, out = tmp / "inputs.bin", tmp / "outputs.bin"
    np.ascontiguousarray(inputs, dtype=np.int8).tofile(inp)
    res = subprocess.run([str(exe), str(inp), str(out)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    rec = np.dtype(
        [
            ("status", "i1"),
            ("exited", "u1"),
            ("exit_index", "u1"),
            ("label", "u1"),
            ("confidence_q15", "<u2"),
            ("evaluated", "u1", (max(num_exits, 1),)),
            ("logits", "i1", (max(num_exits, 1), num_classes)),
            ("intermediate", "i1", (inter_len,)),
        ]
    )
    data = np.fromfile(out, dtype=rec)
    assert len(data) == len(inputs)
    return data


# ---------------------------------------------------------------- synthetic IR models


def sparse_layer(name: str, n_in: int, n_out: int, out_degree: int, rng, pattern: str = "structured", seed: int = 0):
    """A float IR linear layer with a predefined pattern and random weights."""
    from mcuflow.ir.graph import Linear
    from mcuflow.sparsity.patterns import pattern_columns, structured_params

    cols = pattern_columns(pattern, n_in, n_out, out_degree, seed)
    params = structured_params(n_in, n_out, out_degree, seed) if pattern == "structured" else None
    w = rng.normal(0, (2.0 / cols.shape[1]) ** 0.5, cols.shape)
    b = rng.normal(0, 0.1, n_out)
    return Linear(name, n_in, n_out, w, cols.astype(np.int64), b, pattern=pattern, params=params)


def dense_layer(name: str, n_in: int, n_out: int, rng):
    from mcuflow.ir.graph import Linear

    cols = np.tile(np.arange(n_in, dtype=np.int64), (n_out, 1))
    return Linear(name, n_in, n_out, rng.normal(0, (2.0 / n_in) ** 0.5, (n_out, n_in)), cols, rng.normal(0, 0.1, n_out))


def chain_graph(widths, degrees, exits=(), input_len=None, seed=0, pattern="structured", num_classes=None):
    """A Graph: optional pad to widths[0], head junctions (degree None: dense) with ReLU, and exits
    given as (at_junction, hidden_sizes)."""
    from mcuflow.ir.graph import ExitBranch, Graph, Pad, Relu

    rng = np.random.default_rng(seed)
    head = []
    input_len = input_len or widths[0]
    if input_len != widths[0]:
        head.append(Pad("pad", input_len, widths[0]))
    pos = {0: len(head)}
    for j, d in enumerate(degrees):
        n_in, n_out = widths[j], widths[j + 1]
        layer = (
            dense_layer(f"head.{j}", n_in, n_out, rng)
            if d is None
            else sparse_layer(f"head.{j}", n_in, n_out, d, rng, pattern, seed + j)
        )
        head += [layer, Relu(f"head.{j}.relu", n_out)]
        pos[j + 1] = len(head)
    num_classes = num_classes or 10
    branches = []
    for e, (at, hidden) in enumerate(exits):
        nodes, w = [], widths[at]
        for i, h in enumerate([*hidden, num_classes]):
            nodes.append(dense_layer(f"exit{e}.{i}", w, h, rng))
            if i < len(hidden):
                nodes.append(Relu(f"exit{e}.{i}.relu", h))
            w = h
        branches.append(ExitBranch(f"exit{e}", pos[at], nodes))
    return Graph("synthetic", input_len, head, branches, num_classes, "ab" * 32, source="synthetic")


def write_library(qmodel, directory: Path) -> Path:
    from mcuflow.codegen import render_library

    directory.mkdir(parents=True, exist_ok=True)
    for name, text in render_library(qmodel).items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(text)
    return directory


def c_vs_reference(qmodel, inputs: np.ndarray, tmp: Path, compiler: str = "gcc") -> tuple[dict, object]:
    """Compile the library + batch harness, run it on ``inputs``, and return (C records, reference result)."""
    from mcuflow import reference

    lib = write_library(qmodel, tmp / "lib")
    exe = build_harness(lib, tmp / f"harness_{compiler}", compiler)
    out = run_harness(exe, inputs, len(qmodel.exits), qmodel.num_classes, qmodel.intermediate_len, tmp)
    return out, reference.run(qmodel, inputs)


def assert_parity(out, ref) -> None:
    """Zero mismatches: decisions, labels, confidences, evaluated exits' logits, non-exited intermediates."""
    assert (out["status"] == 0).all()
    np.testing.assert_array_equal(out["exited"], ref.exited)
    ex = ref.exited.astype(bool)
    np.testing.assert_array_equal(out["exit_index"][ex], ref.exit_index[ex])
    np.testing.assert_array_equal(out["label"][ex], ref.label[ex])
    np.testing.assert_array_equal(out["confidence_q15"][ex], ref.confidence_q15[ex])
    n_exits = ref.evaluated.shape[1]
    if n_exits:
        np.testing.assert_array_equal(out["evaluated"][:, :n_exits].astype(bool), ref.evaluated)
        for e in range(n_exits):
            sel = ref.evaluated[:, e]
            np.testing.assert_array_equal(out["logits"][sel, e], ref.exit_logits[e][sel])
    np.testing.assert_array_equal(out["intermediate"][~ex], ref.intermediate[~ex])
