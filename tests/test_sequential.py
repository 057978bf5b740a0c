"""Seeds until decided, end to end: a debug study built so that its claim is decided at the first look (a real
learning rate against 1e-7 on the training loss) stops after the first look's seeds, resumes after a kill
without training a finished seed again, and is refused with Hydra's basic sweeper."""

import os
import signal
import subprocess
import sys

import pytest

from helpers import ROOT, clean_env, run_py, runs_of, sqlite_uri

pytestmark = pytest.mark.slow  # trains through run.py

ANALYSIS = ("analysis={axes: [optim.learning_rate], baseline: {optim.learning_rate: 1.0e-7}, claims: [{claim: "
            "'a real learning rate trains', metric: final_loss, better: 0.01, than: [1.0e-7]}], sequential: "
            "{looks: [3, 5, 8], spending: pocock}}")


def command(uri):
    return ["-m", "hydra/sweeper=staged", "study=seq", "debug=default", "train.save_model=false",
            "optim.learning_rate=0.01,1e-7", ANALYSIS, f"tracking.uri={uri}"]


def test_a_claim_decided_at_the_first_look_stops_the_seeds_and_a_killed_sweep_resumes(tmp_path):
    uri = sqlite_uri(tmp_path)
    # killed while the first look's fifth job trains
    proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), *command(uri)], cwd=tmp_path, env=clean_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    for line in proc.stdout:
        if "(lr=1e-07 · seed 1)" in line:  # its MLflow run exists: kill the whole sweep now
            os.killpg(proc.pid, signal.SIGKILL)
            break
    proc.wait(timeout=120)
    before = {r.info.run_id: r.info.status for r in runs_of(uri, "seq", role="job")}
    assert len(before) == 5 and list(before.values()).count("FINISHED") == 4
    done = run_py(*command(uri), cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout + done.stderr
    assert "sequential look 1 of 3: seeds up to 3 per variant (6 job(s))" in out
    assert "every claim decided at look 1 (n=3): no further seeds" in out
    assert "look 2 of 3" not in out
    after = runs_of(uri, "seq", role="job")
    assert len(after) == 6 and all(r.info.status == "FINISHED" for r in after)  # the killed run resumed, not redone
    assert {r.info.run_id for r in after} >= set(before)
    assert sorted(int(r.data.params["seed"]) for r in after) == [0, 0, 1, 1, 2, 2]
    # status understands it: the grid reaches the look that decided every claim, not the last look
    xablate = os.path.join(os.path.dirname(sys.executable), "xablate")
    status = subprocess.run([xablate, "status", *command(uri)[1:]], cwd=tmp_path, env=clean_env(),
                            capture_output=True, text=True, timeout=300)
    assert status.returncode == 0, status.stdout + status.stderr
    assert "6 cells" in status.stdout and "sequential: every claim decided by n=3 (look 1 of 3)" in status.stdout
    again = run_py(*command(uri), cwd=tmp_path, timeout=600)
    assert again.returncode == 0 and (again.stdout + again.stderr).count("skipping") == 6
    assert len(runs_of(uri, "seq", role="job")) == 6
    # the plan is the one recorded before the runs: looks edited afterwards do not move the boundaries
    parents = runs_of(uri, "seq", role="sweep")
    assert {p.data.tags["xablate.sequential"] for p in parents} == {
        '{"looks": [3, 5, 8], "spending": "pocock", "alpha": 0.05}'}
    edited = [*command(uri)[:-2], ANALYSIS.replace("looks: [3, 5, 8]", "looks: [4, 6, 8]"), command(uri)[-1]]
    moved = run_py(*edited, cwd=tmp_path, timeout=600)
    out = moved.stdout + moved.stderr
    assert moved.returncode == 0, out[-3000:]
    assert "the study file now says looks [4, 6, 8]" in out and "its looks [3, 5, 8] are used" in out
    assert "every claim decided at look 1 (n=3)" in out and out.count("skipping") == 6


def test_a_sequential_study_needs_the_staged_sweeper(tmp_path):
    uri = sqlite_uri(tmp_path)
    proc = run_py(*[a for a in command(uri) if a != "hydra/sweeper=staged"], cwd=tmp_path, timeout=300)
    assert proc.returncode != 0
    assert "allowed: the staged sweeper, which adds seeds look by look" in proc.stderr
    assert not (tmp_path / "mlflow.db").exists()


def test_a_look_is_reached_only_when_every_comparison_has_its_seeds(tmp_path):
    """Two variants at 10 seeds, the third at none: the first look (n=10) is still to be read, so status asks for
    10 seeds, not the second look's 15 (it used to take the most seeds any comparison had)."""
    from made_up_store import log_study
    from xablate.analysis.status import _sequential_progress
    from xablate.studies import parse_study

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    study = parse_study("looks", {"analysis": {
        "axes": ["intermediate_act"], "baseline": {"intermediate_act": "none"},
        "sequential": {"looks": [10, 15, 20], "spending": "pocock"},
        "claims": [{"claim": "none beats elu and relu", "metric": "test_accuracy", "better": "none",
                    "than": ["elu", "relu"]}]}})
    close = [0.85 + 0.001 * (i % 3) for i in range(10)]
    log_study(uri, "looks", {"none": close, "elu": [v - 0.0005 for v in close]})
    needed, note = _sequential_progress(uri, study)
    assert needed == 10 and "undecided at n=0; next look at n=10" in note, note
