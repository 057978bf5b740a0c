"""README: "Without --study it reports every study in experiments/; it exits 1 while cells are left to run"
(0 when every cell is done, 2 for a bad override or study).

Every study narrowed to one cell (`seed=0` and a plain value for each study's swept axis). Its runs are real runs
of that cell (so they carry the identity `xablate status` must match), stopped before their first batch, then
marked FINISHED by hand: no training is needed to fill a study."""

from importlib.metadata import entry_points

import keras
import pytest
from mlflow import MlflowClient

from helpers import ROOT, runs_of
from xablate.config import compose_job
from xablate.cli import main as xablate_main
from xablate.training.trainer import RunContext, train

# the Fashion-MNIST studies read data.path as the folder of their IDX files, which the image folder below is not;
# a searched study's cell is known only once its search recorded choices (tests/test_search_sweeps.py)
STUDIES = sorted(p.stem for p in (ROOT / "experiments").glob("*.yaml")
                 if not p.stem.startswith("fashion_") and p.stem != "fig9_tuned")
FLAGS = [a for study in STUDIES for a in ("--study", study)]
IMAGES = ROOT / "tests" / "data" / "two_class_images"  # for the studies on an image folder (seed_finetune)
# ++data.path: the folder studies need it, the others carry it unused; weights: no download in the tests
ONE_CELL = ["debug=default", "seed=0", "residual=true", "intermediate_act=none", "segments=depthwise",
            f"++data.path={IMAGES}", "model.weights=null"]


class StopBeforeTraining(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        raise RuntimeError("stopped by the test before the first batch")


def start_and_stop(tmp_path, uri, study):
    cfg = compose_job([f"experiment={study}", *ONE_CELL, "train.save_model=false",
                                       f"tracking.uri={uri}"])
    with pytest.raises(RuntimeError, match="stopped by the test"):
        train(cfg,
              RunContext(output_dir=tmp_path / study, callbacks=[StopBeforeTraining()]))
    (run,) = runs_of(uri, study)
    return run.info.run_id


def status(capsys, *arguments):
    code = xablate_main(["status", *arguments])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_status_of_every_study_and_its_exit_codes(tmp_path, capsys):
    assert len(STUDIES) >= 3
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    code, out, err = status(capsys, *FLAGS, *ONE_CELL, f"tracking.uri={uri}")
    assert code == 1, err  # nothing trained yet: every cell is left to run
    for study in STUDIES:
        assert f"study '{study}' in {uri}: 1 cells" in out
    assert out.count("done: 0  diverged: 0  running: 0  failed: 0  missing: 1") == len(STUDIES)

    runs = [start_and_stop(tmp_path, uri, study) for study in STUDIES]
    code, out, err = status(capsys, *FLAGS, *ONE_CELL, f"tracking.uri={uri}")
    assert code == 1, err  # failed cells are left to run (they resume)
    assert out.count("failed: 1  missing: 0") == len(STUDIES)
    assert out.count("stopped by the test before the first batch") == len(STUDIES)

    client = MlflowClient(uri)
    for run_id in runs[:-1]:
        client.set_terminated(run_id, status="FINISHED")
    code, out, err = status(capsys, *FLAGS, *ONE_CELL, f"tracking.uri={uri}")
    assert code == 1, err  # one study still has a cell to run
    assert out.count("done: 1  diverged: 0  running: 0  failed: 0  missing: 0") == len(STUDIES) - 1

    client.set_terminated(runs[-1], status="FINISHED")
    code, out, err = status(capsys, *FLAGS, *ONE_CELL, f"tracking.uri={uri}")
    assert code == 0, err  # every cell of every study done
    assert out.count("done: 1  diverged: 0  running: 0  failed: 0  missing: 0") == len(STUDIES)
    assert out.count("nothing left to run") == len(STUDIES)

    code, out, err = status(capsys, "--study", STUDIES[0], *ONE_CELL, f"tracking.uri={uri}")
    assert code == 0 and out.count("study '") == 1 and f"study '{STUDIES[0]}'" in out


@pytest.mark.parametrize("arguments, message", [
    (["segments=0"], "segments"),
    (["no_such_key=1"], "no_such_key"),
    (["--study", "no_such_study"], "Received --study='no_such_study'; allowed: "),
])
def test_status_exits_2_on_a_bad_override_or_study(tmp_path, capsys, arguments, message):
    code, out, err = status(capsys, *arguments, "debug=default", f"tracking.uri=sqlite:///{tmp_path / 'm.db'}")
    assert code == 2
    assert message in err
    assert not (tmp_path / "m.db").exists()  # nothing was opened


def test_the_console_script_is_xablate_cli_main():
    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "xablate"]
    assert script.value == "xablate.cli:main"  # `xablate status` exits with what main returns


