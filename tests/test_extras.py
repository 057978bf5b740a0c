"""The core install and its extras: what pyproject.toml declares matches xablate/extras.py, and a feature whose extra
is not installed is refused in one line naming the extra, before any run exists (the module is hidden from the
interpreter: `sys.modules[name] = None` makes Python treat it as absent)."""

import subprocess
import sys
import tomllib

import pytest

from helpers import ROOT, clean_env
from xablate.config import compose_job
from xablate.extras import EXTRAS, MissingExtra, require, require_for, require_launcher
from xablate.schema import Job, typed
from xablate.gate import parse_job
from xablate.schema import ConfigError
from xablate.tuning import require_driver

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
HEAVY = ("ray", "jax", "tensorflow-datasets", "jupytext", "notebook", "playwright", "hydra-ray-launcher",
         "hydra-submitit-launcher", "pytest")


def names(requirements):
    return {r.split("[")[0].split(">")[0].split("=")[0].split("<")[0].strip() for r in requirements}


def test_the_core_install_holds_none_of_the_extras():
    assert names(PYPROJECT["dependencies"]).isdisjoint(HEAVY)
    assert {"tensorflow", "keras", "hydra-core", "mlflow", "optuna", "pandas", "seaborn", "scipy",
            "hydra-joblib-launcher"} <= names(PYPROJECT["dependencies"])


def test_each_extra_the_code_names_is_declared_and_dev_holds_them_all():
    extras = PYPROJECT["optional-dependencies"]
    assert set(EXTRAS) <= set(extras)
    assert set(extras) == {"ray", "slurm", "jax", "tfds", "notebooks", "gpu", "server", "dev"}
    (bundle,) = [r for r in extras["dev"] if r.startswith("xablate[")]
    assert set(bundle[len("xablate["):-1].split(",")) == set(extras) - {"gpu", "dev"}
    assert {"pytest", "pytest-xdist", "playwright"} <= names(extras["dev"])


@pytest.mark.parametrize("hidden, extra, call", [
    ("jax", "jax", lambda: require("jax", "backend=jax")),
    ("tensorflow_datasets", "tfds", lambda: require_for(typed(Job, compose_job(["data=tfds"])))),
    ("hydra_plugins.hydra_ray_launcher", "ray", lambda: require_launcher(["hydra/launcher=ray_cluster"])),
    ("submitit", "slurm", lambda: require_launcher(["hydra/launcher=parallel,slurm_local"])),
    ("psycopg", "server", lambda: require_driver("postgresql://xablate@127.0.0.1:5432/xablate")),
])
def test_a_missing_extra_is_one_line_naming_it(monkeypatch, hidden, extra, call):
    call()  # installed here ([dev]): nothing to say
    monkeypatch.setitem(sys.modules, hidden, None)
    with pytest.raises(MissingExtra) as raised:
        call()
    message = str(raised.value)
    assert "\n" not in message
    assert f"[{extra}]" in message and f"pip install -e '.[{extra}]'" in message and hidden in message


def test_a_jobs_validation_refuses_a_backend_whose_extra_is_missing(monkeypatch):
    cfg = compose_job(["backend=jax", "debug=default"])
    parse_job(cfg)
    monkeypatch.setitem(sys.modules, "jax", None)
    with pytest.raises(ConfigError, match=r"^backend=jax needs xablate's optional dependencies \[jax\]"):
        parse_job(cfg)


def test_run_py_names_the_missing_launcher_extra_before_hydra_starts(tmp_path):
    script = ("import runpy, sys; sys.modules['hydra_plugins.hydra_ray_launcher'] = None; "
              f"sys.argv = ['run.py', '-m', 'hydra/launcher=ray_cluster', 'debug=default', "
              f"'tracking.uri=sqlite:///{tmp_path}/mlflow.db']; runpy.run_path('run.py', run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=clean_env(), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "xablate: hydra/launcher=ray_cluster needs xablate's optional dependencies [ray] "
        "(hydra_plugins.hydra_ray_launcher is not installed): pip install -e '.[ray]' (or '.[dev]': all of them)."]
    assert not (tmp_path / "mlflow.db").exists()
