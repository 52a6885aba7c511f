"""Command-line tools: rnnlab-train, -eval, -sample, -report (one module each, with a main()).

Importing this package registers rnnlab's Optuna sweeper with Hydra. Hydra finds plugins by scanning the
``hydra_plugins`` namespace on disk, which works for a regular install but not through the import hook of an
editable (``pip install -e``) one; ``Plugins.register`` is Hydra's documented way to add one by hand, and
importing the plugin stores its ``hydra/sweeper/rnnlab_optuna`` config node.
"""

from hydra.core.plugins import Plugins

from hydra_plugins.rnnlab_optuna_sweeper.sweeper import OptunaSweeper

Plugins.instance().register(OptunaSweeper)
