"""Params and tags hold no absolute path of the machine that ran them (xablate.paths.portable)."""

import pytest

from xablate.paths import portable, portable_traceback, project_root


@pytest.mark.parametrize("recorded, portable_text", [
    ("sqlite:///{root}/results/store/mlflow.db", "sqlite:///results/store/mlflow.db"),
    ("tracking.uri=sqlite:////scratch/me/x/mlflow.db seed=0,1", "tracking.uri=sqlite:///.../mlflow.db seed=0,1"),
    ("data.path=/scratch/me/flowers debug=default", "data.path=.../flowers debug=default"),
    ("tracking.uri=sqlite\\:////scratch/me/x/mlflow.db", "tracking.uri=sqlite\\:///.../mlflow.db"),  # Hydra's escape
    ("{root}/multirun/default/2026-12-02", "multirun/default/2026-12-02"),
    ("{root}", "."),
    ("relative/path seed=1", "relative/path seed=1"),
    ("sqlite:///mlflow.db", "sqlite:///mlflow.db"),
    ("http://mlflow.example:5000/api", "http://mlflow.example:5000/api"),
])
def test_paths_inside_the_project_are_relative_others_named_by_their_last_part(recorded, portable_text):
    assert portable(recorded.format(root=project_root())) == portable_text


def test_a_traceback_artifact_names_its_frames_by_project_or_library_path():
    root = project_root()
    text = (f'Traceback (most recent call last):\n  File "{root}/run.py", line 52, in main\n'
            f'  File "{root}/.venv/lib/python3.11/site-packages/mlflow/client.py", line 9, in log_batch\n'
            '  File "/usr/lib/python3.11/contextlib.py", line 3, in __exit__\n'
            '  File "/opt/tool/plugin.py", line 1, in <module>\n'
            '  File "<frozen runpy>", line 88, in _run_code\n'
            f"OSError: cannot write {root}/results/x.csv\n")
    assert portable_traceback(text) == (
        'Traceback (most recent call last):\n  File "run.py", line 52, in main\n'
        '  File ".../site-packages/mlflow/client.py", line 9, in log_batch\n'
        '  File ".../lib/python3.11/contextlib.py", line 3, in __exit__\n'
        '  File ".../plugin.py", line 1, in <module>\n'
        '  File "<frozen runpy>", line 88, in _run_code\n'
        "OSError: cannot write results/x.csv\n")


def test_the_config_artifact_records_values_as_the_params_do():
    """config.yaml (nested) and the params (flattened) hold the same recorded values: a non-semantic path made
    portable, a result-changing value as configured."""
    from xablate.config import flatten
    from xablate.tracking.identity import as_recorded, recorded_config

    root = project_root()
    cfg = {"tracking": {"uri": f"sqlite:///{root}/results/store/mlflow.db"}, "seed": 3,
           "model": {"name": "/not/a/path/but/semantic"}, "train": {"checkpoint_dir": "/scratch/me/ckpt"}}
    recorded = recorded_config(cfg)
    assert recorded["tracking"]["uri"] == "sqlite:///results/store/mlflow.db"
    assert recorded["train"]["checkpoint_dir"] == ".../ckpt" and recorded["seed"] == 3
    assert recorded["model"]["name"] == "/not/a/path/but/semantic"  # semantic: recorded as configured
    assert flatten(recorded) == {k: as_recorded(k, v) for k, v in flatten(cfg).items()}
