"""A run's wall time over its attempts (xablate.tracking.wall_time): the hours between a killed run and its
resume are not its own."""

import time

import pytest

from xablate.tracking.previous_runs import HEARTBEAT_TAG
from xablate.tracking.wall_time import ATTEMPT_START_TAG, EARLIER_SECONDS_TAG, resume_tags, wall_seconds

MINUTE = 60_000  # ms


def test_a_run_never_resumed_is_its_start_to_end():
    assert wall_seconds(0, 3 * MINUTE, {}) == 180.0
    assert wall_seconds(0, None, {}, now_ms=MINUTE) == 60.0  # still running: up to now


def test_a_run_killed_after_one_minute_and_resumed_fifty_minutes_later_counts_its_two_attempts():
    start, killed = 0, 1 * MINUTE
    tags = resume_tags(start, killed, {}, HEARTBEAT_TAG, now_ms=51 * MINUTE)
    assert tags == {ATTEMPT_START_TAG: str(51 * MINUTE), EARLIER_SECONDS_TAG: "60.0"}
    finished = 53.5 * MINUTE  # the resumed attempt ran 2.5 minutes
    assert wall_seconds(start, finished, tags) == pytest.approx(60 + 150)  # not 53.5 minutes
    # killed again after 30 s of the second attempt, resumed an hour later, then 2 minutes to the end
    again = resume_tags(start, 51.5 * MINUTE, tags, HEARTBEAT_TAG, now_ms=111.5 * MINUTE)
    assert again[EARLIER_SECONDS_TAG] == "90.0"
    assert wall_seconds(start, 113.5 * MINUTE, again) == pytest.approx(90 + 120)


def test_a_process_that_died_without_a_word_ends_at_its_last_heartbeat():
    """A hard crash leaves the run RUNNING with no end time: its attempt ended at its last heartbeat (seconds)."""
    start = time.time() * 1000 - 3_600_000
    tags = resume_tags(start, None, {HEARTBEAT_TAG: str(int(start / 1000) + 240)}, HEARTBEAT_TAG)
    assert float(tags[EARLIER_SECONDS_TAG]) == pytest.approx(240, abs=1)
    assert resume_tags(start, None, {}, HEARTBEAT_TAG)[EARLIER_SECONDS_TAG] == "0.0"  # nothing known: none counted
