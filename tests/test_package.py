"""``import rnnlab``: the layers at once, the rest of the package on first use, as the README writes it."""

import subprocess
import sys


def _run(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return result.stdout.strip()


def test_the_layers_need_neither_lightning_nor_hydra():
    code = "import sys, rnnlab; print(sorted(m for m in ('lightning', 'hydra') if m in sys.modules))"
    assert _run(code) == "[]"


def test_subpackages_load_on_first_use_after_a_bare_import():
    """The README's calls, typed after ``import rnnlab`` alone."""
    code = (
        "import rnnlab\n"
        "print(callable(rnnlab.tasks.sentiment.fit), callable(rnnlab.tasks.translation.fit),\n"
        "      rnnlab.models.SentimentClassifier.__name__, rnnlab.data.AddingDataModule.__name__,\n"
        "      rnnlab.tasks.AddingTask.__name__, callable(rnnlab.compose))"
    )
    assert _run(code) == "True True SentimentClassifier AddingDataModule AddingTask True"


def test_an_unknown_attribute_is_still_an_attribute_error():
    code = "import rnnlab\ntry:\n    rnnlab.no_such_thing\nexcept AttributeError as e:\n    print(e)"
    assert _run(code) == "module 'rnnlab' has no attribute 'no_such_thing'"
