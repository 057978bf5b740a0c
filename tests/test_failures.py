"""Failure by cause: divergence is a recorded result, an error is FAILED with its traceback, an OOM retries
with half the batch; `xablate status` reports a store holding all of them cell by cell."""

import pytest
import tensorflow as tf
from mlflow import MlflowClient

from helpers import run_py, runs_of
from xablate.config import compose_job
from xablate.analysis import runs_frame, selected_runs
from xablate.analysis.status import study_status
from xablate.analysis.tables import variant_table
from xablate.cli import main as xablate_main
from xablate.training.trainer import RunContext, train

pytestmark = pytest.mark.slow  # starts run.py or trains for many seconds: the full suite's tier

GRID = ["experiment=fig9_residual", "debug=default", "seed=0"]
LR_SWEEP = "optim.learning_rate=0.001,1e9"


def train_in_process(tmp_path, overrides, callbacks=()):
    cfg = compose_job(overrides)
    return train(cfg,
                 RunContext(output_dir=tmp_path / "job", callbacks=list(callbacks)))


def raising_callback(error):
    import keras

    class Raise(keras.callbacks.Callback):
        calls = 0

        def on_train_batch_begin(self, batch, logs=None):
            Raise.calls += 1
            if Raise.calls == 1:
                raise error

    return Raise()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A fig9 store: residual=true swept over a sane and a huge learning rate (done, diverged), then
    residual=false at the sane rate failing on an error (failed); residual=false at the huge rate is missing."""
    root = tmp_path_factory.mktemp("failures")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    sweep = run_py("-m", *GRID, "residual=true", LR_SWEEP, f"tracking.uri={uri}", cwd=root, timeout=600)
    with pytest.raises(RuntimeError, match="disk on fire"):
        train_in_process(root, [*GRID, "residual=false", "optim.learning_rate=0.001", f"tracking.uri={uri}"],
                         [raising_callback(RuntimeError("disk on fire"))])
    return root, uri, sweep


def test_a_huge_learning_rate_diverges_and_the_other_variant_finishes(store):
    root, uri, sweep = store
    assert sweep.returncode != 0  # a failed job makes the multirun fail ...
    sane, huge = runs_of(uri, "fig9_residual", role="job")[:2]
    assert sane.info.status == "FINISHED"  # ... but not the other jobs
    assert sane.data.params["optim.learning_rate"] == "0.001"
    assert huge.info.status == "FAILED"
    assert huge.data.tags["xablate.outcome"] == "diverged"
    assert huge.data.tags["xablate.diverged_epoch"] == "0"
    # batch 0's loss is the reference; the update with lr=1e9 blows up the next one
    assert huge.data.tags["xablate.diverged_batch"] == "1"
    assert "training diverged at epoch 0, batch 1" in huge.data.tags["xablate.error"]
    assert "DIVERGED" in sweep.stdout and "1 of 2 job(s) did not finish" in sweep.stderr
    assert runs_of(uri, "fig9_residual", role="sweep")[0].info.status == "FAILED"
    frame = runs_frame(uri, study="fig9_residual").set_index("run_id")
    assert frame.loc[huge.info.run_id, "outcome"] == "diverged"  # a result, not missing data
    assert frame.loc[sane.info.run_id, "outcome"] == "finished"
    # the study's main configuration (learning rate 0.001; the diverged run is another configuration): the
    # failed run counts as failed, not as a finished seed (diverged seeds: tests/test_verdicts.py)
    table = variant_table(selected_runs(uri, "fig9_residual")).set_index("variant")
    assert table.loc["residual=True", ["seeds", "diverged", "failed"]].tolist() == [1, 0, 0]
    assert table.loc["residual=False", ["seeds", "diverged", "failed"]].tolist() == [0, 0, 1]


def test_an_error_is_failed_with_its_traceback(store):
    root, uri, _ = store
    failed = runs_of(uri, "fig9_residual", role="job")[2]
    assert failed.info.status == "FAILED"
    assert failed.data.tags["xablate.error"] == "RuntimeError: disk on fire"
    assert "xablate.outcome" not in failed.data.tags
    artifacts = [a.path for a in MlflowClient(uri).list_artifacts(failed.info.run_id)]
    assert "traceback.txt" in artifacts


def test_status_reports_done_diverged_failed_and_missing_cells(store, capsys):
    root, uri, _ = store
    arguments = [*GRID, LR_SWEEP, f"tracking.uri={uri}"]
    status = study_status(arguments)
    cells = {(r.residual, r["optim.learning_rate"]): r.state for _, r in status.cells.iterrows()}
    assert cells == {("True", "0.001"): "done", ("True", "1000000000.0"): "diverged",
                     ("False", "0.001"): "failed", ("False", "1000000000.0"): "missing"}
    assert status.counts() == {"done": 1, "diverged": 1, "running": 0, "failed": 1, "missing": 1}
    assert status.commands() == [f"python run.py -m experiment=fig9_residual debug=default seed=0 "
                                 f"tracking.uri={uri} residual=False optim.learning_rate=0.001,1000000000.0"]
    assert xablate_main(["status", "--study", "fig9_residual", "debug=default", "seed=0", LR_SWEEP,
                         f"tracking.uri={uri}"]) == 1  # incomplete
    out = capsys.readouterr().out
    assert "done: 1  diverged: 1  running: 0  failed: 1  missing: 1" in out
    assert "disk on fire" in out


def batch_counter():
    """Per fit attempt: the batches seen in each epoch, the optimizer's accumulation steps and the updates it
    made, read from the model actually trained."""
    import keras

    class Count(keras.callbacks.Callback):
        attempts = []

        def on_train_begin(self, logs=None):
            self.attempts.append({"accumulation": self.model.optimizer.gradient_accumulation_steps, "batches": {}})

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            batches = self.attempts[-1]["batches"]
            batches[self.epoch] = batches.get(self.epoch, 0) + 1

        def on_train_end(self, logs=None):
            self.attempts[-1]["updates"] = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))

    return Count()


def test_out_of_memory_retries_once_with_half_the_batch(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    oom = tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor with shape [32,16,16,64]")
    counter = batch_counter()
    result = train_in_process(tmp_path, ["debug=default", "train.batch_size=32", f"tracking.uri={uri}"], [raising_callback(oom), counter])
    run = MlflowClient(uri).get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["xablate.oom_retry"] == ("out of memory at batch 32 (ResourceExhaustedError); retried "
                                                  "with batch 16 x 2 gradient accumulation steps")
    assert run.data.params["train.batch_size"] == "32"  # the effective batch, as configured
    # what the retry trained: 128 images in batches of 16 (8 per epoch, not 4 of 32), accumulating 2 of them
    # per update, so the optimizer took the 4 updates per epoch of the configured batch of 32
    first, retry = counter.attempts
    assert first["accumulation"] is None and first["batches"] == {}  # the first attempt died at its first batch
    assert retry["accumulation"] == 2
    assert retry["batches"] == {0: 8, 1: 8}
    assert retry["updates"] == 2 * 4
    steps = [m.step for m in MlflowClient(uri).get_metric_history(result.run_id, "loss")]
    assert steps == [0, 1]


def test_a_second_out_of_memory_fails_the_run(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"

    import keras

    class OomEveryAttempt(keras.callbacks.Callback):
        attempts = 0

        def on_train_begin(self, logs=None):
            OomEveryAttempt.attempts += 1

        def on_train_batch_begin(self, batch, logs=None):
            raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor with shape [16,16,16,64]")

    with pytest.raises(tf.errors.ResourceExhaustedError):
        train_in_process(tmp_path, ["debug=default", "train.batch_size=32", f"tracking.uri={uri}"], [OomEveryAttempt()])
    assert OomEveryAttempt.attempts == 2  # the first fit and one retry, no more
    (run,) = runs_of(uri, "default")
    assert run.info.status == "FAILED"
    assert run.data.tags["xablate.oom_retry"].startswith("out of memory at batch 32")  # it did retry, once
    assert run.data.tags["xablate.error"].startswith("ResourceExhaustedError: OOM when allocating")
    assert "traceback.txt" in [a.path for a in MlflowClient(uri).list_artifacts(run.info.run_id)]


@pytest.mark.slow
def test_a_full_disk_stops_the_run_in_one_line_and_marks_it_failed(tmp_path):
    """A 3 MB tmpfs holds the store and the outputs: the model artifact does not fit."""
    import subprocess as sp

    folder = tmp_path / "small"
    folder.mkdir()
    mounted = sp.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        uri = f"sqlite:///{folder / 'mlflow.db'}"
        proc = run_py("debug=default", f"tracking.uri={uri}", f"hydra.run.dir={folder / 'out'}", cwd=tmp_path)
        assert proc.returncode == 1
        assert proc.stderr.strip().splitlines()[-1] == (
            "xablate: the run stopped: OSError: [Errno 28] No space left on device (recorded in the store as FAILED "
            "with this reason where the store could still be written)")
        assert "Traceback" not in proc.stderr
        [run] = runs_of(uri, "default")
        assert run.info.status == "FAILED" and "No space left on device" in run.data.tags["xablate.error"]
    finally:
        sp.run(["umount", "-l", str(folder)], capture_output=True)
