"""Which code a run ran: the commit, and whether the checkout was clean, with the changes' hash (real git
repositories written by the test)."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from xablate.analysis.registration import edited_note
from xablate.tracking.provenance import MAX_DIFF_BYTES, SourceState, diff_artifact_text, source_state


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path) -> Path:
    root = tmp_path / "checkout"
    root.mkdir()
    git(root, "init", "-q")
    git(root, "config", "user.email", "t@example.org")
    git(root, "config", "user.name", "t")
    (root / "model.py").write_text("width = 1\n")
    (root / ".gitignore").write_text("outputs/\n")
    git(root, "add", ".")
    git(root, "commit", "-qm", "first")
    return root


def test_a_clean_checkout_records_its_commit_and_nothing_else(repo):
    state = source_state(repo)
    assert state == SourceState(git(repo, "rev-parse", "HEAD").strip(), True)
    assert state.tags() == {"mlflow.source.git.commit": state.commit, "xablate.source.clean": "true"}
    (repo / "outputs").mkdir()
    (repo / "outputs" / "run.log").write_text("ignored by git: not a change to the code")
    assert source_state(repo).clean is True
    (repo / "results").mkdir()
    (repo / "results" / "mlflow.db").write_bytes(b"\0" * 100)  # the committed store, changed by every run into it
    (repo / "NOTES.md").write_text("prose")
    assert source_state(repo).clean is True  # outputs and prose are not the code that ran
    git(repo, "add", "results")
    git(repo, "commit", "-qm", "the store")
    (repo / "results" / "mlflow.db").write_bytes(b"\1" * 100)  # tracked, and changed: still not code
    assert source_state(repo).clean is True


def test_an_edited_checkout_records_the_hash_of_its_changes_tracked_and_untracked(repo):
    (repo / "model.py").write_text("width = 2\n")
    edited = source_state(repo)
    assert edited.clean is False and edited.diff == git(repo, "diff", "HEAD", "--binary")
    assert edited.diff_sha256 == hashlib.sha256(edited.diff.encode()).hexdigest()
    assert edited.tags()["xablate.source.diff_sha256"] == edited.diff_sha256
    git(repo, "add", "model.py")  # staged or not, the same change
    assert source_state(repo).diff_sha256 == edited.diff_sha256
    (repo / "helper.py").write_text("x = 1\n")  # an untracked file the run may import
    with_new = source_state(repo)
    assert with_new.diff.endswith(f"untracked helper.py sha256 {hashlib.sha256(b'x = 1' + bytes([10])).hexdigest()}\n")
    assert with_new.diff_sha256 != edited.diff_sha256


def test_outside_git_nothing_is_claimed(tmp_path):
    assert source_state(tmp_path) == SourceState(None, None) and SourceState(None, None).tags() == {}


def test_a_large_diff_is_kept_cut_and_says_so():
    state = SourceState("c", False, "+" * (MAX_DIFF_BYTES + 10), "abc")
    text = diff_artifact_text(state)
    assert text.startswith("+" * MAX_DIFF_BYTES) and f"[cut at {MAX_DIFF_BYTES} of {MAX_DIFF_BYTES + 10} bytes; " \
        "sha256 of all: abc]" in text


def test_the_registration_note_counts_runs_from_an_edited_checkout():
    assert edited_note(pd.DataFrame({"source_clean": [True, True]})) == ""
    assert edited_note(pd.DataFrame({"source_clean": [True, False, None]})) == \
        "; 1 of 3 runs from an edited checkout; 1 of 3 runs from before checkouts were recorded"
    assert edited_note(pd.DataFrame({"source_clean": [None, None]})) == ""  # the committed runs: not claimed


@pytest.mark.slow
def test_a_run_from_an_edited_checkout_carries_the_hash_and_the_diff(repo, tmp_path, monkeypatch):
    from mlflow import MlflowClient

    from xablate.analysis.store import runs_frame
    from xablate.config import compose_job
    from xablate.training import trainer
    from xablate.training.trainer import RunContext

    (repo / "model.py").write_text("width = 3\n")
    monkeypatch.setattr(trainer, "source_state", lambda: source_state(repo))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = compose_job(["debug=default", "train.epochs=1", "train.save_model=false", f"tracking.uri={uri}"])
    result = trainer.train(cfg, RunContext(output_dir=tmp_path / "out"))
    run = MlflowClient(uri).get_run(result.run_id)
    expected = source_state(repo)
    assert run.data.tags["xablate.source.clean"] == "false"
    assert run.data.tags["xablate.source.diff_sha256"] == expected.diff_sha256
    assert run.data.tags["mlflow.source.git.commit"] == expected.commit
    kept = Path(MlflowClient(uri).download_artifacts(result.run_id, "source/changes.diff", str(tmp_path / "dl")))
    assert kept.read_text() == expected.diff
    assert runs_frame(uri)["source_clean"].tolist() == [False]
