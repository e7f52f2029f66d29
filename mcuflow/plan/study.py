"""The search on Optuna (an existing engine, not a home-made scheduler): a study in an RDB storage, SQLite
in the output directory by default (``sqlite:///plan/study.db``) or any SQLAlchemy URL shared by several
machines (``postgresql://...``), each machine running the same ``mcuflow plan`` command on it.

Why Optuna: its define-by-run trials fit a conditional space (depth, split, exits), it has the plain
random sampler and an evolutionary one (NSGA-II, multi-objective with constraints), and the RDB storage
makes a search resumable and shareable with no server of its own. Trials record a heartbeat; one whose
process died is failed after the grace period and retried with the same parameters.

A resumed study keeps every finished trial and draws the next ones with a sampler seeded by the seed and
the number of trials already in the study, so a rerun continues rather than repeating the first draws.
"""

from __future__ import annotations

from typing import Any

SAMPLERS = ("random", "evolutionary")
DIRECTIONS = ("maximize", "minimize")  # validation accuracy, energy per inference
HEARTBEAT_S = 60
GRACE_S = 300


def _optuna():
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def storage(url: str):
    _optuna()
    from optuna.storages import RDBStorage

    retry: dict = {}
    try:  # optuna >= 4.9 names it so; older ones take the same callback as failed_trial_callback
        from optuna.storages import RetryHeartbeatStaleTrialCallback

        retry["heartbeat_stale_trial_callback"] = RetryHeartbeatStaleTrialCallback(max_retry=1)
    except ImportError:
        from optuna.storages import RetryFailedTrialCallback

        retry["failed_trial_callback"] = RetryFailedTrialCallback(max_retry=1)
    if url.startswith("sqlite:///"):
        from pathlib import Path

        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    return RDBStorage(
        url,
        heartbeat_interval=HEARTBEAT_S,
        grace_period=GRACE_S,
        engine_kwargs={"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None,
        **retry,
    )


def _constraints(trial) -> list[float]:
    return [0.0 if trial.user_attrs.get("feasible", False) else 1.0]


def set_feasibility(trial, feasible: bool) -> None:
    """Tell a constrained sampler (NSGA-II) whether the trial is within budget."""
    if hasattr(trial, "set_constraint"):
        trial.set_constraint("over_budget", 0.0 if feasible else 1.0)


def sampler(name: str, seed: int):
    optuna = _optuna()
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "evolutionary":  # optuna >= 5 reads the trials' own constraints (set_feasibility)
        extra = {} if hasattr(optuna.trial.Trial, "set_constraint") else {"constraints_func": _constraints}
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=16, **extra)
    raise ValueError(f"unknown sampler {name!r}")


def open_study(url: str, name: str, sampler_name: str, seed: int, attrs: dict[str, Any]):
    """Create or resume the study ``name``; a resumed one must have been started with the same settings."""
    import json

    from mcuflow.errors import ConfigError

    optuna = _optuna()
    attrs = json.loads(json.dumps(attrs))  # as the storage gives it back (tuples become lists)
    st = storage(url)
    study = optuna.create_study(
        storage=st, study_name=name, directions=list(DIRECTIONS), sampler=sampler(sampler_name, seed),
        load_if_exists=True,
    )  # fmt: skip
    old = study.user_attrs.get("settings")
    if old is None:
        study.set_user_attr("settings", attrs)
    elif old != attrs:
        diff = sorted(k for k in set(old) | set(attrs) if old.get(k) != attrs.get(k))
        raise ConfigError(
            f"study {name!r} in {url} was started with other settings ({', '.join(diff)}); give another --study "
            f"or the same options"
        )
    done = len(study.get_trials(deepcopy=False))
    study.sampler = sampler(sampler_name, seed + done)  # a resumed study draws on, it does not repeat
    return study


def completed(study) -> list:
    from optuna.trial import TrialState

    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
