"""mcuflow plan: the complexity-driven allocation, the budget, the energy model, the search on Optuna's
SQLite storage (resumed where it stopped, trained candidates reused) and one measured run end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import require_tools

from mcuflow.boards import load_board
from mcuflow.cli import main
from mcuflow.errors import ConfigError
from mcuflow.plan import complexity
from mcuflow.plan.budget import Budget
from mcuflow.plan.driver import Planner, PlanSettings
from mcuflow.plan.energy import EnergyModel
from mcuflow.plan.estimate import estimate
from mcuflow.plan.evaluate import PlanData, Recipe
from mcuflow.plan.pareto import front
from mcuflow.plan.space import Candidate, MlpSpace, nearest_degree


def test_complexity_puts_the_sparsity_where_the_share_is_largest():
    widths = [800, 40, 20, 10]
    for mode in complexity.MODES:
        s = complexity.shares(mode, widths)
        assert abs(sum(s) - 1) < 1e-12 and s[0] == max(s)
        dens = complexity.allocate(mode, widths, 0.95)
        assert abs(dens[0] - 0.05) < 1e-12  # the largest share keeps 1 - level
        assert dens[0] < dens[1] < dens[2] <= 1.0  # the smaller the share, the less pruned
    # an MLP's parameter and MAC shares differ only by the biases; memory shares are flatter
    pa, fa, ma = (complexity.shares(m, widths) for m in ("pa", "fa", "ma"))
    assert max(abs(a - b) for a, b in zip(pa, fa, strict=True)) < 0.01
    assert ma[0] < pa[0]


def test_nearest_degree_is_always_a_whole_in_degree():
    for n_in, n_out in [(800, 40), (800, 48), (64, 25), (784, 10)]:
        for density in (0.001, 0.05, 0.3, 1.0):
            d = nearest_degree(n_in, n_out, density)
            assert 1 <= d <= n_out and (n_in * d) % n_out == 0


def test_front_keeps_the_non_dominated():
    items = [(1, 5), (2, 2), (3, 3), (5, 1), (2, 2)]
    assert front(items, lambda t: t) == [(1, 5), (2, 2), (5, 1), (2, 2)]


def test_budget_defaults_conversions_and_refusals():
    b = load_board("nrf52840dk")
    d = Budget.for_board(b)
    assert 0 < d.model_flash_bytes < b.flash_bytes and d.instructions is None
    assert Budget.for_board(b, ms=1.0).instructions == 64_000  # cycles at the 64 MHz clock
    assert Budget.for_board(b, link_ms=10.0).bytes_per_sample == pytest.approx(115.2)
    with pytest.raises(ConfigError, match="does not fit nrf52840dk"):
        Budget.for_board(b, flash=b.flash_bytes)
    with pytest.raises(ConfigError, match="not both"):
        Budget.for_board(b, instructions=1, ms=1)
    v = Budget.for_board(b, flash=1000, instructions=100).violations(2000, 0, 50, 0)
    assert len(v) == 1 and "flash" in v[0]


def test_energy_model_from_the_board_file_or_the_core_default():
    e = EnergyModel.of(load_board("nrf52840dk"))
    assert e.nj_per_cycle == pytest.approx(9.9e6 / 64e6) and "nRF52840 PS" in e.source
    assert e.nj_per_byte == pytest.approx(9.9e6 * 10 / 115_200)
    assert "default for cortex-m3" in EnergyModel.of(load_board("qemu-mps2-an385")).source


def test_estimate_of_the_paper_head_is_near_its_measured_figures():
    from mcuflow.nn.config import paper_config

    e = estimate(Candidate(paper_config().to_dict()))
    # measured (mcuflow export/build/selftest of examples/paper_sparse.pt): 4,990 B model flash, 2,521 B
    # static RAM, 7,867 instructions per head run on qemu-mps2-an386
    assert abs(e.flash_bytes - 4990) < 300 and abs(e.ram_bytes - 2521) < 100
    assert abs(e.instructions(0.0) - 7867) < 0.1 * 7867


def _data() -> PlanData:
    from mcuflow.data import Normalization, bundled_source

    return PlanData.split(bundled_source().train(Normalization.parse("auto")), 100, 200)


def _planner(tmp_path: Path, trials: int, **kw) -> Planner:
    data = _data()
    space = MlpSpace(input_width=784, n_classes=10, widths=(16, 20), max_device_layers=1)
    settings = PlanSettings(trials=trials, recipe=Recipe(epochs=1, batch_size=64), **kw)
    return Planner(data, space, tmp_path / "out", settings, log=lambda m: None, show_progress=False)


def test_search_resumes_where_it_stopped_and_reuses_trained_candidates(tmp_path, monkeypatch):
    board = load_board("qemu-mps2-an386")
    budget = Budget.for_board(board)
    p = _planner(tmp_path, 2)
    first = p.rows(p.search(board, budget, "plain"))
    assert len(first) == 2 and all(r["trained_now"] for r in first)
    assert (tmp_path / "out" / "study.db").is_file()

    # a search killed in its third candidate's training...
    import mcuflow.plan.driver as driver

    real = driver.train_candidate

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(driver, "train_candidate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _planner(tmp_path, 4).search(board, budget, "plain")
    monkeypatch.setattr(driver, "train_candidate", real)

    # ...continues from the stored study: the two done stay, two more are drawn (not the first two again)
    p = _planner(tmp_path, 4)
    rows = p.rows(p.search(board, budget, "plain"))
    assert len(rows) == 4
    assert [r["candidate"] for r in rows[:2]] == [r["candidate"] for r in first]
    assert [r["trial"] for r in rows[:2]] == [r["trial"] for r in first]
    assert rows[2]["candidate"] != rows[0]["candidate"] and rows[3]["trial"] > rows[2]["trial"]
    assert all(r["trained_now"] for r in rows[2:])

    # another board's search draws the same candidates and trains none of them again
    other = load_board("qemu-mps2-an500")
    again = p.rows(p.search(other, Budget.for_board(other), "plain"))
    assert [r["candidate"] for r in again[:2]] == [r["candidate"] for r in first]
    assert not any(r["trained_now"] for r in again[:2])


def test_a_resumed_study_with_other_settings_is_refused(tmp_path):
    board = load_board("qemu-mps2-an386")
    _planner(tmp_path, 1).search(board, Budget.for_board(board), "pa")
    with pytest.raises(ConfigError, match="other settings.*budget"):
        _planner(tmp_path, 1).search(board, Budget.for_board(board, instructions=5e4), "pa")


def test_compare_reports_best_accuracy_and_candidates_to_reach_it(tmp_path):
    board = load_board("qemu-mps2-an386")
    table = _planner(tmp_path, 2).compare(board, Budget.for_board(board, instructions=20_000), ["plain", "ma"])
    assert [t["mode"] for t in table] == ["plain", "ma"]
    for t in table:
        assert t["candidates"] == 2 and t["feasible"] <= 2
        if t["best_val_accuracy"] is not None:
            assert 1 <= t["candidates_to_reach_best"] <= 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["--board", "nope"], "unknown board 'nope'"),
        (["--board", "nrf52840dk", "--max-flash", "99999999"], "does not fit nrf52840dk"),
        (["--board", "nrf52840dk", "--storage", "study.db"], "--storage must be a database URL"),
        (["--board", "rpi-pico"], "no QEMU board with a cortex-m0plus"),
    ],
)
def test_bad_options_fail_in_one_line_before_any_work(tmp_path, capsys, args, message):
    rc = main(["plan", *args, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 1 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_plan_end_to_end_measures_the_front_and_writes_a_chosen_model(tmp_path, capsys):
    require_tools("arm-none-eabi-gcc", "qemu-system-arm")
    from mcuflow.data import bundled_test_subset

    s = bundled_test_subset()
    np.savez(tmp_path / "d.npz", x=s.images, y=s.labels)
    out = tmp_path / "plan"
    argv = ["plan", "--board", "qemu-mps2-an386", "--data", str(tmp_path / "d.npz"), "--val-samples", "100",
            "--train-limit", "200", "--trials", "2", "--epochs", "1", "--final-epochs", "1", "--measure-max", "1",
            "--widths", "16,20", "--max-device-layers", "1", "--out", str(out), "--no-progress"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    d = out / "qemu-mps2-an386" / "plain"
    for name in ("candidates.csv", "front.csv", "plan.json", "pareto.svg", "chosen.json", "chosen.pt"):
        assert (d / name).is_file(), name
    plan = json.loads((d / "plan.json").read_text())
    assert len(plan["candidates"]) == 2 and len(plan["measured"]) == 1
    m = plan["measured"][0]
    assert m["on_front"] and m["m_selftest_passed"] and m["m_instructions"] > 0 and m["m_model_flash"] > 0
    assert m["m_layer_instructions"] and m["m_counted_on"] == "qemu-mps2-an386"
    chosen = json.loads((d / "chosen.json").read_text())
    assert chosen["measured"]["accuracy"] > 0 and chosen["epochs"] == 1
    payload = torch.load(d / "chosen.pt", weights_only=True)
    assert payload["format"] == "mcuflow-checkpoint"
    assert main(["export", str(d / "chosen.pt"), "-o", str(tmp_path / "exp"), *chosen["export_flags"].split()]) == 0
    assert "<svg" in (d / "pareto.svg").read_text()[:500]
    # a rerun resumes: nothing trained or measured again
    capsys.readouterr()
    assert main(argv) == 0
    assert "resuming study" in capsys.readouterr().err


def test_the_evolutionary_sampler_runs_the_same_search(tmp_path):
    board = load_board("qemu-mps2-an386")
    p = _planner(tmp_path, 2, sampler="evolutionary")
    rows = p.rows(p.search(board, Budget.for_board(board), "fa"))
    assert len(rows) == 2 and p.study_name(board, "fa").endswith("fa-evolutionary-seed0")


def test_a_candidate_the_toolchain_refuses_leaves_the_front_without_ending_the_plan(tmp_path, monkeypatch):
    import mcuflow.plan.measure as measure_mod
    from mcuflow.errors import ToolchainError

    def refuse(*a, **k):
        raise ToolchainError("arm-none-eabi-gcc: internal compiler error")

    monkeypatch.setattr(measure_mod, "measure", refuse)
    board = load_board("qemu-mps2-an386")
    p = _planner(tmp_path, 2, measure_max=2)
    result = p.run_board(board, Budget.for_board(board))
    assert result["chosen"] is None and result["measured"]
    assert all(m["m_violations"][0].startswith("not measured: arm-none-eabi-gcc") for m in result["measured"])
    assert not any(m["on_front"] for m in result["measured"])
    d = tmp_path / "out" / "qemu-mps2-an386" / "plain"
    assert (d / "plan.json").is_file() and (d / "front.csv").is_file() and (d / "pareto.svg").is_file()
