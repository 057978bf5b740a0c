"""What to do with a job whose identity the study has seen before: skip it, resume it, or start it.

    FINISHED                          -> skip (a result; `force=true` starts a new run)
    FAILED with outcome=diverged      -> skip (divergence is a result too)
    KILLED with outcome=pruned        -> skip (a tuning trial's pruner stopped it: a result of the search)
    RUNNING, owner alive              -> skip (another process is training it right now)
    RUNNING, owner dead; KILLED;
    FAILED by an error                -> resume that run: same run id, from its last epoch checkpoint

A run's owner is recorded as tags (host, pid, the process' start time) and a heartbeat tag refreshed while it
trains. A run counts as dead when its heartbeat is older than `tracking.stale_after_seconds`; on the same host
also when its pid is gone or now names another process (one that did not start when the owner did, or, for
runs recorded without the start time, one started after the run's latest attempt began). Sweep parents do not
beat: on the same host only their pid decides.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass

from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from xablate.data.digest import DATA_DIGEST_TAG
from xablate.staging import may_serve, trained_by
from xablate.tracking import native_crash
from xablate.tracking.wall_time import ATTEMPT_START_TAG

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

HOST_TAG, PID_TAG, HEARTBEAT_TAG = "xablate.host", "xablate.pid", "xablate.heartbeat"
PID_START_TAG = "xablate.pid_start"  # the owner process' start time, epoch seconds: tells it from a reused pid
PID_START_TOLERANCE_SECONDS = 1.0
IDENTITY_TAG, OUTCOME_TAG = "xablate.identity", "xablate.outcome"


@dataclass
class Plan:
    action: str            # "new", "skip" or "resume"
    run: Run | None = None
    reason: str = ""


def owner_tags() -> dict[str, str]:
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid()),
            PID_START_TAG: f"{psutil.Process().create_time():.3f}", HEARTBEAT_TAG: str(int(time.time()))}


def owner_alive(run: Run, stale_after_seconds: float) -> bool:
    """Whether the process that marked this run RUNNING may still be training it."""
    tags = run.data.tags
    beats = tags.get("xablate.role") != "sweep"  # a sweep's parent run is not refreshed while its jobs run
    if tags.get(HOST_TAG) == socket.gethostname() and tags.get(PID_TAG, "").isdigit():
        pid = int(tags[PID_TAG])
        if pid == os.getpid():
            return False  # this very process: a previous job of the basic launcher that did not close it
        if not _is_owner(pid, run):
            return False
        return not beats or _heartbeat_fresh(run, stale_after_seconds)
    return _heartbeat_fresh(run, stale_after_seconds)


def _heartbeat_fresh(run: Run, stale_after_seconds: float) -> bool:
    heartbeat = run.data.tags.get(HEARTBEAT_TAG)
    last = int(heartbeat) if heartbeat and heartbeat.isdigit() else run.info.start_time // 1000
    return time.time() - last < stale_after_seconds


def _is_owner(pid: int, run: Run) -> bool:
    """Whether process `pid` of this host lives and is the one that recorded the run, not a later process given
    the same pid: it started when the run's owner did (its recorded start time), or, for a run recorded without
    one, no later than the run's latest attempt began."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False  # exited; only its parent has not collected it
        started = process.create_time()
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True  # it lives, and cannot be told apart
    recorded = run.data.tags.get(PID_START_TAG)
    try:
        return abs(started - float(recorded)) <= PID_START_TOLERANCE_SECONDS
    except (TypeError, ValueError):  # an older run: no start time recorded
        began_ms = float(run.info.start_time or 0)
        try:  # a resumed run's owner started after the run did, before its own attempt
            began_ms = max(began_ms, float(run.data.tags[ATTEMPT_START_TAG]))
        except (KeyError, ValueError):
            pass
        return started <= began_ms / 1000 + PID_START_TOLERANCE_SECONDS


