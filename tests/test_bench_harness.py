"""`xablate bench harness` through the installed console script, run tiny: the CSVs it writes, their rows and
the ratios recomputed from their own numbers (timings themselves are not asserted)."""

import csv
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

XABLATE = str(Path(sys.executable).parent / "xablate")
pytestmark = pytest.mark.skipif(not Path(XABLATE).exists(), reason="xablate is not installed (pip install -e .)")

# the debug config (tiny model, 16x16 digits, 128 training images) keeps every measurement short
OVERRIDES = ["debug=default"]
# keras.applications.Xception: 20,861,480 parameters without its top (as keras.applications) + a 2048 -> 10 classifier
XCEPTION_10_CLASSES = 20_861_480 + 2048 * 10 + 10


def rows(folder: Path, name: str) -> list[dict]:
    with (folder / name).open() as f:
        return list(csv.DictReader(f))


def debug_model_parameters() -> int:
    """The measured run's model, built here from the same composed config (digits: 16x16x1, 10 classes)."""
    import keras

    from xablate.bench.overhead import run_overrides
    from xablate.config import axes_of, compose_job as compose
    from xablate.schema import Job, Optim, typed
    from xablate.models import build_xception
    from xablate.training.trainer import builder_kwargs

    cfg = compose(run_overrides(Path("/nonexistent/mlflow.db"), 2, OVERRIDES))
    keras.backend.clear_session()
    return build_xception(**builder_kwargs(cfg["model"], typed(Optim, cfg["optim"]), axes_of(typed(Job, cfg)), image_shape=(16, 16, 1),
                                           num_classes=10)).count_params()


