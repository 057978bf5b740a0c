"""A tie for a variant's best tuning score is broken by more seeds, not by the order the values were listed.

The made-up tie: a key that cannot change a result (data.cache: auto or memory — the run identity leaves it out,
so the second value's tuning run is the first's) ties exactly; the tie-break trains each tied value on the next
replicates, which tie again, and the record says the tie stands."""

import json

import pytest

from helpers import run_py, runs_of, sqlite_uri
from xablate.staging import tie_break_seeds, tied_best

pytestmark = pytest.mark.slow  # starts run.py


def test_ties_are_the_settings_at_the_best_finite_mean():
    assert tied_best({"a": 0.8, "b": 0.85, "c": 0.85, "d": float("nan")}) == ["b", "c"]
    assert tied_best({"a": 0.8, "b": 0.85}) == ["b"]
    assert tied_best({"a": float("nan")}) == []
    jobs = [[f"seed={i}"] for i in range(5)]
    assert tie_break_seeds(jobs, 2) == [["seed=2"], ["seed=3"]]  # the replicates after the tuning's own
    assert tie_break_seeds(jobs[:2], 2) == []


EXPERIMENT = """\
# @package _global_
defaults:
  - override /hydra/sweeper: staged
study: tie
hydra:
  sweeper:
    params:
      seed: 0,1
    tune:
      key: data.cache
      values: [auto, memory]
"""


def test_a_tie_is_broken_by_more_seeds_or_said_to_stand(tmp_path):
    uri = sqlite_uri(tmp_path)
    (tmp_path / "extra" / "experiment").mkdir(parents=True)
    (tmp_path / "extra" / "experiment" / "tie.yaml").write_text(EXPERIMENT)
    proc = run_py("-m", f"--config-dir={tmp_path / 'extra'}", "experiment=tie", "debug=default", "train.epochs=1",
                  "train.save_model=false", f"tracking.uri={uri}", cwd=tmp_path, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "settings ['auto', 'memory'] tie; breaking it with 1 more seed(s) each" in out
    [tuning] = list((tmp_path / "multirun").rglob("tuning.json"))
    [variant] = json.loads(tuning.read_text())["variants"]
    assert variant["tie_break"]["tied"] == ["auto", "memory"] and variant["tie_break"]["seeds"] == 1
    assert variant["tie_break"]["broken"] is False  # the same run each time: the tie stands, and says so
    tune_runs = [r for r in runs_of(uri, "tie", role="job") if "tune" in r.data.tags.get("xablate.stage", "")]
    assert sorted(int(r.data.params["seed"]) for r in tune_runs) == [0, 1]  # seed 1: the tie-break's replicate
