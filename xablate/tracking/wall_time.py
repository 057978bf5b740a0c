"""A run's wall time over its attempts.

MLflow keeps one start time per run; a run killed and resumed later (the same command typed again, maybe the next
day) would otherwise count the hours between its attempts as its own. Each resume records when its attempt began
and the wall seconds of the attempts before it; a run's wall time is their sum plus its last attempt's start to
end (or to now, while it runs).
"""

from __future__ import annotations

import time

ATTEMPT_START_TAG = "xablate.attempt_start"  # ms since the epoch: when the run's latest attempt began
EARLIER_SECONDS_TAG = "xablate.earlier_seconds"  # wall seconds of the run's attempts before the latest


def wall_seconds(start_ms: float, end_ms: float | None, tags: dict, now_ms: float | None = None) -> float:
    """The run's wall time over its attempts; `end_ms` None: still running (up to `now_ms`, default now)."""
    began = float(tags.get(ATTEMPT_START_TAG, start_ms))
    end = end_ms if end_ms else (now_ms if now_ms is not None else time.time() * 1000)
    return float(tags.get(EARLIER_SECONDS_TAG, 0.0)) + max(0.0, end - began) / 1000


def resume_tags(start_ms: float, end_ms: float | None, tags: dict, heartbeat_tag: str,
                now_ms: float | None = None) -> dict[str, str]:
    """The tags a resumed attempt sets: its own start, and the earlier attempts' seconds. The attempt before it
    ended at the run's end time (killed or failed), else (a process that died without a word) at its last
    heartbeat, else it is counted as ending where it began."""
    now = now_ms if now_ms is not None else time.time() * 1000
    began = float(tags.get(ATTEMPT_START_TAG, start_ms))
    heartbeat = float(tags[heartbeat_tag]) * 1000 if tags.get(heartbeat_tag) else None
    ended = end_ms or heartbeat or began
    earlier = wall_seconds(start_ms, max(ended, began), tags)
    return {ATTEMPT_START_TAG: str(int(now)), EARLIER_SECONDS_TAG: f"{earlier:.1f}"}
