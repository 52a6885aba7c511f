"""Ask Optuna for a batch of trials, launch them through the configured Hydra launcher, tell the results.

Why not hydra-optuna-sweeper: its last release (1.3.0) pins optuna < 3. This sweeper uses only Optuna's
stable ask/tell interface, so it works with current Optuna (>= 4), and any Hydra launcher (basic,
joblib, submitit) runs the trials. A trial whose job raised, or that returned None or NaN (rnnlab-train
returns NaN for a trial that crashed or diverged), is told to Optuna as FAIL: the study goes on, and
the sampler does not learn from a made-up value.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from .config import RnnlabOptunaSweeperConf  # noqa: F401  (registers the config node)

log = logging.getLogger(__name__)
DIRECTIONS = ("minimize", "maximize")


def distribution(override: Override) -> optuna.distributions.BaseDistribution:
    """The Optuna distribution for one sweep override (choice, range or interval, with log/int tags)."""
    value = override.value()
    if isinstance(value, ChoiceSweep):
        return optuna.distributions.CategoricalDistribution(
            list(override.sweep_iterator(transformer=lambda x: x))
        )
    if isinstance(value, RangeSweep):
        if all(float(v).is_integer() for v in (value.start, value.stop, value.step)):
            return optuna.distributions.IntDistribution(
                int(value.start), int(value.stop) - 1, step=int(value.step)
            )
        return optuna.distributions.CategoricalDistribution(
            list(override.sweep_iterator(transformer=lambda x: x))
        )
    if isinstance(value, IntervalSweep):
        log_scale = "log" in value.tags
        if "int" in value.tags or (isinstance(value.start, int) and isinstance(value.end, int)):
            return optuna.distributions.IntDistribution(int(value.start), int(value.end), log=log_scale)
        return optuna.distributions.FloatDistribution(float(value.start), float(value.end), log=log_scale)
    raise ValueError(f"{override.input_line}: not a sweep (choice, range or interval)")


def override_string(key: str, value: Any) -> str:
    """``key=value`` in Hydra's override grammar; strings are quoted so any value survives the parser."""
    if isinstance(value, str):
        return f"{key}='{value}'" if "'" not in value else f'{key}="{value}"'
    if value is None:
        return f"{key}=null"
    return f"{key}={value}"


class OptunaSweeper(Sweeper):
    def __init__(
        self,
        direction: str = "minimize",
        n_trials: int = 20,
        n_jobs: int = 2,
        sampler: Any = None,
        storage: Any = None,
        study_name: Any = None,
        params: dict | None = None,
    ) -> None:
        if direction not in DIRECTIONS:
            raise ValueError(f"hydra.sweeper.direction must be one of {DIRECTIONS}, got {direction!r}")
        if n_trials < 1 or n_jobs < 1:
            raise ValueError("hydra.sweeper.n_trials and hydra.sweeper.n_jobs must be at least 1")
        self.direction, self.n_trials, self.n_jobs = direction, n_trials, n_jobs
        self.sampler_conf, self.storage, self.study_name = sampler, storage, study_name
        self.params = dict(params or {})
        self.config: DictConfig | None = None
        self.launcher = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def split(self, arguments: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
        """(search space, fixed overrides) from the config's params and the command line (which wins)."""
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        lines = {**{k: f"{k}={v}" for k, v in self.params.items()}}
        for override in parser.parse_overrides(list(arguments)):
            lines[override.get_key_element()] = override.input_line
        space, fixed = {}, []
        for override in parser.parse_overrides(list(lines.values())):
            if override.is_sweep_override():
                space[override.get_key_element()] = distribution(override)
            else:
                fixed.append(override.input_line)
        if not space:
            raise ValueError("the Optuna sweeper has nothing to search: give hydra.sweeper.params a sweep")
        return space, fixed

    def sweep(self, arguments: list[str]) -> list:
        assert self.config is not None and self.launcher is not None
        space, fixed = self.split(arguments)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        sampler = self.sampler_conf  # Hydra has instantiated it already (recursive instantiation)
        if sampler is not None and not isinstance(sampler, optuna.samplers.BaseSampler):
            sampler = instantiate(sampler)
        study = optuna.create_study(
            study_name=self.study_name,
            storage=self.storage,
            sampler=sampler,
            direction=self.direction,
            load_if_exists=True,
        )
        log.info(
            "Optuna %s, %s: %d trials, %d at a time",
            optuna.__version__,
            self.direction,
            self.n_trials,
            self.n_jobs,
        )
        log.info("search space: %s", {k: repr(v) for k, v in space.items()})
        returns, job_idx = [], 0
        while job_idx < self.n_trials:
            trials = [study.ask(space) for _ in range(min(self.n_jobs, self.n_trials - job_idx))]
            batch = [
                tuple(fixed + [override_string(key, trial.params[key]) for key in space]) for trial in trials
            ]
            self.validate_batch_is_legal(batch)
            results = self.launcher.launch(batch, initial_job_idx=job_idx)
            for trial, result in zip(trials, results, strict=True):
                value = self._value(result)
                if value is None:
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                else:
                    study.tell(trial, value)
            job_idx += len(batch)
            returns.append(results)
        self._save(study, sweep_dir)
        return returns

    @staticmethod
    def _value(result) -> float | None:
        try:
            value = result.return_value
        except Exception as error:  # the job itself raised: a failed trial, not a failed study
            log.warning(
                "trial %s failed: %s", result.hydra_cfg.hydra.job.num if result.hydra_cfg else "?", error
            )
            return None
        if value is None:
            return None
        value = float(value)
        return value if math.isfinite(value) else None

    def _save(self, study: optuna.Study, sweep_dir: Path) -> None:
        done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        summary: dict[str, Any] = {
            "optuna": optuna.__version__,
            "direction": self.direction,
            "trials": len(study.trials),
            "failed": sum(t.state == optuna.trial.TrialState.FAIL for t in study.trials),
        }
        if done:
            summary["best_value"] = study.best_value
            summary["best_params"] = study.best_params
            log.info("best value %s with %s", study.best_value, study.best_params)
        else:
            log.warning("no trial finished: nothing to report as best")
        OmegaConf.save(OmegaConf.create(summary), sweep_dir / "optimization_results.yaml")
