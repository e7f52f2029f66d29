"""``mcuflow plan``: search split point, sparsity and exits for a board's budget (mcuflow.plan)."""

from __future__ import annotations

from pathlib import Path

import click

from mcuflow.cli.main import cli
from mcuflow.cli.options import OutputPath, data_dir_unless_data, data_option, int_list
from mcuflow.errors import ConfigError


@cli.command("plan")
@click.option("--board", "-b", "boards", multiple=True, required=True,
              help="Board name or .toml (repeat for several boards: they share the trained candidates).")  # fmt: skip
@click.option("--out", "out_dir", required=True, type=OutputPath(directory=True),
              help="Output directory: the study database, the trained-candidate cache, per-board results. "
              "Run the same command again to resume.")  # fmt: skip
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), envvar="MCUFLOW_DATA_DIR",
              help="MNIST IDX directory (env MCUFLOW_DATA_DIR).")  # fmt: skip
@data_option(
    "search on its training split (the last --val-samples held out for validation; the test split is not read)"
)
@click.option("--mode", type=click.Choice(["plain", "pa", "fa", "ma"]), default="plain", show_default=True,
              help="plain: out-degree searched per junction; pa/fa/ma: complexity-driven, one pruning level put "
              "where the layer's share of parameters / MACs / activation memory is largest.")  # fmt: skip
@click.option("--sampler", type=click.Choice(["random", "evolutionary"]), default="random", show_default=True,
              help="Optuna's RandomSampler or NSGA-II.")  # fmt: skip
@click.option("--trials", type=click.IntRange(1, 100_000), default=40, show_default=True,
              help="Candidates trained (or taken from the cache) per study; draws the estimate rules out are free.")  # fmt: skip
@click.option("--compare", is_flag=True,
              help="Also run plain, pa, fa and ma on the first board with the same --trials and write compare.csv.")  # fmt: skip
@click.option("--max-flash", type=int, default=None, help="Model flash budget in bytes [board flash less firmware].")
@click.option(
    "--max-ram", type=int, default=None, help="Model static RAM budget in bytes [board RAM less firmware, stack]."
)
@click.option("--max-instructions", type=float, default=None, help="Mean device instructions (cycles) per inference.")
@click.option(
    "--max-ms", type=float, default=None, help="Compute budget in ms at the board's clock (instead of instructions)."
)
@click.option("--max-bytes-per-sample", type=float, default=None, help="Mean bytes the device sends per sample.")
@click.option(
    "--max-link-ms", type=float, default=None, help="Link budget in ms per sample at --baud (instead of bytes)."
)
@click.option("--baud", type=int, default=None, help="Baud of --max-link-ms [the board's UART baud].")
@click.option("--epochs", type=click.IntRange(1, 10_000), default=5, show_default=True, help="Epochs per candidate.")
@click.option("--final-epochs", type=click.IntRange(1, 10_000), default=60, show_default=True,
              help="Epochs of the chosen model's retraining.")  # fmt: skip
@click.option("--lr", type=float, default=1e-2, show_default=True, help="Peak learning rate (cosine decay).")
@click.option("--batchnorm/--no-batchnorm", default=True, show_default=True,
              help="Train with BatchNorm folded into the junctions at the end (see mcuflow train).")  # fmt: skip
@click.option(
    "--train-limit", type=click.IntRange(1), default=None, help="Train candidates on the first N training rows."
)
@click.option("--val-samples", type=click.IntRange(1), default=10_000, show_default=True,
              help="The last N training rows are the validation split.")  # fmt: skip
@click.option(
    "--widths", default=None, metavar="W,W,...", help="Hidden widths to choose from [16,20,25,32,40,50,64,80]."
)
@click.option("--max-device-layers", type=click.IntRange(1, 4), default=2, show_default=True,
              help="Most hidden layers on the device.")  # fmt: skip
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sampler and of training.")
@click.option("--storage", default=None, metavar="URL",
              help="Optuna storage: sqlite:///path.db, postgresql://... to share one search across machines "
              "[sqlite in --out].")  # fmt: skip
@click.option("--cache", "cache_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Directory of trained candidates, shared by runs with other budgets or boards [OUT/cache].")  # fmt: skip
@click.option("--study", "study_prefix", default="plan", show_default=True, help="Prefix of the study names.")
@click.option("--measure/--no-measure", default=True, show_default=True,
              help="Export, build and selftest the front under QEMU (--no-measure: estimates only, nothing chosen).")  # fmt: skip
@click.option("--measure-max", type=click.IntRange(1, 1000), default=12, show_default=True,
              help="Most candidates measured per board.")  # fmt: skip
