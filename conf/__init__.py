"""rnnlab's Hydra config tree, installed as ``rnnlab.conf`` (primary configs: ``train.yaml``).

Groups: data, model, optim, trainer, callbacks, logger, paths, hydra, experiment, hparams_search, launcher,
debug. ``experiment/*.yaml`` are ``_global_`` presets that hold only their deltas from ``train.yaml``.
"""
