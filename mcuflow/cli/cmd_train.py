"""``mcuflow train``: train a sparse (or deep/shallow) split network with early exits on MNIST or your own data."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from mcuflow.cli.main import cli
from mcuflow.cli.options import (
    OutputPath,
    data_dir_unless_data,
    data_option,
    float_list,
    int_list,
    link_flags,
    tail_hidden_option,
)
from mcuflow.errors import ConfigError


def model_config_from_options(
    family: str,
    sizes: str | None,
    out_degrees: str | None,
    pattern: str,
    pattern_seed: int,
    split: int,
    exit_at: str,
    exit_hidden: str | None,
    input_size: int | None,
):
    from mcuflow.nn.config import ExitConfig, ModelConfig, paper_config

    base = paper_config(family)
    size_list = int_list(sizes, "--sizes") or base.sizes
    if family == "sparse":
        degrees = int_list(out_degrees, "--out-degrees") if out_degrees is not None else None
        if degrees is None:
            if sizes is not None and size_list != base.sizes:
                raise ConfigError("a sparse model with custom --sizes needs --out-degrees (one per junction)")
            degrees = base.out_degrees
    else:
        if out_degrees is not None and int_list(out_degrees, "--out-degrees") is not None:
            raise ConfigError(f"--out-degrees applies to --family sparse; {family} models are fully connected")
        degrees = None
    hidden = int_list(exit_hidden, "--exit-hidden") or []
    ats = int_list(exit_at, "--exit-at") or []
    exits = [ExitConfig(at=a, hidden=list(hidden)) for a in ats]
    return ModelConfig.from_dict(
        dict(
            sizes=size_list,
            out_degrees=degrees,
            family=family,
            pattern=pattern,
            seed=pattern_seed,
            split=split,
            exits=[e.__dict__ for e in exits],
            input_size=input_size if input_size and input_size < size_list[0] else None,
        )
    )


@cli.command("train")
@click.option(
    "--preset",
    type=click.Choice(["b-lenet", "b-lenet-sparse"]),
    default=None,
    help="A convolutional split model (docs/cnn.md): B-LeNet with dense convolutions, or with a channel-sparse "
    "second conv. Takes the training options; the MLP shape options (--sizes, --family, ...) do not apply.",
)
@click.option(
    "--arch",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="A convolutional split model declared in a JSON or TOML file (format: mcuflow/nn/arch.py, docs/cnn.md).",
)
@click.option(
    "--family",
    type=click.Choice(["sparse", "deep", "shallow"]),
    default="sparse",
    show_default=True,
    help="sparse: predefined-sparse junctions; deep: fully connected with the same widths; shallow: one hidden layer.",
)
@click.option(
    "--sizes",
    metavar="N,N,...",
    help="Layer widths, input first (default: the paper's 800,40,40,10 for sparse; 800,3,3,10 deep; 800,3,10 shallow).",
)
@click.option(
    "--out-degrees",
    metavar="D,D,...",
    help="Out-degree of every input node, per junction (sparse only; default 2,9,10). A degree equal to the next width is dense.",
)
@click.option(
    "--pattern",
    type=click.Choice(["structured", "random"]),
    default="structured",
    show_default=True,
    help="structured: closed-form pattern the device regenerates (no stored indices); random: seeded random regular graph.",
)
@click.option(
    "--pattern-seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed of the sparsity pattern (junction j uses seed+j).",
)
@click.option(
    "--split",
    type=int,
    default=1,
    show_default=True,
    help="Number of junctions in the head (run on the device); all of them puts the whole model there.",
)
@click.option(
    "--exit-at",
    default="1",
    show_default=True,
    metavar="J,J,...",
    help="Head junctions whose output feeds an early exit ('none' for no exit).",
)
@click.option(
    "--exit-hidden", default="", metavar="H,H,...", help="Hidden widths of each exit branch (empty: one linear layer)."
)
@click.option(
    "--input-size",
    type=int,
    default=None,
    help="Real inputs; fewer than sizes[0] are zero-padded (MNIST 784 -> 800) [default: the data's width, 784 for MNIST].",
)
@click.option("--epochs", type=int, default=100, show_default=True)
@click.option("--lr", type=float, default=3e-3, show_default=True, help="Peak learning rate.")
@click.option("--batch-size", type=int, default=256, show_default=True)
@click.option("--optimizer", type=click.Choice(["adam", "adamw", "sgd"]), default="adam", show_default=True)
@click.option(
    "--schedule",
    type=click.Choice(["none", "cosine", "step"]),
    default="cosine",
    show_default=True,
    help="Learning-rate schedule over all steps (step: x0.1 at 50% and 75%).",
)
@click.option("--weight-decay", type=float, default=0.0, show_default=True)
@click.option("--exit-weight", "exit_weights", metavar="W,W,...", help="Loss weight of each exit (default 1.0 each).")
@click.option("--final-weight", type=float, default=1.0, show_default=True, help="Loss weight of the final output.")
@click.option(
    "--teacher",
    metavar="dense:H[,H...]|CKPT",
    default=None,
    help="Distil from a teacher: dense:256 trains a fully connected 784-256-10 MLP first (--teacher-epochs), "
    "a checkpoint path uses that model's final output. Each head's loss becomes "
    "(1-a)*CE + a*T^2*KL(teacher/T || head/T) with a = --kd-weight, T = --kd-temperature.",
)
@click.option("--teacher-epochs", type=int, default=10, show_default=True, help="Epochs of a dense:H teacher.")
@click.option(
    "--kd-weight", type=float, default=0.5, show_default=True, help="With --teacher: weight a of the KL term."
)
@click.option("--kd-temperature", type=float, default=4.0, show_default=True, help="With --teacher: temperature T.")
@click.option(
    "--batchnorm/--no-batchnorm",
    default=False,
    show_default=True,
    help="Train with BatchNorm on the hidden junctions' pre-activations, folded into their weights and biases "
    "at the end: the saved model has the same junctions, parameters and export (pair with a higher --lr).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of weight initialisation and batch order.")
@click.option("--threads", type=int, default=None, help="Torch CPU threads (default 1: faster for these small layers).")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="MCUFLOW_DATA_DIR",
    help="Directory with the MNIST IDX files (env MCUFLOW_DATA_DIR; downloaded there when absent and online).",
)
@data_option("train on its training split and report on its test split")
@click.option(
    "--normalize",
    default="auto",
    show_default=True,
    metavar="auto|minmax|meanstd|none|SHIFT,DIVISOR",
    help="Inputs x = (raw - SHIFT) / DIVISOR, fitted on the training split (minmax: to [0, 1]; meanstd) or given; "
    "auto: MNIST's pixels/255, minmax for other data. Recorded in the checkpoint and re-applied by export and hil.",
)
@click.option("--limit", type=int, default=None, help="Train on the first N training images only (quick runs).")
@click.option("--test-limit", type=int, default=None, help="Evaluate on the first N test images only.")
@click.option(
    "--holdout",
    type=int,
    default=None,
    metavar="N",
    help="Hold out the last N training images: train on the rest (then --limit) and report accuracy on them "
    "instead of the test set, to choose options without looking at the test set.",
)
@click.option("--out", "out", type=OutputPath(), help="Write the trained checkpoint here.")
@click.option(
    "--metrics-json",
    type=OutputPath(),
    help="Write params, accuracies and per-junction density here.",
)
@click.option(
    "--progress/--no-progress",
    "show_progress",
    default=True,
    help="Progress on stderr (a bar on a terminal, plain lines otherwise).",
)
@click.option(
    "--finetune-link",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="Fine-tune this checkpoint with OFFLOAD pruning in the loop (see mcuflow link-sweep) instead of training.",
)
@click.option("--prune-threshold", type=int, default=0, show_default=True, help="--finetune-link: |q - zp| threshold.")
@click.option("--prune-topk", type=int, default=0, show_default=True, help="--finetune-link: values kept (0: all).")
@click.option("--link-bits", type=click.IntRange(2, 8), default=8, show_default=True, help="--finetune-link: bits.")
@click.option("--link-shift", type=click.IntRange(0, 8), default=None, help="--finetune-link: shift [auto].")
@click.option("--head-epochs", type=int, default=20, show_default=True, help="--finetune-link: joint epochs.")
@click.option("--head-lr", type=float, default=2e-3, show_default=True, help="--finetune-link: joint learning rate.")
@click.option("--tail-epochs", type=int, default=5, show_default=True, help="--finetune-link: exact tail epochs.")
@click.option("--tail-lr", type=float, default=1e-3, show_default=True, help="--finetune-link: tail learning rate.")
@click.option(
    "--offload-weight",
    type=float,
    default=3.0,
    show_default=True,
    help="--finetune-link: loss weight of offloaded images.",
)
@click.option(
    "--distill", type=float, default=1.0, show_default=True, help="--finetune-link: KD weight (unpruned teacher)."
)
@click.option("--act-l1", type=float, default=0.0, show_default=True, help="--finetune-link: L1 on the head output.")
@click.option(
    "--tail-hidden",
    default=None,
    metavar="H,H,...",
    help="A fully connected host tail with these hidden widths (e.g. 128,128; 'none': one linear layer) instead of "
    "the junctions after the split. With --finetune-link it replaces the checkpoint's tail, freshly initialised and "
    "trained in both stages; default: keep the checkpoint's tail (or the junctions of --sizes/--out-degrees).",
)
def train(**opts) -> None:
    """Train a split network on MNIST (or --data) with a joint early-exit + final loss.

    The defaults are the paper's sparse [800, 40, 40, 10] network with
    out-degrees [2, 9, 10] (2,450 parameters), split after its first junction,
    with one linear exit on the 40 head outputs, trained with Adam (lr 3e-3,
    cosine decay), batch 256, 100 epochs and loss = CE(exit) + CE(final).
    Inputs are pixels/255 in [0, 1], zero-padded from 784 to 800.

    With --data, train on your own data instead: the first of --sizes is the input
    width after padding (a narrower input is zero-padded up to it), the last the
    number of classes. The inputs' normalisation (--normalize) goes into the
    checkpoint, and export, hil and run apply it to later data.

    \b
    Example:
        mcuflow train --out model.pt --metrics-json metrics.json
        mcuflow train --family deep --sizes 800,5,5,10 --epochs 50 --out deep.pt
        mcuflow train --batchnorm --lr 1e-2 --pattern-seed 8 --seed 8   # 95.3%, docs/results-model.md
        mcuflow train --data examples/digits.npz --sizes 64,32,10 --out-degrees 8,10 --out digits.pt
        mcuflow train --preset b-lenet-sparse --epochs 6 --lr 2e-3 --out blenet_sparse.pt
    """
    if opts["preset"] or opts["arch"]:
        return train_arch(opts)
    if opts["finetune_link"]:
        return finetune_from_train_opts(opts)
    from mcuflow.checkpoint import load, save
    from mcuflow.nn.train import build_and_train, write_json

    config = model_config_from_options(
        opts["family"],
        opts["sizes"],
        opts["out_degrees"],
        opts["pattern"],
        opts["pattern_seed"],
        opts["split"],
        opts["exit_at"],
        opts["exit_hidden"],
        opts["input_size"],
    )
    tail_hidden = tail_hidden_option(opts["tail_hidden"])
    if tail_hidden is not None:
        config = dataclasses.replace(config, tail_hidden=tail_hidden)
        config.validate()
    tcfg = _train_config(
        opts,
        distill_weight=opts["kd_weight"] if opts["teacher"] else 0.0,
        distill_temperature=opts["kd_temperature"],
        batchnorm=opts["batchnorm"],
    )
    tcfg.validate(len(config.exits))
    spec = None
    if opts["teacher"]:  # a bad teacher fails before any data is loaded
        from mcuflow.nn.distill import parse_teacher

        spec = parse_teacher(opts["teacher"])
        if opts["teacher_epochs"] < 1:
            raise ConfigError("--teacher-epochs must be at least 1")
    for flag in ("limit", "test_limit", "holdout"):
        if opts[flag] is not None and opts[flag] < 1:
            raise ConfigError(f"--{flag.replace('_', '-')} must be at least 1")
    from mcuflow.data import Normalization, open_source

    normalize = Normalization.parse(opts["normalize"])  # a typo fails before the data is read
    source = open_source(opts["data"], data_dir_unless_data(opts["data"], opts["data_dir"]))
    train_set = source.train(normalize)
    if opts["holdout"]:
        if opts["holdout"] >= len(train_set):
            raise ConfigError(f"--holdout {opts['holdout']} leaves no training images (there are {len(train_set)})")
        keep = len(train_set) - opts["holdout"]
        test_set = train_set.rows(keep).head(opts["test_limit"])
        train_set = train_set.head(keep)
    else:
        test_set = source.test(train_set.normalization).head(opts["test_limit"])
    train_set = train_set.head(opts["limit"])
    config = fit_model_to_data(config, train_set, test_set, opts["input_size"])
    train_xy = train_set.tensors()
    teacher, teacher_info = None, {}
    if spec is not None:
        from mcuflow.nn.distill import teacher_logits
        from mcuflow.nn.train import set_threads

        set_threads(opts["threads"])
        loaded = None if spec.checkpoint is None else load(spec.checkpoint)
        teacher, teacher_info = teacher_logits(
            spec, train_xy, epochs=opts["teacher_epochs"], seed=opts["seed"], checkpoint_model=loaded
        )
        click.echo(
            f"teacher {spec.describe()}: training accuracy {teacher_info['teacher_train_accuracy'] * 100:.2f}% "
            f"({teacher_info['teacher_time_s']:.1f}s)",
            err=True,
        )
    result = build_and_train(
        config, train_xy, test_set.tensors(), tcfg, show_progress=opts["show_progress"], teacher_logits=teacher
    )
    result.metrics["training"] |= teacher_info
    if opts["holdout"]:
        result.metrics["evaluated_on"] = f"the last {opts['holdout']} training images (--holdout)"
    m = result.metrics
    if opts["out"]:
        save(
            result.model,
            opts["out"],
            meta={
                "accuracy": m["accuracy"],
                "params": m["params"],
                "training": m["training"],
                "data": train_set.record().to_meta(),
            },
        )
    if opts["metrics_json"]:
        write_json(m | {"history": result.history}, opts["metrics_json"])
    acc = m["accuracy"]
    exits = ", ".join(f"exit {i + 1} {a * 100:.2f}%" for i, a in enumerate(acc["exits"]))
    click.echo(
        f"{config.family} {config.sizes}"
        + (f" out-degrees {config.out_degrees}" if config.out_degrees else " fully connected")
        + (
            f" with a dense host tail {[config.sizes[config.split], *config.tail_hidden, config.n_classes]}"
            if tail_hidden is not None
            else ""
        )
        + f": {m['params']['main_path']} params "
        f"(+{sum(m['params']['exits'])} in exits); {'holdout' if opts['holdout'] else 'test'} accuracy "
        f"final {acc['final'] * 100:.2f}%"
        + (f", {exits}" if exits else "")
        + f" on {m['test_samples']} images; trained in {m['train_time_s']:.1f}s"
    )
    if opts["data"] is not None:
        click.echo(f"data: {train_set.source}; inputs {train_set.normalization.describe()}")
        for note in source.notes:
            click.echo(f"note: {note}")
    if opts["out"]:
        click.echo(f"checkpoint: {opts['out']}")
    if opts["metrics_json"]:
        click.echo(f"metrics: {opts['metrics_json']}")


def fit_model_to_data(config, train_set, test_set, input_size: int | None):
    """``config`` with the data's width as its input (zero-padded up to sizes[0], as MNIST's 784 -> 800),
    or one line naming both shapes when the data cannot feed the model, before any training."""
    width, first = train_set.input_width, config.sizes[0]
    shape = "x".join(map(str, train_set.input_shape))
    if input_size is not None and input_size != width:
        raise ConfigError(f"--input-size {input_size} but the data's samples are {shape} = {width} values")
    if width > first:
        raise ConfigError(
            f"the data's samples are {shape} = {width} values but the model's first layer takes {first} "
            f"(--sizes {','.join(map(str, config.sizes))}); give --sizes {width},..."
        )
    n_classes, labels = config.sizes[-1], max(train_set.n_classes, test_set.n_classes)
    if labels > n_classes:
        raise ConfigError(
            f"the labels go up to {labels - 1} but the model has {n_classes} outputs (--sizes ...,{labels})"
        )
    wanted = width if width < first else None
    if config.input_size == wanted:
        return config
    config = dataclasses.replace(config, input_size=wanted)
    config.validate()
    return config


def finetune_from_train_opts(opts: dict) -> None:
    """``mcuflow train --finetune-link CKPT``: fine-tune with the link compression in the loop."""
    import mcuflow
    from mcuflow.compression.finetune import finetune_link

    if not opts.get("out"):
        raise ConfigError("--finetune-link needs --out for the fine-tuned checkpoint")
    if opts.get("data") is not None:
        raise ConfigError("--finetune-link fine-tunes on MNIST only; it does not take --data yet")
    import torch

    torch.set_num_threads(opts.get("threads") or 1)  # small layers: one thread is fastest and reproducible
    show = opts.get("show_progress", True)
    res = finetune_link(
        opts["finetune_link"],
        prune_threshold=opts["prune_threshold"],
        prune_topk=opts["prune_topk"],
        link_bits=opts["link_bits"],
        link_shift=opts["link_shift"],
        epochs=opts["tail_epochs"],
        head_epochs=opts["head_epochs"],
        head_lr=opts["head_lr"],
        lr=opts["tail_lr"],
        batch_size=opts["batch_size"],
        data_dir=opts["data_dir"],
        limit=opts["limit"],
        seed=opts["seed"],
        offload_weight=opts["offload_weight"],
        distill=opts["distill"],
        act_l1=opts["act_l1"],
        tail_hidden=tail_hidden_option(opts.get("tail_hidden")),
        log=(lambda m: click.echo(m, err=True)) if show else None,
    )
    meta = {"finetuned_from": str(opts["finetune_link"]), "link": res.link, "finetune_history": res.history}
    mcuflow.save(res.model, opts["out"], meta=meta)
    click.echo(
        f"fine-tuned {opts['finetune_link']} for link {link_flags(res.link)} in {res.seconds:.0f}s; "
        f"checkpoint: {opts['out']}"
    )
    click.echo(f"export/hil it with: {link_flags(res.link)}")


# Options of the MLP shape (ModelConfig) and of training features that are MLP-only so far: refused with
# --preset/--arch rather than silently ignored.
_MLP_ONLY = {
    "family": "sparse",
    "sizes": None,
    "out_degrees": None,
    "pattern": "structured",
    "pattern_seed": 0,
    "split": 1,
    "exit_at": "1",
    "exit_hidden": "",
    "input_size": None,
    "tail_hidden": None,
    "batchnorm": False,
    "teacher": None,
    "finetune_link": None,
}


def train_arch(opts: dict) -> None:
    """``mcuflow train --preset NAME | --arch FILE``: a declared (convolutional) split model."""
    from mcuflow.checkpoint import save
    from mcuflow.data import Normalization, open_source
    from mcuflow.nn.arch import build_arch, load_arch
    from mcuflow.nn.layer_report import layer_report
    from mcuflow.nn.train import train, write_json

    for key, default in _MLP_ONLY.items():
        if opts[key] != default:
            raise ConfigError(f"--{key.replace('_', '-')} does not apply to --preset/--arch models")
    arch = load_arch(opts["preset"], opts["arch"])  # shapes and degrees checked before the data is read
    tcfg = _train_config(opts)
    tcfg.validate(len(arch.spec.get("exits", [])))
    for flag in ("limit", "test_limit", "holdout"):
        if opts[flag] is not None and opts[flag] < 1:
            raise ConfigError(f"--{flag.replace('_', '-')} must be at least 1")
    normalize = Normalization.parse(opts["normalize"])
    source = open_source(opts["data"], data_dir_unless_data(opts["data"], opts["data_dir"]))
    train_set = source.train(normalize)
    if opts["holdout"]:
        if opts["holdout"] >= len(train_set):
            raise ConfigError(f"--holdout {opts['holdout']} leaves no training images (there are {len(train_set)})")
        keep = len(train_set) - opts["holdout"]
        test_set = train_set.rows(keep).head(opts["test_limit"])
        train_set = train_set.head(keep)
    else:
        test_set = source.test(train_set.normalization).head(opts["test_limit"])
    train_set = train_set.head(opts["limit"])
    shape = "x".join(map(str, train_set.input_shape))
    if train_set.input_width != arch.input_size:
        raise ConfigError(
            f"the data's samples are {shape} = {train_set.input_width} values but {arch.name} takes "
            f"{'x'.join(map(str, arch.input_shape))} = {arch.input_size}"
        )
    labels = max(train_set.n_classes, test_set.n_classes)
    if labels > arch.classes:
        raise ConfigError(f"the labels go up to {labels - 1} but {arch.name} has {arch.classes} classes")
    import torch

    torch.manual_seed(tcfg.seed)
    model = build_arch(arch)
    result = train(model, train_set.tensors(), test_set.tensors(), tcfg, show_progress=opts["show_progress"])
    m = result.metrics
    m["arch"] = arch.spec
    m["layers"] = layer_report(result.model, arch.input_size)
    if opts["holdout"]:
        m["evaluated_on"] = f"the last {opts['holdout']} training images (--holdout)"
    if opts["out"]:
        save(
            result.model,
            opts["out"],
            meta={
                "accuracy": m["accuracy"],
                "params": m["params"],
                "training": m["training"],
                "data": train_set.record().to_meta(),
                "arch": arch.spec,
                "device": m["layers"]["device"],
            },
        )
    if opts["metrics_json"]:
        write_json(m | {"history": result.history}, opts["metrics_json"])
    acc, dev = m["accuracy"], m["layers"]["device"]
    exits = ", ".join(f"exit {i + 1} {a * 100:.2f}%" for i, a in enumerate(acc["exits"]))
    click.echo(
        f"{arch.name}: {dev['weights']} weights on the device ({dev['macs']} MACs per sample), "
        f"{m['params']['tail']} params in the tail; {'holdout' if opts['holdout'] else 'test'} accuracy final "
        f"{acc['final'] * 100:.2f}%"
        + (f", {exits}" if exits else "")
        + f" on {m['test_samples']} images; trained in {m['train_time_s']:.1f}s"
    )
    if opts["out"]:
        click.echo(f"checkpoint: {opts['out']}")
    if opts["metrics_json"]:
        click.echo(f"metrics: {opts['metrics_json']}")


def _train_config(opts: dict, **extra):
    """The training options both model kinds share (MLP configs and --preset/--arch), plus ``extra``."""
    from mcuflow.nn.train import TrainConfig  # torch: only when training

    return TrainConfig(
        epochs=opts["epochs"],
        batch_size=opts["batch_size"],
        lr=opts["lr"],
        optimizer=opts["optimizer"],
        schedule=opts["schedule"],
        weight_decay=opts["weight_decay"],
        seed=opts["seed"],
        exit_weights=float_list(opts["exit_weights"], "--exit-weight"),
        final_weight=opts["final_weight"],
        threads=opts["threads"],
        **extra,
    )
