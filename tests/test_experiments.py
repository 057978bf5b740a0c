"""Each study in experiments/ runs under the debug config with its own sweep."""

import pytest

from helpers import run_py, runs_of, sqlite_uri


@pytest.mark.parametrize("experiment, extra, axis, expected", [
    # fig9 with its own seeds: 2 variants x 3 seeds
    ("fig9_residual", [], "residual", ["True", "False"]),
    # fig10 and the spectrum with one seed (a command-line override beats the sweep's seeds)
    ("fig10_intermediate_act", ["seed=0"], "intermediate_act", ["none", "elu", "relu"]),
    ("spectrum", ["seed=0"], "segments", ["1", "2", "4", "8", "16", "32", "depthwise"]),
])
def test_experiment_runs_its_sweep(tmp_path, experiment, extra, axis, expected):
    uri = sqlite_uri(tmp_path)
    proc = run_py("-m", f"experiment={experiment}", "debug=default", "train.epochs=1", "train.save_model=false",
                  f"tracking.uri={uri}", *extra, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    [parent] = runs_of(uri, experiment, role="sweep")
    children = runs_of(uri, experiment, role="job")
    assert parent.info.status == "FINISHED"
    assert all(c.info.status == "FINISHED" for c in children)
    seeds = ["0"] if extra else ["0", "1", "2"]
    assert sorted((c.data.params[axis], c.data.params["seed"]) for c in children) == sorted(
        (value, seed) for value in expected for seed in seeds)
    assert {c.data.tags["xablate.study"] for c in children} == {experiment}
