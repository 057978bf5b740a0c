"""Params and tags hold no absolute path of the machine that ran them (xablate.paths.portable)."""

import pytest

from xablate.paths import portable, project_root


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
