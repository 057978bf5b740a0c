"""Each study in experiments/ expands to its own grid (as Hydra's sweeper would), and one runs end to end."""

import json

import pytest

from helpers import run_py, runs_of, sqlite_uri
from xablate.analysis.status import grid_jobs
from xablate.analysis.store import runs_frame

SEEDS = [str(seed) for seed in range(10)]  # the studies declare ten seeds per variant


@pytest.mark.parametrize("experiment, axis, values", [
    ("fig9_residual", "residual", ["True", "False"]),
    ("fig10_intermediate_act", "intermediate_act", ["none", "elu", "relu"]),
    ("spectrum", "segments", ["1", "2", "4", "8", "16", "32", "depthwise"]),
])
def test_experiment_expands_to_its_grid(experiment, axis, values):
    base, keys, jobs = grid_jobs([f"experiment={experiment}", "debug=default"])
    assert keys == [axis, "seed"]
    assert [dict(o.split("=", 1) for o in job) for job in jobs] == [
        {axis: value, "seed": seed, "experiment": experiment, "debug": "default"}
        for value in values for seed in SEEDS]
    # a command-line value beats the experiment's sweep of that key
    _, keys, jobs = grid_jobs([f"experiment={experiment}", "seed=0"])
    assert keys == [axis] and len(jobs) == len(values)


@pytest.mark.slow
def test_an_experiment_runs_its_sweep_end_to_end(tmp_path):
    uri = sqlite_uri(tmp_path)
    proc = run_py("-m", "experiment=fig9_residual", "debug=default", "seed=1", "train.epochs=1",
                  "train.save_model=false", f"tracking.uri={uri}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    [parent] = runs_of(uri, "fig9_residual", role="sweep")
    children = runs_of(uri, "fig9_residual", role="job")
    assert parent.info.status == "FINISHED"
    assert all(c.info.status == "FINISHED" for c in children)
    assert sorted((c.data.params["residual"], c.data.params["seed"]) for c in children) == [
        ("False", "1"), ("True", "1")]  # the experiment's residual axis, the command line's seed
    assert {c.data.tags["xablate.study"] for c in children} == {"fig9_residual"}
    # the claims as they stood before the runs, on the parent: the verdict calls them pre-registered
    from xablate.analysis.registration import registrations
    from xablate.studies import claim_hash, load_study

    study = load_study("fig9_residual")
    recorded = json.loads(parent.data.tags["xablate.claims"])
    assert [r["hash"] for r in recorded] == [claim_hash(c) for c in study.claims]
    assert recorded[0]["claim"] == study.claims[0].text and recorded[0]["kind"] == "better"
    labels = registrations(uri, "fig9_residual", study.claims, runs_frame(uri, study="fig9_residual"))
    assert list(labels.values())[0].startswith("pre-registered (")
