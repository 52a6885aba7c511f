"""rnnlab-bench: the backends timed side by side. Entry point: ``rnnlab.bench.__main__``."""
