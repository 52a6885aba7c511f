"""Package layout only; everything else is in pyproject.toml.

kernels/ and conf/ sit at the top of the repository (one room each) but install as ``rnnlab.kernels``
and ``rnnlab.conf``: a top-level package called ``kernels`` would clash with an existing PyPI package,
and the command-line tools must find their configs from any folder.
"""

from setuptools import find_namespace_packages, find_packages, setup

packages = find_packages(include=["rnnlab", "rnnlab.*"])
packages += ["rnnlab." + p for p in find_packages(include=["kernels", "kernels.*"])]
packages += ["rnnlab.conf"]
# Hydra finds plugins only in the top-level namespace package hydra_plugins: rnnlab's Optuna sweeper lives there.
packages += find_namespace_packages(include=["hydra_plugins.*"])

setup(packages=packages, package_dir={"rnnlab.kernels": "kernels", "rnnlab.conf": "conf"})
