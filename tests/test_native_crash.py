"""The oneDNN crash (odd batches through a residual model on AVX-512 CPUs) and the containment of any native crash.

- `train.onednn`: what each mode sets, checked in closed form; a bad value refused before any store exists.
- The reproducer sizes through run.py in a subprocess (a crash turns the test red instead of taking pytest down):
  odd partial batches of the residual debug model finish FINISHED with the state in effect tagged.
- On an AVX-512 CPU the bare reproducer still crashes with oneDNN at full width and not with the cap (when
  TensorFlow fixes it, this test says `auto` can stop capping).
- A job that dies of SIGSEGV is FAILED with the signal as its reason (by the watcher, or by the next command
  when the watcher is gone), the same command resumes it, and after MAX_NATIVE_CRASHES it is not resumed again.
"""

import subprocess
import sys

import pytest
from mlflow import MlflowClient

from helpers import ROOT, clean_env, run_py, runs_of
from onednn_crash_repro import FAULTS, run_case
from xablate import onednn
from xablate.tracking import native_crash

AVX512 = frozenset({"sse4_2", "avx2", "avx512f", "avx512bw"})
AVX2_ONLY = frozenset({"sse4_2", "avx2", "fma"})


@pytest.mark.parametrize("mode, environ, flags, expected", [
    ("auto", {}, AVX512, ({"ONEDNN_MAX_CPU_ISA": "AVX2"}, "avx2 (auto: AVX-512 CPU)")),
    ("auto", {}, AVX2_ONLY, ({}, "on (auto: no AVX-512)")),
    ("auto", {}, frozenset(), ({}, "on (auto: no AVX-512)")),
    ("auto", {"TF_ENABLE_ONEDNN_OPTS": "0"}, AVX512, ({}, "off (TF_ENABLE_ONEDNN_OPTS=0 in the environment)")),
    ("auto", {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE"}, AVX512, ({}, "avx512_core (ONEDNN_MAX_CPU_ISA in the environment)")),
    ("auto", {"ONEDNN_MAX_CPU_ISA": "AVX2"}, AVX512, ({"ONEDNN_MAX_CPU_ISA": "AVX2"}, "avx2 (auto: AVX-512 CPU)")),
    ("auto", {"ONEDNN_MAX_CPU_ISA": "AVX2"}, AVX2_ONLY, ({}, "avx2 (ONEDNN_MAX_CPU_ISA in the environment)")),
    ("on", {"ONEDNN_MAX_CPU_ISA": "AVX2"}, AVX512, ({}, "on")),
    ("avx2", {}, AVX2_ONLY, ({"ONEDNN_MAX_CPU_ISA": "AVX2"}, "avx2")),
    ("off", {}, AVX512, ({"TF_ENABLE_ONEDNN_OPTS": "0"}, "off")),
])
def test_each_mode_sets_what_it_says(mode, environ, flags, expected):
    assert onednn.wanted_env(mode, environ=environ, flags=flags) == expected


@pytest.mark.parametrize("bad", ["yes", True, None, "AVX2"])
def test_a_bad_mode_is_refused_naming_the_setting(bad):
    with pytest.raises(ValueError, match=r"Received train\.onednn=.*allowed: auto, on, avx2, off"):
        onednn.check_mode(bad)


def test_this_process_settled_on_the_state_auto_picks():
    """conftest applies `auto` before the first convolution, as run.py does; a job asking for another state in
    the same process is refused instead of silently training under the first."""
    _, state = onednn.wanted_env("auto")
    assert onednn.apply("auto") == state
    other = "off" if not state.startswith("off") else "on"
    with pytest.raises(ValueError, match=r"train\.onednn=.*separate processes"):
        onednn.apply(other)


@pytest.mark.parametrize("text, signal", [
    ("Fatal Python error: Segmentation fault\n\nThread 0x1 (most recent call first):\n", "SIGSEGV (Segmentation fault)"),
    ("Fatal Python error: Aborted\n\nCurrent thread 0x2:\n", "SIGABRT (Aborted)"),
    ("Fatal Python error: Bus error\n", "SIGBUS (Bus error)"),
    ("", None),
    ("some partial line", None),
])
def test_the_signal_is_read_from_faulthandlers_report(text, signal):
    assert native_crash.signal_in(text) == signal


@pytest.mark.slow
def test_a_bad_onednn_value_exits_before_any_store_exists(tmp_path):
    proc = run_py("debug=default", "train.onednn=fast", f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}",
                  cwd=tmp_path, timeout=300)
    assert proc.returncode != 0
    assert "Received train.onednn='fast'; allowed: auto, on, avx2, off" in proc.stderr
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.slow
def test_odd_partial_batches_of_a_residual_model_finish(tmp_path):
    """51 and 63 training images at batch 64 and 32 leave batches of 51, 63, 19 and 31 images: each crashed
    TensorFlow 2.20/2.21 on AVX-512 CPUs before train.onednn=auto."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = run_py("-m", "debug=default", "data.limit_train=51,63", "train.batch_size=32,64", f"tracking.uri={uri}",
                  cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = runs_of(uri, "default", role="job")
    assert sorted((r.data.params["data.limit_train"], r.data.params["train.batch_size"]) for r in jobs) == [
        ("51", "32"), ("51", "64"), ("63", "32"), ("63", "64")]
    assert {r.info.status for r in jobs} == {"FINISHED"}
    _, expected = onednn.wanted_env("auto", environ=clean_env())
    assert {r.data.tags["xablate.onednn"] for r in jobs} == {expected}
    assert {r.data.tags["xablate.cpu"] for r in jobs} == {onednn.cpu_model()}
    # records hold no path of this machine: the store outside the project is named by its file
    assert {r.data.params["tracking.uri"] for r in jobs} == {"sqlite:///.../mlflow.db"}
    assert all(str(tmp_path) not in r.data.tags["xablate.overrides"] for r in jobs)
    assert "tracking.uri=sqlite\\:///.../mlflow.db" in jobs[0].data.tags["xablate.overrides"]  # as Hydra escapes it


@pytest.mark.slow
@pytest.mark.skipif(not onednn.affected_cpu(), reason="the fault lives in oneDNN's AVX-512 kernels")
def test_the_bare_reproducer_crashes_at_full_width_and_not_under_the_cap():
    assert run_case(["--batch", "51"], {}) in FAULTS  # TF fixed it: auto may stop capping
    assert run_case(["--batch", "51"], onednn.wanted_env("auto", environ={})[0]) == 0
    assert run_case(["--batch", "50"], {}) == 0  # even batches never crashed


def crash_job(uri, tmp_path, mode, *overrides, env=None):
    return subprocess.run([sys.executable, str(ROOT / "tests" / "crash_job.py"), uri, str(tmp_path / "job"), mode,
                           *overrides], cwd=tmp_path, env=clean_env(**(env or {})), capture_output=True, text=True,
                          timeout=600)


def only_run(uri):
    (run,) = runs_of(uri, "default", role="job")
    return run


@pytest.mark.slow
def test_a_segfault_is_recorded_failed_with_its_signal_and_the_same_job_resumes(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    crashed = crash_job(uri, tmp_path, "crash")
    assert crashed.returncode == -11, crashed.stderr[-2000:]
    run = only_run(uri)
    assert run.info.status == "FAILED"
    assert run.data.tags["xablate.native_signal"] == "SIGSEGV"
    assert run.data.tags["xablate.native_crashes"] == "1"
    assert run.data.tags["xablate.error"].startswith("native crash: SIGSEGV (Segmentation fault) in process ")
    artifacts = [a.path for a in MlflowClient(uri).list_artifacts(run.info.run_id)]
    assert "native_crash.txt" in artifacts
    assert f"[xablate] run {run.info.run_id} (baseline) died in a native crash: SIGSEGV" in crashed.stderr
    assert "this command continues: " in crashed.stderr and "crash_job.py" in crashed.stderr

    resumed = crash_job(uri, tmp_path, "clean")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"RESULT {run.info.run_id} FINISHED" in resumed.stdout  # the same run, continued
    assert "resuming MLflow run" in resumed.stdout


@pytest.mark.slow
def test_without_the_watcher_the_next_command_records_the_crash_and_stops_resuming_after_two(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    no_watcher = {"XABLATE_CRASH_WATCHER": "0"}
    assert crash_job(uri, tmp_path, "crash", env=no_watcher).returncode == -11
    assert only_run(uri).info.status == "RUNNING"  # nobody left to close it ...
    again = crash_job(uri, tmp_path, "crash", env=no_watcher)  # ... the next command does, then resumes it
    assert again.returncode == -11
    run = only_run(uri)
    assert run.data.tags["xablate.native_crashes"] == "1" and run.data.tags["xablate.native_signal"] == "SIGSEGV"
    third = crash_job(uri, tmp_path, "clean")  # records the second crash: not resumed a third time
    assert third.returncode == 0, third.stderr[-2000:]
    run = only_run(uri)
    assert run.info.status == "FAILED" and run.data.tags["xablate.native_crashes"] == "2"
    assert f"RESULT {run.info.run_id} SKIPPED" in third.stdout
    assert "crashed natively 2 times (SIGSEGV); not resumed again" in third.stdout


def test_the_onednn_bench_summary_is_the_median_over_rounds_and_its_ratio_to_on():
    from xablate.bench.onednn import even_batches, summary

    rows = [{"state": s, "round": r, "status": "ok", "steady_images_per_second": w, "images_per_cpu_second": c}
            for s, r, w, c in [("on", 1, 400, 260), ("on", 2, 300, 250), ("on", 3, 500, 270),
                               ("avx2", 1, 360, 230), ("avx2", 2, 200, 225), ("avx2", 3, 380, 240),
                               ("off", 1, 320, 180), ("off", 2, 0, 0)]]
    rows[-1]["status"] = "failed: exit -6"
    by_state = {row["state"]: row for row in summary(rows)}
    assert by_state["on"]["steady_images_per_second"] == 400 and by_state["on"]["ratio_vs_on"] == 1.0
    assert by_state["avx2"]["steady_images_per_second"] == 360 and by_state["avx2"]["ratio_vs_on"] == 0.9
    assert by_state["avx2"]["cpu_ratio_vs_on"] == round(230 / 260, 3)
    assert by_state["off"]["steady_images_per_second"] == 320  # the failed round left out
    x, y = even_batches(list(range(300)), list(range(300)), 64)
    assert len(x) == len(y) == 256  # two pairs of full batches: every batch even
    with pytest.raises(ValueError, match="allowed: at least 128 images"):
        even_batches(list(range(100)), list(range(100)), 64)


@pytest.mark.parametrize("precision, expected", [
    ("fp32", ({"ONEDNN_MAX_CPU_ISA": "AVX2"}, "avx2 (auto: AVX-512 CPU)")),
    ("bf16", ({"TF_ENABLE_ONEDNN_OPTS": "0"}, "off (auto: AVX-512 CPU, bf16)")),
    ("fp16", ({"TF_ENABLE_ONEDNN_OPTS": "0"}, "off (auto: AVX-512 CPU, fp16)")),
])
def test_auto_turns_onednn_off_for_reduced_precision_where_the_cap_has_no_kernels(precision, expected):
    assert onednn.wanted_env("auto", environ={}, flags=AVX512, precision=precision) == expected
    assert onednn.wanted_env("auto", environ={}, flags=AVX2_ONLY, precision=precision) == ({}, "on (auto: no AVX-512)")


def test_a_bf16_job_in_a_process_capped_for_fp32_is_refused_naming_the_way_out():
    if not onednn.wanted_env("auto")[1].startswith("avx2"):
        pytest.skip("this process is not capped (no AVX-512)")
    with pytest.raises(ValueError, match=r"train.precision='bf16', which needs oneDNN off.*train\.onednn=off"):
        onednn.apply("auto", precision="bf16")
