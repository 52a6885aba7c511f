"""rnnlab's Hydra sweeper for Bayesian hyper-parameter search with Optuna >= 4 (ask/tell).

Selected with ``hydra/sweeper=rnnlab_optuna`` (the ``hparams_search`` presets do it). Hydra finds it by
scanning the ``hydra_plugins`` namespace package, which is why it lives here and not inside ``rnnlab``.
"""
