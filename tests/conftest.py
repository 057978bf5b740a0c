import os
import subprocess

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import xablate.schema  # noqa: E402,F401  (registers model/_builder with Hydra's ConfigStore before any compose)
from xablate.onednn import apply as apply_onednn  # noqa: E402

apply_onednn("auto")  # before any convolution in this process: the in-process tests train like run.py's jobs

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def fresh_keras_session():
    """Each test starts with Keras' name counters and graph reset, as a new process would (without the full garbage
    collection `clear_session` does by default: 0.4 s a test in a process holding TensorFlow and MLflow, half the
    fast tier's time; Python's own collector still runs)."""
    keras.backend.clear_session(free_memory=False)
    yield


# Test tiers. `pytest -m "not slow"` is the edit-test loop: unit and in-process tests only. A test that starts
# run.py in a subprocess (directly or through a module-scoped fixture) belongs to the slow tier; one that is not
# marked so fails here, naming the mark it needs, instead of quietly slowing the loop down.
_running = {"slow": True}


# The longest files first (measured, --durations): pytest-xdist's --dist loadfile hands files to the workers in
# collection order, so a long file collected last (alphabetically, test_search_sweeps: 7 minutes) would run alone
# while the other worker idles. Files not listed keep their order after these.
LONGEST_FIRST = ["test_search_sweeps.py", "test_analysis.py", "test_bench_harness.py", "test_native_crash.py",
                 "test_backends_and_devices.py", "test_sweep_end_to_end.py", "test_launchers.py",
                 "test_ui_study_view.py", "test_sequential.py", "test_tracking.py", "test_committed_results.py",
                 "test_verdicts.py", "test_staged_sweeps.py", "test_jax_backend.py", "test_figures_safety.py",
                 "test_ui_server.py"]


def pytest_collection_modifyitems(session, config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each file's tests keep their order


def pytest_runtest_setup(item):
    _running["slow"] = item.get_closest_marker("slow") is not None


class _TieredPopen(subprocess.Popen):
    def __init__(self, args, *rest, **kwargs):
        words = [str(a) for a in args] if isinstance(args, (list, tuple)) else str(args).split()
        if not _running["slow"] and any(word.endswith("run.py") for word in words):
            raise AssertionError("this test starts run.py in a subprocess: mark it @pytest.mark.slow (the fast "
                                 "tier, pytest -m 'not slow', runs in-process tests only)")
        super().__init__(args, *rest, **kwargs)


subprocess.Popen = _TieredPopen
