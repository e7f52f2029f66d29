"""One ``mcuflow plan`` run: per board, search (or resume) the study, measure the estimated front, choose,
retrain the chosen model longer and measure it again, and write the outputs."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mcuflow.boards import Board
from mcuflow.errors import ConfigError, McuflowError
from mcuflow.plan import study as studies
from mcuflow.plan.budget import Budget
from mcuflow.plan.cache import TrainedCache
from mcuflow.plan.energy import EnergyModel
from mcuflow.plan.estimate import estimate
from mcuflow.plan.evaluate import PlanData, Recipe, score, train_candidate
from mcuflow.plan.pareto import front
from mcuflow.plan.space import Candidate, MlpSpace, config_hash

MAX_ATTEMPTS_PER_CANDIDATE = 60  # draws skipped by the estimate before a search gives up


@dataclass
class PlanSettings:
    mode: str = "plain"  # plain | pa | fa | ma
    sampler: str = "random"
    trials: int = 40  # candidates trained (or taken from the cache) per study
    seed: int = 0
    recipe: Recipe = field(default_factory=Recipe)
    final_epochs: int = 60
    measure_max: int = 12
    study_prefix: str = "plan"
    storage: str | None = None  # default sqlite:///<out>/study.db


def cost_key(row: dict[str, Any], prefix: str) -> tuple[float, ...]:
    return (-row[f"{prefix}accuracy"], row[f"{prefix}instructions"], row[f"{prefix}model_flash"],
            row[f"{prefix}bytes_per_sample"])  # fmt: skip


class Planner:
    def __init__(
        self, data: PlanData, space: MlpSpace, out_dir: Path, settings: PlanSettings, log, show_progress,
        cache_dir: Path | None = None,
    ):  # fmt: skip
        self.data, self.space, self.out, self.s = data, space, Path(out_dir), settings
        self.log, self.show_progress = log, show_progress
        self.cache = TrainedCache(cache_dir if cache_dir is not None else self.out / "cache")
        self.url = settings.storage or f"sqlite:///{(self.out / 'study.db').resolve()}"

    # -- the search ------------------------------------------------------------------------------------

    def study_name(self, board: Board, mode: str) -> str:
        return f"{self.s.study_prefix}-{board.name}-{mode}-{self.s.sampler}-seed{self.s.seed}"

    def search(self, board: Board, budget: Budget, mode: str):
        """Run the study until ``trials`` candidates are trained (or from the cache); resumes a stored one."""
        from mcuflow.progress import progress

        optuna = studies._optuna()
        settings = {
            "board": board.name, "budget": budget.to_json(), "mode": mode, "sampler": self.s.sampler,
            "seed": self.s.seed, "recipe": asdict(self.s.recipe), "space": self.space.describe(),
            "data": self.data.data_id,
        }  # fmt: skip
        name = self.study_name(board, mode)
        study = studies.open_study(self.url, name, self.s.sampler, self.s.seed, settings)
        energy = EnergyModel.of(board)
        target = self.s.trials
        done = len(studies.completed(study))
        if done:
            self.log(f"plan: resuming study {name}: {done} of {target} candidates done")
        if done >= target:
            return study
        attempts = 0

        def objective(trial):
            nonlocal attempts
            attempts += 1
            cand = self.space.suggest(trial, mode)
            est = estimate(cand, board.cpu)
            trial.set_user_attr("candidate", cand.to_json())
            best_rate = 1.0 if cand.model["exits"] else 0.0  # the most a candidate can save before it is trained
            skip = budget.violations(
                est.flash_bytes, est.ram_bytes, est.instructions(best_rate), est.bytes_per_sample(best_rate, cand.link_bits)
            )  # fmt: skip
            if skip:
                trial.set_user_attr("skipped", skip)
                raise optuna.TrialPruned("; ".join(skip))
            model, trained_now, key = train_candidate(cand, self.s.recipe, self.data, self.cache)
            sc = score(model, cand, self.data.val)
            ins, bps = est.instructions(sc["exit_rate"]), est.bytes_per_sample(sc["exit_rate"], cand.link_bits)
            bad = budget.violations(est.flash_bytes, est.ram_bytes, ins, bps)
            attrs = {
                "key": key, "trained_now": trained_now, "accuracy": sc["accuracy"], "exit_rate": sc["exit_rate"],
                "instructions": ins, "model_flash": est.flash_bytes, "model_ram": est.ram_bytes,
                "bytes_per_sample": bps, "energy_uj": energy.inference_uj(ins, bps), "feasible": not bad,
                "violations": bad, "description": cand.describe(),
            }  # fmt: skip
            for k, v in attrs.items():
                trial.set_user_attr(k, v)
            studies.set_feasibility(trial, not bad)
            return sc["accuracy"], attrs["energy_uj"]

        with progress(target, f"plan {board.name} {mode}", enabled=self.show_progress) as bar:
            bar.update(done)

            def stop_when_done(st, trial):
                n = len(studies.completed(st))
                if trial.state == optuna.trial.TrialState.COMPLETE:
                    feas = [t.user_attrs["accuracy"] for t in studies.completed(st) if t.user_attrs.get("feasible")]
                    bar.update(1, best=max(feas) if feas else 0.0)
                if n >= target or attempts >= MAX_ATTEMPTS_PER_CANDIDATE * target:
                    st.stop()

            study.optimize(objective, callbacks=[stop_when_done], gc_after_trial=False)
        if not studies.completed(study):
            raise ConfigError(
                f"no candidate fits {board.name} within {budget.describe()} (every one of {attempts} draws was over "
                f"the estimated budget); loosen the budget"
            )
        return study

    def rows(self, study) -> list[dict[str, Any]]:
        out = []
        for t in studies.completed(study):
            r = {"trial": t.number, **{k: v for k, v in t.user_attrs.items() if k != "candidate"}}
            r["candidate"] = t.user_attrs["candidate"]
            out.append(r)
        return out

    # -- comparison of the sparsity modes on the same budget -------------------------------------------

    def compare(self, board: Board, budget: Budget, modes: list[str]) -> list[dict[str, Any]]:
        table = []
        for mode in modes:
            study = self.search(board, budget, mode)
            rows = self.rows(study)
            feas = [r for r in rows if r["feasible"]]
            best = max((r["accuracy"] for r in feas), default=None)
            reach = next((i + 1 for i, r in enumerate(rows) if r["feasible"] and r["accuracy"] == best), None)
            pruned = len(study.get_trials(deepcopy=False)) - len(rows)
            table.append({
                "mode": mode, "best_val_accuracy": best, "candidates_to_reach_best": reach,
                "candidates": len(rows), "feasible": len(feas), "draws_skipped_by_estimate": pruned,
                "trained_now": sum(bool(r["trained_now"]) for r in rows),
            })  # fmt: skip
        return table

    # -- measuring the front ---------------------------------------------------------------------------

    def measured(self, board: Board, row: dict[str, Any]):
        """The candidate's measured figures (``row`` gains ``m_*``), from disk when measured before."""
        from mcuflow import atomic
        from mcuflow.plan.measure import measure

        cand = Candidate(**row["candidate"])
        mkey = config_hash(row["candidate"], asdict(self.s.recipe), self.data.data_id)
        where = self.out / board.name / "measured" / mkey
        path = where / "measured.json"
        if path.is_file():
            m = json.loads(path.read_text())
        else:
            self.log(f"plan: measuring trial {row['trial']}: {row['description']}")
            got = measure(cand, self.cache.path(row["key"]), board, self.data.val, self.data.train, where,
                          log=lambda _m: None)  # fmt: skip
            m = got.to_json()
            atomic.write_text(path, json.dumps(m, indent=2) + "\n")
        row.update({f"m_{k}": v for k, v in m.items()})
        row["m_energy_uj"] = EnergyModel.of(board).inference_uj(m["instructions"], m["bytes_per_sample"])
        return row

    def measured_front(self, board: Board, budget: Budget, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Measure the estimated front; a member over budget when measured leaves, and the next estimated
        front is measured, until the front is all measured and within budget (or ``measure_max`` is spent)."""
        seen: set[str] = set()
        pool = []
        for r in rows:  # a candidate drawn twice is measured and listed once
            ident = json.dumps(r["candidate"], sort_keys=True)
            if r["feasible"] and ident not in seen:
                seen.add(ident)
                pool.append(r)
        measured: list[dict[str, Any]] = []
        spent = 0
        while pool and spent < self.s.measure_max:
            todo = [r for r in front(pool, lambda r: cost_key(r, "")) if "m_violations" not in r]
            todo.sort(key=lambda r: -r["accuracy"])
            if not todo:
                break
            for r in todo[: self.s.measure_max - spent]:
                spent += 1
                try:
                    self.measured(board, r)
                except McuflowError as err:  # one candidate the toolchain refuses does not end the plan
                    self.log(f"plan: trial {r['trial']} could not be measured: {err}")
                    r.update({"m_violations": [f"not measured: {err}"], "m_selftest_passed": False})
                    pool.remove(r)
                    measured.append(r)
                    continue
                r["m_violations"] = budget.violations(r["m_model_flash"], r["m_model_ram"], r["m_instructions"],
                                                      r["m_bytes_per_sample"])  # fmt: skip
                if r["m_violations"] or not r["m_selftest_passed"]:
                    pool.remove(r)
                measured.append(r)
            ok = [r for r in measured if not r["m_violations"] and r["m_selftest_passed"]]
            if ok and all("m_accuracy" in r for r in front(pool, lambda r: cost_key(r, ""))):
                break
        ok = [r for r in measured if not r["m_violations"] and r["m_selftest_passed"]]
        for r in measured:
            r["on_front"] = False
        for r in front(ok, lambda r: cost_key(r, "m_")):
            r["on_front"] = True
        return measured

    def choose(self, measured: list[dict[str, Any]]) -> dict[str, Any] | None:
        """The front member with the best measured validation accuracy; ties go to the lower energy."""
        fr = [r for r in measured if r.get("on_front")]
        return max(fr, key=lambda r: (r["m_accuracy"], -r["m_energy_uj"]), default=None)

    def finalize(self, board: Board, chosen: dict[str, Any]) -> dict[str, Any]:
        """Retrain the chosen config for ``final_epochs`` on every training row but the validation ones (the
        search's ``train_limit`` lifted), measure it, and put its checkpoint where `export` and `hil` take it."""
        from mcuflow import atomic
        from mcuflow.plan.measure import measure

        cand = Candidate(**chosen["candidate"])
        full = self.data.full()
        self.log(
            f"plan: training the chosen model for {self.s.final_epochs} epochs on {len(full.train):,} rows: "
            f"{chosen['description']}"
        )
        model, _, key = train_candidate(cand, self.s.recipe, full, self.cache, epochs=self.s.final_epochs)
        sc = score(model, cand, self.data.val)
        dest = self.out / board.name / self.s.mode
        ckpt = self.cache.path(key)
        atomic.write_bytes(dest / "chosen.pt", ckpt.read_bytes())
        got = measure(cand, dest / "chosen.pt", board, full.val, full.train, dest / "chosen-measure",
                      log=lambda _m: None)  # fmt: skip
        m = got.to_json()
        flags = [f"--exit-threshold {cand.exit_threshold:g}"]
        if cand.link_bits != 8:
            flags.append(f"--link-bits {cand.link_bits}")
        if cand.prune_threshold:
            flags.append(f"--prune-threshold {cand.prune_threshold}")
        return {
            "trial": chosen["trial"], "candidate": cand.to_json(), "description": cand.describe(),
            "epochs": self.s.final_epochs, "training_rows": len(full.train), "float_val": sc, "measured": m,
            "energy_uj": EnergyModel.of(board).inference_uj(m["instructions"], m["bytes_per_sample"]),
            "checkpoint": str(dest / "chosen.pt"), "export_flags": " ".join(flags),
            "commands": {
                "export": f"mcuflow export {dest / 'chosen.pt'} -o export --board {board.name} {' '.join(flags)}",
                "hil": f"mcuflow hil {dest / 'chosen.pt'} --board <QEMU board> {' '.join(flags)}",
            },
        }  # fmt: skip

    # -- one board -------------------------------------------------------------------------------------

    def run_board(self, board: Board, budget: Budget, measure_front: bool = True) -> dict[str, Any]:
        from mcuflow.plan.outputs import write_board_outputs

        study = self.search(board, budget, self.s.mode)
        rows = self.rows(study)
        measured = self.measured_front(board, budget, rows) if measure_front else []
        chosen = self.choose(measured)
        final = self.finalize(board, chosen) if chosen is not None else None
        result = {
            "board": board.name, "mode": self.s.mode, "sampler": self.s.sampler, "budget": budget.to_json(),
            "budget_text": budget.describe(), "energy_model": EnergyModel.of(board).describe(),
            "study": {"storage": self.url, "name": self.study_name(board, self.s.mode)},
            "recipe": asdict(self.s.recipe), "data_id": self.data.data_id,
            "validation_samples": len(self.data.val), "training_samples": len(self.data.train),
            "candidates": rows, "measured": measured, "chosen": final,
        }  # fmt: skip
        write_board_outputs(self.out / board.name / self.s.mode, result)
        return result