@click.option("--progress/--no-progress", "show_progress", default=True, help="Progress on stderr.")
def plan_cmd(**o) -> None:
    """Search the split point, out-degrees, exits, threshold and link settings of an MLP for BOARD's budget.

    Each candidate is trained briefly (--epochs) and scored on a validation split held out of the training
    data; candidates the estimated cost rules out are not trained. The estimated Pareto front (validation
    accuracy against instructions, model flash, bytes per sample) is then measured: exported, built for the
    board, run in the selftest firmware under QEMU (a hardware board's instructions on the QEMU board of its
    core) and scored in int8. The best measured member is retrained for --final-epochs and written as
    OUT/<board>/<mode>/chosen.pt with the export/hil options in chosen.json; candidates.csv, front.csv, plan.json
    and pareto.svg sit beside it.

    \b
    Example:
        mcuflow plan --board nrf52840dk --out plan-nrf
        mcuflow plan --board nrf52840dk --max-flash 16384 --max-instructions 10000 --out plan-tight --compare
    """
    from mcuflow.boards import load_board
    from mcuflow.plan.budget import Budget

    boards = [load_board(b) for b in o["boards"]]  # a typo fails before any data is read
    budgets = [
        Budget.for_board(
            b,
            o["max_flash"],
            o["max_ram"],
            o["max_instructions"],
            o["max_ms"],
            o["max_bytes_per_sample"],
            o["max_link_ms"],
            o["baud"],
        )  # fmt: skip
        for b in boards
    ]
    if o["lr"] <= 0:
        raise ConfigError(f"--lr must be positive, got {o['lr']}")
    if o["storage"] is not None and "://" not in o["storage"]:
        raise ConfigError(
            f"--storage must be a database URL (sqlite:///plan.db, postgresql://...), got {o['storage']!r}"
        )
    widths = int_list(o["widths"], "--widths")
    if widths is not None and (not widths or any(w < 2 for w in widths)):
        raise ConfigError(f"--widths must be widths of at least 2, got {o['widths']!r}")
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise ConfigError("mcuflow plan needs optuna (pip install optuna)") from None
    if o["measure"]:
        from mcuflow.plan.measure import counting_board

        for b in boards:
            counting_board(b)  # a board whose instructions cannot be counted fails now
    from mcuflow.data import Normalization, open_source
    from mcuflow.plan.driver import Planner, PlanSettings
    from mcuflow.plan.evaluate import PlanData, Recipe
    from mcuflow.plan.outputs import front_lines, write_compare
    from mcuflow.plan.space import MlpSpace

    source = open_source(o["data"], data_dir_unless_data(o["data"], o["data_dir"]))
    train_set = source.train(Normalization.parse("auto"))
    data = PlanData.split(train_set, o["val_samples"], o["train_limit"])
    space = MlpSpace(input_width=train_set.input_width, n_classes=max(2, train_set.n_classes),
                     max_device_layers=o["max_device_layers"])  # fmt: skip
    if widths is not None:
        space.widths = tuple(widths)
    settings = PlanSettings(
        mode=o["mode"], sampler=o["sampler"], trials=o["trials"], seed=o["seed"],
        recipe=Recipe(epochs=o["epochs"], lr=o["lr"], batchnorm=o["batchnorm"], seed=o["seed"]),
        final_epochs=o["final_epochs"], measure_max=o["measure_max"], study_prefix=o["study_prefix"],
        storage=o["storage"],
    )  # fmt: skip
    log = lambda m: click.echo(m, err=True)  # noqa: E731
    planner = Planner(data, space, o["out_dir"], settings, log, o["show_progress"], cache_dir=o["cache_dir"])
    click.echo(f"data: {len(data.train):,} training and {len(data.val):,} validation rows of {train_set.source}")
    if o["compare"]:
        table = planner.compare(boards[0], budgets[0], ["plain", "pa", "fa", "ma"])
        write_compare(o["out_dir"], table)
        click.echo(f"sparsity modes on {boards[0].name}, {o['trials']} candidates each ({budgets[0].describe()}):")
        for t in table:
            best = (
                "none within budget"
                if t["best_val_accuracy"] is None
                else f"{100 * t['best_val_accuracy']:.2f}% after {t['candidates_to_reach_best']} candidates"
            )
            click.echo(f"  {t['mode']:<6} best val {best} "
                       f"({t['feasible']} of {t['candidates']} within budget, {t['draws_skipped_by_estimate']} "
                       f"draws skipped, {t['trained_now']} trained now)")  # fmt: skip
    for b, budget in zip(boards, budgets, strict=True):
        r = planner.run_board(b, budget, measure_front=o["measure"])
        feas = sum(c["feasible"] for c in r["candidates"])
        click.echo(f"{b.name}: {budget.describe()}; {len(r['candidates'])} candidates, {feas} within budget; "
                   f"energy model {r['energy_model']}")  # fmt: skip
        if r["measured"]:
            click.echo(f"measured front ({sum(bool(m.get('on_front')) for m in r['measured'])} of "
                       f"{len(r['measured'])} measured; instructions counted on {r['measured'][0]['m_counted_on']}):")  # fmt: skip
            for line in front_lines(r):
                click.echo("  " + line)
        ch = r["chosen"]
        if ch:
            m = ch["measured"]
            click.echo(f"chosen: {ch['description']}, retrained {ch['epochs']} epochs: int8 val {100 * m['accuracy']:.2f}%, "
                       f"exit {100 * m['exit_rate']:.1f}%, {m['instructions']:,.0f} instructions (max "
                       f"{m['instructions_max']:,.0f}), model flash {m['model_flash']:,} B (image {m['flash']:,}), "
                       f"RAM {m['ram']:,} B, {m['bytes_per_sample']:.1f} B/sample, {ch['energy_uj']:.2f} uJ")  # fmt: skip
            click.echo(f"  {ch['commands']['export']}")
        elif o["measure"]:
            click.echo(f"{b.name}: no measured candidate stayed within the budget; nothing chosen")
        click.echo(
            f"wrote {Path(o['out_dir']) / b.name / o['mode']}/ (candidates.csv, front.csv, plan.json, pareto.svg, chosen.*)"
        )
