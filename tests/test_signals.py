"""README: "SIGINT/SIGTERM end a run KILLED after flushing" (Ctrl-C, `kill`, a Slurm time limit) and leave its
epoch checkpoint; typed again, the command resumes that KILLED run under the same run id.

The signal is sent right after the first epoch's checkpoint appears, that is while the epoch's metrics are being
written to MLflow: the moment an interrupt used to land inside a SQLite transaction, leave the store locked and
the run RUNNING."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from mlflow import MlflowClient

from helpers import ROOT, run_py, runs_of
from xablate import stop_request
from xablate.training.callbacks import StopOnSignal, interrupts_held

EPOCHS = 6


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("signals")
    return root, f"sqlite:///{root / 'mlflow.db'}"


def job(store, study):
    return ["debug=default", f"train.epochs={EPOCHS}", "train.save_model=false", f"study={study}",
            f"tracking.uri={store[1]}"]


def interrupt_after_first_checkpoint(store, study, signum, *sweep):
    """Starts `python run.py` (`python run.py -m <sweep>` when given) and sends it `signum` once its first epoch is
    checkpointed; returns the process's exit code, its output and the checkpoint folder."""
    root, _ = store
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    for inherited in ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID"):
        env.pop(inherited, None)
    command = [sys.executable, str(ROOT / "run.py"), *(["-m", *sweep] if sweep else []), *job(store, study)]
    proc = subprocess.Popen(command, cwd=root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=as_from_a_terminal)
    try:
        deadline = time.time() + 300
        while not list((root / "checkpoints" / study).glob("*/state.json")):
            assert proc.poll() is None, proc.communicate()[0][-3000:]
            assert time.time() < deadline, "no epoch was checkpointed within 300 s"
            time.sleep(0.02)
        assert proc.poll() is None, "the run ended before it could be interrupted"
        proc.send_signal(signum)
        output = proc.communicate(timeout=120)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    folders = list((root / "checkpoints" / study).iterdir())
    assert len(folders) == 1, output[-3000:]  # none: the run trained on to FINISHED and deleted it
    return proc.returncode, output, folders[0]


def assert_killed_with_its_checkpoint(store, study, signum):
    code, output, folder = interrupt_after_first_checkpoint(store, study, signum)
    assert code != 0, output[-3000:]
    (run,) = runs_of(store[1], study)
    assert run.info.status == "KILLED", output[-3000:]
    assert run.info.end_time is not None
    assert run.data.tags["xablate.error"].startswith("KeyboardInterrupt")
    state = json.loads((folder / "state.json").read_text())
    assert state["run_id"] == run.info.run_id and 0 <= state["epoch"] < EPOCHS - 1
    assert (folder / state["weights_file"]).is_file()
    assert folder.name == run.data.tags["xablate.identity"]
    # flushed: every checkpointed epoch reached MLflow, before the run was closed
    steps = [m.step for m in MlflowClient(store[1]).get_metric_history(run.info.run_id, "loss")]
    assert sorted(steps) == list(range(state["epoch"] + 1)), output[-3000:]
    return run, state, folder


@pytest.mark.slow
def test_ctrl_c_ends_the_run_killed_and_leaves_its_checkpoint(store):
    assert_killed_with_its_checkpoint(store, "sigint", signal.SIGINT)


@pytest.mark.slow
def test_sigterm_ends_the_run_killed_and_the_same_command_resumes_it_under_its_run_id(store):
    killed, state, folder = assert_killed_with_its_checkpoint(store, "sigterm", signal.SIGTERM)
    assert killed.data.tags["xablate.error"] == f"KeyboardInterrupt: received signal {int(signal.SIGTERM)}"

    rerun = run_py(*job(store, "sigterm"), cwd=store[0])
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    (run,) = runs_of(store[1], "sigterm")
    assert run.info.run_id == killed.info.run_id and run.info.status == "FINISHED"
    assert f"resuming MLflow run {killed.info.run_id}" in rerun.stdout
    assert f"restored the checkpoint of epoch {state['epoch']}" in rerun.stdout
    assert run.data.tags["xablate.resumes"] == "1"
    assert run.data.tags["xablate.previous_error"] == killed.data.tags["xablate.error"]
    client = MlflowClient(store[1])
    for key in ("loss", "val_accuracy", "learning_rate"):
        steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
        assert sorted(steps) == list(range(EPOCHS)), (key, steps)  # every epoch once: none lost, none repeated
    assert not folder.exists()  # a finished run deletes its checkpoint


@pytest.mark.slow
def test_a_sweep_stopped_by_sigterm_leaves_its_parent_killed_as_its_run(store):
    """Not FAILED: nothing failed. (A sweep killed by SIGKILL is closed KILLED by the next command.)"""
    code, output, _ = interrupt_after_first_checkpoint(store, "sweep_sigterm", signal.SIGTERM, "seed=0,1")
    assert code != 0, output[-3000:]
    (parent,) = runs_of(store[1], "sweep_sigterm", role="sweep")
    (child,) = runs_of(store[1], "sweep_sigterm", role="job")
    assert (parent.info.status, child.info.status) == ("KILLED", "KILLED"), output[-3000:]
    assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id


def as_from_a_terminal():
    """The signal dispositions a shell gives a command it starts. A child inherits ignored signals, and a test
    worker can have SIGINT ignored by whatever ran in it before (seen once under pytest-xdist): run.py would
    then sleep through Ctrl-C and the test would check nothing."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def test_interrupts_held_delivers_a_signal_after_the_block():
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a process started from a shell
    try:
        held_sigint_is_delivered()
    finally:
        signal.signal(signal.SIGINT, inherited)


def held_sigint_is_delivered():
    with pytest.raises(KeyboardInterrupt):
        with interrupts_held():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)  # the handler would have run by now
            finished = True
    assert finished
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back

    received = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
    try:
        with interrupts_held():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.2)
            assert received == []
        assert received == [signal.SIGTERM]  # the handler in place before the block got it, once
    finally:
        signal.signal(signal.SIGTERM, previous)

    errors = []

    def elsewhere():
        try:
            with interrupts_held():  # only the main thread may touch handlers: a no-op here
                pass
        except BaseException as error:  # noqa: BLE001
            errors.append(error)

    thread = threading.Thread(target=elsewhere)
    thread.start()
    thread.join()
    assert errors == []


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the swallowed one, on purpose
def test_a_signal_whose_interrupt_a_finalizer_swallowed_still_stops_training_at_the_next_batch():
    """Python raises a signal's KeyboardInterrupt wherever the main thread is; inside a `__del__` it is printed
    and lost (TensorFlow runs finalizers while it trains). run.py's handlers note the signal, and StopOnSignal
    raises it again after the next batch."""
    import keras
    import numpy as np

    class FinalizedDuringTheSignal:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGINT)  # the handler runs here, inside the finalizer

    previous = {signum: signal.getsignal(signum) for signum in stop_request.SIGNALS}
    stop_request.install()
    batches = []
    try:
        doomed = FinalizedDuringTheSignal()
        del doomed  # no KeyboardInterrupt here: the finalizer swallowed it
        assert stop_request._received == [signal.SIGINT]
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse")
        counter = keras.callbacks.LambdaCallback(on_train_batch_begin=lambda batch, logs: batches.append(batch))
        with pytest.raises(KeyboardInterrupt, match=f"received signal {int(signal.SIGINT)}"):
            model.fit(np.zeros((8, 2)), np.zeros((8, 1)), batch_size=2, epochs=3, verbose=0,
                      callbacks=[StopOnSignal(), counter])
    finally:
        stop_request.forget()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    assert batches == [0]  # stopped after the first batch of 12
