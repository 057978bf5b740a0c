"""A store a command cannot use is refused in one line before anything is read or written: a SQLite file of
another program is left as it was (MLflow would add its ~70 tables to it), a file that is not a database, a store
that does not exist (reading would create it); a plain file path means the SQLite file it names."""

import sqlite3

import pytest

from xablate.cli import main as xablate_main
from xablate.config import compose_job
from xablate.tracking.store import check_reachable, resolve_tracking_uri
from xablate.training.trainer import RunContext, train


def tables(path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_a_plain_path_is_the_sqlite_file_it_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_tracking_uri("results/store/mlflow.db") == f"sqlite:///{tmp_path / 'results/store/mlflow.db'}"
    assert resolve_tracking_uri(str(tmp_path / "a.db")) == f"sqlite:///{tmp_path / 'a.db'}"
    assert resolve_tracking_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"


def test_a_foreign_sqlite_file_is_refused_and_left_as_it_was(tmp_path):
    path = tmp_path / "notes.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE notes (body TEXT)")
    before = path.read_bytes()
    uri = f"sqlite:///{path}"
    with pytest.raises(ValueError, match=r"allowed: an MLflow store, but .*notes.db is another database \(tables: "
                                         r"notes\); it is left as it is"):
        check_reachable(uri)
    with pytest.raises(ValueError, match="is another database"):  # a run refuses it before anything starts
        train(compose_job(["debug=default", f"tracking.uri={uri}"]), RunContext(output_dir=tmp_path / "out"))
    assert tables(path) == {"notes"} and path.read_bytes() == before


def test_a_file_that_is_not_a_database_is_refused(tmp_path, capsys):
    path = tmp_path / "mlflow.db"
    path.write_bytes(b"this is a text file, long enough to have a header........................" * 4)
    with pytest.raises(ValueError, match=r"is not a SQLite database \(file is not a database\)"):
        check_reachable(f"sqlite:///{path}")
    assert xablate_main(["figures", "--uri", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"xablate: Received --uri='sqlite:///{path}'; allowed: an MLflow store") and err.count("\n") == 1


def test_reading_commands_refuse_a_store_that_does_not_exist_and_create_none(tmp_path, capsys):
    missing = tmp_path / "nowhere" / "mlflow.db"
    for command in (["figures", "--out", str(tmp_path / "out")], ["plan", "--study", "s", "--mde", "0.01"]):
        assert xablate_main([*command, "--uri", f"sqlite:///{missing}"]) == 2
        err = capsys.readouterr().err
        assert f"allowed: an existing store ({missing} does not exist)" in err and err.count("\n") == 1
    assert not missing.exists() and not missing.parent.exists()


def test_the_analysis_reads_the_projects_store_not_one_in_the_working_directory(tmp_path, monkeypatch):
    """The notebook's default (no URI): every read goes to the project's store; MLflow's own default would be
    ./mlflow.db in whatever folder the notebook runs from (a stray notebooks/mlflow.db, every claim exploratory)."""
    import pandas as pd

    from xablate.analysis.registration import registrations

    home, cwd = tmp_path / "home", tmp_path / "notebooks"
    home.mkdir(), cwd.mkdir()
    monkeypatch.setenv("XABLATE_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(cwd)
    assert registrations(None, "s", [], pd.DataFrame()) == {}
    assert not (cwd / "mlflow.db").exists() and (home / "mlflow.db").exists()


def test_a_new_store_is_a_copy_of_an_empty_one_at_mlflows_schema(tmp_path, monkeypatch):
    """open_experiment on a store that does not exist copies an empty store MLflow made once (per MLflow version,
    in the cache folder) instead of running MLflow's migrations again: the same tables, the same schema revision,
    the Default experiment where MLflow puts it, and the store usable at once."""
    import sqlite3

    from mlflow import MlflowClient

    from xablate.tracking.store import open_experiment

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    by_mlflow = tmp_path / "by_mlflow.db"
    MlflowClient(f"sqlite:///{by_mlflow}").search_experiments()
    client, experiment_id = open_experiment(f"sqlite:///{tmp_path / 'a' / 'mlflow.db'}", "s")
    templates = list((tmp_path / "cache" / "xablate").glob("mlflow-*-empty.db"))
    assert len(templates) == 1
    open_experiment(f"sqlite:///{tmp_path / 'b' / 'mlflow.db'}", "s")  # the second store: a copy of the same one

    def schema(path):  # a table's lines as a set: MLflow's own migrations order CHECK constraints by hash seed
        with sqlite3.connect(path) as db:
            return (db.execute("SELECT version_num FROM alembic_version").fetchall(),
                    sorted((name, sorted(line.strip(", ") for line in (sql or "").splitlines()))
                           for name, sql in db.execute("SELECT name, sql FROM sqlite_master")),
                    db.execute("SELECT experiment_id, name, artifact_location FROM experiments "
                               "WHERE experiment_id = 0").fetchall())

    made, copied, by_itself = schema(tmp_path / "a" / "mlflow.db"), schema(tmp_path / "b" / "mlflow.db"), schema(by_mlflow)
    for part in range(3):  # revision, every table and index, the Default experiment
        assert made[part] == copied[part] == by_itself[part], part
    assert schema(by_mlflow)[2] == [(0, "Default", str(tmp_path / "mlruns" / "0"))]
    run = client.create_run(experiment_id)
    client.log_metric(run.info.run_id, "loss", 0.5)
    assert client.get_run(run.info.run_id).data.metrics == {"loss": 0.5}
    assert not list((tmp_path / "a").glob(".*partial"))  # nothing half-made left beside it