# reuse and parity (two full Xceptions traced: ~80 s) are checked on made-up numbers below; the builder's layer
# parity with keras.applications is tests/test_builder_parity.py
TINY = ["--epochs", "2", "--rounds", "1", "--steps", "1", "--only", "overhead,pipeline,backends"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The folder of one tiny `xablate bench harness` run (every measurement, the debug config)."""
    out = tmp_path_factory.mktemp("harness")
    proc = subprocess.run([XABLATE, "bench", "harness", *TINY, "--out", str(out), *OVERRIDES],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| comparison | measured | baseline | ratio | target |" in proc.stdout
    return out


@pytest.mark.slow
def test_overhead_rows_and_ratios(tiny):
    overhead = rows(tiny, "harness_overhead.csv")
    assert list(overhead[0]) == [
        "round", "side", "order", "images", "epochs", "steady_epochs", "first_epoch_images_per_second",
        "epoch_images_per_second", "epoch_images_per_cpu_second", "epoch_first_batch_delay_seconds",
        "steady_images_per_second",
        "fastest_images_per_second",
        "images_per_cpu_second", "steady_epoch_seconds", "ratio", "ratio_fastest", "ratio_cpu", "target",
        "meets_target",
    ]
    assert [(r["round"], r["side"]) for r in overhead] == [("1", "bare"), ("1", "harness"), ("all", "bare"),
                                                            ("all", "harness")]
    for r in overhead:
        assert int(r["images"]) == 128  # debug: data.limit_train=128
        assert int(r["steady_epochs"]) == 1
        if r["round"] == "1":
            per_epoch = [float(v) for v in r["epoch_images_per_second"].split(";")]
            assert len(per_epoch) == int(r["epochs"]) == 2
            assert float(r["steady_images_per_second"]) == pytest.approx(per_epoch[1], abs=0.051)
            per_cpu_second = [float(v) for v in r["epoch_images_per_cpu_second"].split(";")]
            assert float(r["images_per_cpu_second"]) == pytest.approx(per_cpu_second[1], abs=0.051)
            assert len(r["epoch_first_batch_delay_seconds"].split(";")) == 2
    for round_ in ("1", "all"):
        bare, run = [r for r in overhead if r["round"] == round_]
        assert bare["ratio"] == bare["target"] == ""
        for ratio, column in (("ratio", "steady_images_per_second"), ("ratio_fastest", "fastest_images_per_second"),
                              ("ratio_cpu", "images_per_cpu_second")):
            assert float(run[ratio]) == pytest.approx(float(run[column]) / float(bare[column]), rel=1e-3)
        assert float(run["target"]) == 0.97
        assert run["meets_target"] == str(float(run["ratio"]) >= 0.97)


@pytest.mark.slow
def test_fixed_costs_add_up(tiny):
    costs = {r["measurement"]: r for r in rows(tiny, "harness_fixed_costs.csv")}
    assert list(costs) == [
        "imports", "run_py_wall", "run_py_epochs", "run_py_outside_epochs", "run_py_to_mlflow_run",
        "run_py_to_first_epoch", "run_py_first_epoch_extra", "run_end_of_epoch", "mlflow_create_store",
        "mlflow_plan", "mlflow_create_run", "mlflow_log_params", "mlflow_heartbeat", "mlflow_log_epoch",
        "mlflow_log_artifacts", "mlflow_finish", "mlflow_per_run",
    ]
    seconds = {k: float(r["seconds"]) for k, r in costs.items()}
    assert seconds["run_py_outside_epochs"] == pytest.approx(seconds["run_py_wall"] - seconds["run_py_epochs"],
                                                             abs=0.002)
    # the imports are timed in a process of their own: on a loaded machine they may outlast the whole way to
    # run.py's MLflow run, so they are only checked against the (much later) first epoch
    assert 0 < seconds["imports"] < seconds["run_py_to_first_epoch"]
    assert 0 < seconds["run_py_to_mlflow_run"] < seconds["run_py_to_first_epoch"] < seconds["run_py_wall"]
    per_run = sum(seconds[k] for k in ("mlflow_plan", "mlflow_create_run", "mlflow_log_params", "mlflow_heartbeat",
                                       "mlflow_log_artifacts", "mlflow_finish")) + 2 * seconds["mlflow_log_epoch"]
    assert seconds["mlflow_per_run"] == pytest.approx(per_run, abs=0.005)
    assert "for 2 epochs" in costs["mlflow_per_run"]["detail"]
    # the run's own artifacts (and, from an edited checkout, its changes: xablate.tracking.provenance)
    assert " artifacts: config.yaml, curves.png, history.csv, model_summary.json, model_summary.txt" in \
        costs["mlflow_log_artifacts"]["detail"]


def test_builder_parity_rows_from_made_up_steps():
    """Parity's rows and ratios from known step times at batch 2: keras.applications' median step 0.5 s (4 images/s),
    fastest 0.25 s (8), CPU median 1 s (2); xablate's 0.25 s (8), 0.2 s (10), 0.8 s (2.5)."""
    from xablate.bench import report
    from xablate.bench.parity import parity_rows

    shapes = {"keras_applications": (XCEPTION_10_CLASSES, 134), "xablate": (XCEPTION_10_CLASSES, 134)}
    times = {"keras_applications": [0.5, 0.25, 0.6], "xablate": [0.25, 0.5, 0.2]}
    cpu = {"keras_applications": [1.0, 1.0, 2.0], "xablate": [0.8, 0.8, 0.4]}
    keras_app, ours = parity_rows(shapes, times, cpu, size=71, classes=10, batch=2)
    assert (keras_app["model"], ours["model"]) == ("keras_applications", "xablate")
    assert (keras_app["images_per_second"], keras_app["images_per_second_fastest"],
            keras_app["images_per_cpu_second"]) == (4.0, 8.0, 2.0)
    assert (ours["images_per_second"], ours["images_per_second_fastest"], ours["images_per_cpu_second"]) == (8.0, 10.0, 2.5)
    assert (ours["ratio"], ours["ratio_fastest"], ours["ratio_cpu"]) == (2.0, 1.25, 1.25)
    assert ours["target"] == 0.98 and ours["meets_target"] is True and keras_app["ratio"] == ""
    assert ours["steps_timed"] == 3 and ours["parameters"] == 20_881_970
    line = report.summary_table({"parity": [{k: str(v) for k, v in r.items()} for r in (keras_app, ours)]})[2]
    assert line.startswith("| builder parity: `build_xception()` vs `keras.applications.Xception(weights=None)`, "
                           "train images/s at 71×71×3, 10 classes, batch 2 (median of 3 alternating steps) | 8.00 | "
                           "4.00 | 2.000 | ≥ 0.98 | met | 1.250 | 1.250 |")
    slower = parity_rows(shapes, {**times, "xablate": [0.6, 0.6]}, cpu, size=71, classes=10, batch=2)[1]
    assert slower["ratio"] == pytest.approx(0.8333, abs=1e-4) and slower["meets_target"] is False


@pytest.mark.slow
def test_input_pipeline_rows(tiny):
    pipeline = rows(tiny, "input_pipeline.csv")
    train = {r["source"]: r for r in pipeline if r["mode"] == "train"}
    alone = [r["source"] for r in pipeline if r["mode"] == "iterate_only"]
    assert list(train) == ["in_memory", "tf_data", "tf_data_augmented"]
    assert alone == ["tf_data", "tf_data_augmented", "augment_rotation_degrees", "augment_shift", "augment_shear",
                     "augment_zoom", "augment_horizontal_flip", "augment_brightness"]
    assert {int(r["images"]) for r in pipeline} == {128}
    for source in ("tf_data", "tf_data_augmented"):
        assert float(train[source]["ratio_vs_in_memory"]) == pytest.approx(
            float(train[source]["steady_images_per_second"]) / float(train["in_memory"]["steady_images_per_second"]),
            rel=1e-3)
    assert float(train["tf_data_augmented"]["target"]) == 0.9 and train["tf_data"]["target"] == ""


@pytest.mark.slow
def test_one_row_per_backend(tiny):
    backends = {r["backend"]: r for r in rows(tiny, "backends.csv")}
    assert list(backends) == ["tensorflow", "jax", "torch"]
    installed = {name: name == "tensorflow" or importlib.util.find_spec(name) is not None for name in backends}
    parameters = debug_model_parameters()
    for name, row in backends.items():
        if installed[name]:
            assert row["status"] == "ok", row
            assert row["version"].startswith(f"{name} ")
            assert int(row["parameters"]) == parameters
            assert int(row["images"]) == 128 and int(row["epochs"]) == 2
        else:
            assert row["status"] == "not installed"
    assert float(backends["tensorflow"]["ratio_vs_tensorflow"]) == 1.0


def test_reuse_rows_from_a_made_up_sweep(tmp_path):
    """The reuse suite's per-job arithmetic on a store whose runs have known times (seconds since the launch at
    t = 1000 s): job 0 compiles (epochs 30 s and 10 s), job 1 reuses (11 s and 10 s)."""
    from mlflow import MlflowClient

    from xablate.bench import report
    from xablate.bench.reuse import job_rows, summary

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("bench")
    parent = client.create_run(experiment, start_time=1_000_000).info.run_id
    for seed, compiled, start, epochs, end in [(0, "new", 1_008_000, [(30, 1_045_000), (10, 1_055_000)], 1_058_000),
                                                (1, "reused", 1_058_500, [(11, 1_071_000), (10, 1_081_000)], 1_083_000)]:
        run = client.create_run(experiment, start_time=start, tags={"mlflow.parentRunId": parent,
                                                                    "xablate.compiled": compiled}).info.run_id
        client.log_param(run, "seed", seed)
        for step, (seconds, at) in enumerate(epochs):
            client.log_metric(run, "epoch_seconds", seconds, timestamp=at, step=step)
        client.set_terminated(run, end_time=end)
    first, later = job_rows(client, launched=1000.0)
    # job 0: first epoch ended at 1045 s after 30 s -> began at 1015, 15 s after the launch; one epoch is 10 s
    assert first == pytest.approx({**first, "before_run_seconds": 8.0, "to_first_epoch_seconds": 15.0,
                                   "first_epoch_extra_seconds": 20.0, "start_overhead_seconds": 35.0,
                                   "end_seconds": 3.0, "job_seconds": 58.0, "job_overhead_seconds": 38.0})
    assert (first["compiled"], later["compiled"], later["seed"]) == ("new", "reused", 1)
    # job 1 from job 0's end (1058 s): run at 1058.5, first epoch 1060 -> 1071, steady 10 s
    assert later == pytest.approx({**later, "before_run_seconds": 0.5, "to_first_epoch_seconds": 2.0,
                                   "first_epoch_extra_seconds": 1.0, "start_overhead_seconds": 3.0,
                                   "end_seconds": 2.0, "job_seconds": 25.0, "job_overhead_seconds": 5.0})
    got = summary([first, later])  # the first job's times from its run's creation (launch + 8 s)
    assert (got["first_to_epoch"], got["later_to_epoch"], got["first_job"], got["reused"]) == (7.0, 2.0, 30.0, 1)
    line = report.summary_table({"reuse": [{k: str(v) for k, v in r.items()} for r in (first, later)]})[2]
    assert "| 2.00 s | 7.00 s | 3.50 | ≤ 2 s | met |" in line


@pytest.mark.slow
def test_summary_has_every_section(tiny):
    summary = (tiny / "harness.md").read_text()
    lines = ["| harness overhead: training images/s of a real run vs bare `model.fit`",
             "| input pipeline: augmented tf.data vs the same images as in-memory arrays",
             "## Fixed per-run costs", "## Input pipeline", "## Keras backends",
             "[`xablate bench segments`](segments.md)"]
    if importlib.util.find_spec("jax") is not None:
        lines.append("| backend jax vs tensorflow: training images/s from in-memory arrays |")
    for line in lines:
        assert line in summary
    assert "This run measured" not in summary  # every measurement is from this run


@pytest.mark.parametrize("args, message", [
    (["--epochs", "1"], "Received --epochs='1'; allowed: an integer >= 2"),
    (["--rounds", "x"], "Received --rounds='x'; allowed: an integer >= 1"),
    (["--parity-size", "32"], "Received --parity-size='32'; allowed: an integer >= 71"),
    (["--only", "overhead,gpu"], "Received --only='overhead,gpu'; allowed: a comma-separated subset of "
                                 "overhead,reuse,parity,pipeline,backends"),
    (["segments=0"], "segments=0"),
])
def test_bench_harness_rejects_bad_input_before_measuring(args, message, tmp_path):
    proc = subprocess.run([XABLATE, "bench", "harness", "--out", str(tmp_path / "out"), *args],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert message in proc.stderr
    assert not (tmp_path / "out").exists()