@pytest.mark.slow
def test_a_bare_status_reports_started_studies_and_one_line_for_the_others(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cell = [o for o in ONE_CELL if not o.startswith("++data.path")]  # seed_finetune's default data/ is absent
    every = len(list((ROOT / "experiments").glob("*.yaml")))
    code, out, err = status(capsys, "--uri", uri)
    assert code == 0 and out.count("not started in") == every, out + err  # an empty store: nothing left open
    assert "python run.py -m experiment=fig9_residual" in out and not (tmp_path / "mlflow.db").exists()

    start_and_stop(tmp_path, uri, "fig9_residual")
    code, out, err = status(capsys, "--uri", uri)
    assert f"study 'fig9_residual' in {uri}: " in out and out.count("not started in") == every - 1
    # with overrides, every study is checked against them; one that cannot be composed here is named
    code, out, err = status(capsys, *cell, "--uri", uri)
    assert code == 1  # fig9_residual's cell failed: left to run; the others' cells missing
    assert "Received data.path='data'" in err and "not checked here (see the reasons above): seed_finetune" in err
    assert out.count("study '") == every - 1 and "study 'seed_finetune'" not in out


def test_status_finds_the_users_own_sweep_by_the_command_it_recorded(tmp_path, capsys):
    from xablate.tracking.store import open_experiment

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client, experiment_id = open_experiment(uri, "default")
    client.create_run(experiment_id, run_name="default: act", tags={
        "xablate.role": "sweep", "xablate.overrides": f"intermediate_act=relu,none debug=default tracking.uri={uri}"})
    cfg = compose_job(["intermediate_act=relu", "debug=default", "train.save_model=false", f"tracking.uri={uri}"])
    with pytest.raises(RuntimeError, match="stopped by the test"):
        train(cfg, RunContext(output_dir=tmp_path / "job", callbacks=[StopBeforeTraining()]))
    (run,) = runs_of(uri, "default", role="job")
    client.set_terminated(run.info.run_id, status="FINISHED")
    for arguments in ([], ["--study", "default"]):
        code, out, err = status(capsys, *arguments, "--uri", uri)
        assert code == 1, err  # intermediate_act=none is left to run
        assert f"study 'default' in {uri}: 2 cells" in out, out
        assert "done: 1  diverged: 0  running: 0  failed: 0  missing: 1" in out
        assert "python run.py -m debug=default study=default" in out and "intermediate_act=none" in out
    code, out, err = status(capsys, "--study", "mine", "--uri", uri)
    assert code == 2 and "or one with a sweep in" in err and "(default)" in err
    assert "xablate status intermediate_act=relu,elu,none" in err


def test_a_crossed_study_typed_down_to_one_cell_prints_one_command():
    """A study crossed at its tuned rate, every swept key fixed on the command line: its cells (one per tuned
    rate) are one job, so status prints that one command (it used to fail deduplicating on no keys)."""
    import pandas as pd

    from xablate.analysis.status import StudyStatus, format_status

    cells = pd.DataFrame([{"optim.learning_rate": lr, "state": state, "run_id": "", "reason": ""}
                          for lr, state in ((0.001, "done"), (0.003, "missing"))])
    status = StudyStatus("s", "sqlite:///x.db", ["experiment=s", "seed=0"], [], cells,
                         crossed="optim.learning_rate")
    assert status.commands() == ["python run.py -m experiment=s seed=0"]
    assert "missing: 1" in format_status(status)
    both = StudyStatus("s", "sqlite:///x.db", ["experiment=s"], ["seed"],
                       cells.assign(seed="0").pipe(lambda c: pd.concat([c, c.assign(seed="1", state="done")])),
                       crossed="optim.learning_rate")
    assert both.commands() == ["python run.py -m experiment=s seed=0"]  # seed 1's job is done
