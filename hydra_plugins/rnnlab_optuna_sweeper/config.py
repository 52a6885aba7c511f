"""The sweeper's config node, registered as ``hydra/sweeper: rnnlab_optuna``."""

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore


@dataclass
class RnnlabOptunaSweeperConf:
    _target_: str = "hydra_plugins.rnnlab_optuna_sweeper.sweeper.OptunaSweeper"
    # minimize or maximize the value the task function returns (rnnlab-train: cfg.optimized_metric).
    direction: str = "minimize"
    # Total number of trials, and how many are asked at once and handed to the launcher as one batch.
    n_trials: int = 20
    n_jobs: int = 2
    # Any optuna sampler, e.g. {_target_: optuna.samplers.TPESampler, seed: 0, n_startup_trials: 10}.
    sampler: Any = field(default_factory=lambda: {"_target_": "optuna.samplers.TPESampler", "seed": 0})
    # Optuna storage URL (e.g. sqlite:///optuna.db) to keep and resume a study; null: in memory.
    storage: Any = None
    study_name: Any = None
    # The search space in Hydra's sweep syntax: choice(a,b), range(lo,hi,step=s), interval(lo,hi),
    # tag(log, interval(lo,hi)), tag(int, interval(lo,hi)); a plain value fixes the key for every trial.
    params: dict[str, str] = field(default_factory=dict)


ConfigStore.instance().store(
    group="hydra/sweeper", name="rnnlab_optuna", node=RnnlabOptunaSweeperConf, provider="rnnlab"
)