def job_runs(client: MlflowClient, experiment_id: str, identity: str, data_digest: str | None = None) -> list[Run]:
    """The study's runs with this identity, newest first (sweep parents carry no identity). With `data_digest`,
    a run that recorded another digest is not the same job (same config, other data); runs from before digests
    were recorded carry none and match on their identity alone."""
    runs = client.search_runs([experiment_id], filter_string=f"tags.`{IDENTITY_TAG}` = '{identity}'",
                              order_by=["attributes.start_time DESC"], max_results=1000)
    return [run for run in runs
            if data_digest is None or run.data.tags.get(DATA_DIGEST_TAG, data_digest) == data_digest]


def variant_state(runs: list[Run], stale_after_seconds: float) -> tuple[str, Run | None]:
    """done / diverged / running / failed / missing for the runs of one identity (newest first), and the run
    that decides it. `failed` covers FAILED by an error, KILLED, and RUNNING with a dead owner: resumable."""
    if not runs:
        return "missing", None
    for run in runs:  # a finished or diverged run anywhere in the history is the result
        if run.info.status == "FINISHED":
            return "done", run
        if run.info.status == "FAILED" and run.data.tags.get(OUTCOME_TAG) == "diverged":
            return "diverged", run
        if run.info.status == "KILLED" and run.data.tags.get(OUTCOME_TAG) == "pruned":
            return "pruned", run
    latest = runs[0]
    if latest.info.status in ("RUNNING", "SCHEDULED") and owner_alive(latest, stale_after_seconds):
        return "running", latest
    return "failed", latest


def plan_run(client: MlflowClient, experiment_id: str, identity: str, *, force: bool,
             stale_after_seconds: float, data_digest: str | None = None, crash_dir: Path | None = None,
             stage: str | None = None) -> Plan:
    """What a job does with the study's runs of its identity; with `stage` (a staged sweep's job), only the runs
    that may serve that stage count (xablate.staging.may_serve)."""
    if force:
        return Plan("new")
    runs = job_runs(client, experiment_id, identity, data_digest)
    if stage is not None:
        kept = [run for run in runs if may_serve(trained_by(run.data.tags), stage)]
        if not kept and runs:
            return Plan("new", None, f"run {runs[0].info.run_id} of the same config was trained by the "
                                     f"{trained_by(runs[0].data.tags)} stage, which does not stand in for a "
                                     f"{stage} job (xablate.staging.may_serve)")
        runs = kept
    state, run = variant_state(runs, stale_after_seconds)
    if state == "failed" and run.info.status == "RUNNING" and crash_dir is not None \
            and native_crash.record_if_crashed(client, run, crash_dir):  # died natively; the watcher did not say
        run = client.get_run(run.info.run_id)
    if state == "failed" and native_crash.crashed_too_often(run):
        return Plan("skip", run, f"crashed natively {run.data.tags.get(native_crash.COUNT_TAG)} times "
                                 f"({run.data.tags.get(native_crash.SIGNAL_TAG)}); not resumed again (force=true "
                                 f"trains it anew)")
    if state == "missing":
        return Plan("new")
    if state == "done":
        return Plan("skip", run, "already FINISHED")
    if state == "diverged":
        return Plan("skip", run, "diverged (a result; force=true trains it again)")
    if state == "pruned":
        return Plan("skip", run, "was pruned by its tuning trial (a result; force=true trains it again)")
    if state == "running":
        owner = f"{run.data.tags.get(HOST_TAG)}:{run.data.tags.get(PID_TAG)}"
        return Plan("skip", run, f"RUNNING in process {owner}")
    return Plan("resume", run, f"{run.info.status}, resumed from its last checkpoint")


class Heartbeat:
    """Refreshes the run's heartbeat tag every `seconds` from a daemon thread while training runs."""

    def __init__(self, client: MlflowClient, run_id: str, seconds: float):
        self.client, self.run_id, self.seconds = client, run_id, seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="xablate-heartbeat", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)

    def _beat(self):
        while not self._stop.wait(self.seconds):
            try:
                self.client.set_tag(self.run_id, HEARTBEAT_TAG, str(int(time.time())))
            except Exception:  # a missed beat only makes the run look older; training goes on
                pass
