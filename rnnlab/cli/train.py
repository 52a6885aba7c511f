"""rnnlab-train: fit an experiment, test its best checkpoint, say where everything went.

    rnnlab-train                                          # sentiment, LSTM, the bundled movie snippets
    rnnlab-train experiment=text_gru trainer=gpu          # any preset in rnnlab/conf/experiment
    rnnlab-train model.hidden_size=64 optim.lr=1e-3 debug=limit
    rnnlab-train ckpt_path=outputs/sentiment_lstm/runs/<time>/checkpoints/last.ckpt   # resume
    rnnlab-train -m model.cell=rnn,gru,lstm model.hidden_size=64,128                  # a sweep
    rnnlab-train -m hparams_search=sentiment_optuna launcher=joblib                   # Bayesian search
    rnnlab-train trainer=ddp trainer.devices=4                                        # DDP, one folder
    rnnlab-train --cfg job                                # print the composed config and stop

Each run's folder holds metrics.csv, curve.png, checkpoints/{best,last}.ckpt, config.yaml, train.log and
result.json (status ok/failed). In a sweep (-m) a trial that crashes or diverges is recorded as failed and
returns NaN to the sweeper; the other trials still run. A single run re-raises the error (exit status 1).
"""

from __future__ import annotations

import logging
import math
import os

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from .. import experiment
from . import schemas

log = logging.getLogger("rnnlab.train")
schemas.register()


@hydra.main(version_base="1.3", config_path="pkg://rnnlab.conf", config_name="train")
def run(cfg: DictConfig) -> float | None:
    """The task function: one run (or one trial of a sweep); returns ``cfg.optimized_metric``."""
    OmegaConf.resolve(cfg)
    multirun = HydraConfig.get().mode == RunMode.MULTIRUN
    try:
        metrics, _ = experiment.train(cfg)
    except Exception as error:
        if not multirun:
            raise
        log.error(
            "trial failed, recorded in %s/result.json: %s: %s",
            cfg.paths.output_dir,
            type(error).__name__,
            error,
        )
        return float("nan")
    _print_summary(cfg, metrics)
    value = metrics.get(cfg.optimized_metric)
    return float(value) if value is not None else None


def _print_summary(cfg: DictConfig, metrics: dict) -> None:
    out = cfg.paths.output_dir
    tested = {k: v for k, v in metrics.items() if k.startswith("test/")}
    lines = ["", f"run folder   {out}"]
    lines += [f"{k:<12} {v:.4f}" for k, v in tested.items()]
    best = metrics.get(cfg.optimized_metric)
    if best is not None and not (isinstance(best, float) and math.isnan(best)):
        lines.append(f"{cfg.optimized_metric}  {best:.4f}")
    lines.append(f"checkpoint   {metrics.get('best_checkpoint') or '(none: fast_dev_run keeps none)'}")
    if os.path.exists(os.path.join(out, "metrics.csv")):
        lines.append(f"log          {os.path.join(out, 'metrics.csv')}")
    if os.path.exists(os.path.join(out, "curve.png")):
        lines.append(f"plot         {os.path.join(out, 'curve.png')}")
    lines.append(f"result       {os.path.join(out, 'result.json')}")
    print("\n".join(lines), flush=True)


def _run_as_ddp_rank() -> bool:
    """A process Lightning started for DDP rank > 0 runs the parent's resolved config, in its folder.

    Lightning re-executes the command line for each extra rank; composing again would make a new dated
    folder per rank (and, after -m, start the whole sweep again). The parent leaves the path of its resolved
    config in RNNLAB_RUN_CONFIG while it fits (see rnnlab.experiment.ranks_share_config).
    """
    config_file = os.environ.get(experiment.RUN_CONFIG_ENV)
    if not config_file or int(os.environ.get("LOCAL_RANK", "0")) == 0:
        return False
    schemas.register()
    experiment.train(OmegaConf.load(config_file))
    return True


def main() -> None:
    if _run_as_ddp_rank():
        return
    run()


if __name__ == "__main__":
    main()
