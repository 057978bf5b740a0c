"""The [dev] extra (what CI installs: every extra, pytest, Playwright) brings what the tests use: a missing piece is a packaging break and fails
here by name, rather than turning tests into skips (tests/test_data.py still skips its TFDS test without TFDS)."""

import importlib.util

import pytest


@pytest.mark.parametrize("module, extra", [
    ("jax", "jax"),
    ("jaxlib", "jax"),
    ("tensorflow_datasets", "tfds"),
    ("hydra_plugins.hydra_joblib_launcher", None),  # core
    ("hydra_plugins.hydra_ray_launcher", "ray"),
    ("hydra_plugins.hydra_submitit_launcher", "slurm"),
    ("playwright", "dev"),
    ("jupytext", "notebooks"),
])
def test_the_dev_extra_is_installed(module, extra):
    where = "pip install -e ." if extra is None else f"pip install -e '.[{extra}]' (in [dev])"
    assert importlib.util.find_spec(module) is not None, f"{module} missing: {where}"


def test_tensorflow_datasets_imports():
    import tensorflow_datasets as tfds

    assert "mnist" in tfds.list_builders()  # the catalogue the `tfds` source looks names up in
