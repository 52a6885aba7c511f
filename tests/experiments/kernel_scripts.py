"""Loading the scripts of experiments/kernels/ as modules, for their tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

HERE = Path(__file__).parents[2] / "experiments" / "kernels"


def load(name: str):
    """experiments/kernels/<name>.py as a fresh module. Its folder is on sys.path while it loads: the
    scripts import each other (knob_ab, memory_model) from there."""
    sys.path.insert(0, str(HERE))
    try:
        spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(HERE))
    return module
