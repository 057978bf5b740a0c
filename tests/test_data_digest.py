"""The data a run saw: a source digest that changes with the data, per-split dataset inputs, and the skip/resume
lookup that refuses a finished run made on other data but keeps runs from before digests were recorded."""

from dataclasses import replace

import numpy as np
from mlflow import MlflowClient
from PIL import Image

from xablate.data.digest import DATA_DIGEST_TAG, dataset_inputs, source_digest
from xablate.schema import Data
from xablate.tracking.previous_runs import IDENTITY_TAG, plan_run
from xablate.tracking.store import open_experiment


def image_folder(root, files):
    for relative in files:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((4, 4, 3), 100, np.uint8)).save(path)
    return root


def test_a_folder_digest_changes_with_its_files_not_with_its_place(tmp_path):
    files = ["train/a/1.png", "train/b/1.png", "test/a/1.png", "test/b/1.png"]
    first = source_digest(Data(source="folder", path=str(image_folder(tmp_path / "one", files))))
    same = source_digest(Data(source="folder", path=str(image_folder(tmp_path / "two", files))))
    assert first == same  # names and sizes, wherever the folder is
    image_folder(tmp_path / "two", ["train/a/2.png"])
    assert source_digest(Data(source="folder", path=str(tmp_path / "two"))) != first  # a file added
    (tmp_path / "one" / "test" / "b" / "1.png").write_bytes(b"not the same size")
    assert source_digest(Data(source="folder", path=str(tmp_path / "one"))) != first  # a file rewritten


def test_digits_and_published_sets_have_fixed_digests():
    assert source_digest(Data(source="digits")) == source_digest(Data(source="digits"))
    assert source_digest(Data(source="cifar10")) != source_digest(Data(source="cifar100"))


def test_each_split_is_an_input_whose_digest_follows_its_settings():
    data = Data(source="digits", image_size=16, split_seed=0, test_fraction=0.2)
    inputs = dataset_inputs(data, "d" * 16, {"train": 1293, "validation": 144, "test": 360})
    assert [(i.dataset.name, i.tags[0].value) for i in inputs] == [
        ("digits/train", "train"), ("digits/validation", "validation"), ("digits/test", "test")]
    assert len({i.dataset.digest for i in inputs}) == 3
    other_split = dataset_inputs(replace(data, split_seed=1), "d" * 16, {"test": 360})
    assert other_split[0].dataset.digest != inputs[2].dataset.digest


def test_a_finished_run_on_other_data_is_not_skipped_but_one_without_a_digest_is(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client, experiment = open_experiment(uri, "digests")
    plan = lambda digest: plan_run(client, experiment, "same-config", data_digest=digest, force=False,  # noqa: E731
                                   stale_after_seconds=600)
    run = client.create_run(experiment, tags={IDENTITY_TAG: "same-config", DATA_DIGEST_TAG: "aaaa"})
    client.set_terminated(run.info.run_id, "FINISHED")
    assert plan("aaaa").action == "skip"
    assert plan("bbbb").action == "new"  # same config and path, other data
    client.delete_tag(run.info.run_id, DATA_DIGEST_TAG)  # as a run logged before digests existed
    assert plan("bbbb").action == "skip" and plan("bbbb").run.info.run_id == run.info.run_id


def test_a_moved_store_finds_its_artifacts(tmp_path):
    import shutil

    uri = f"sqlite:///{tmp_path / 'here' / 'mlflow.db'}"
    client, experiment = open_experiment(uri, "moving")
    run = client.create_run(experiment).info.run_id
    (tmp_path / "note.txt").write_text("kept")
    client.log_artifact(run, str(tmp_path / "note.txt"))
    shutil.move(tmp_path / "here", tmp_path / "there")
    moved = f"sqlite:///{tmp_path / 'there' / 'mlflow.db'}"
    open_experiment(moved, "moving")  # what every job and `xablate ui` do first
    client = MlflowClient(moved)
    assert client.get_run(run).info.artifact_uri == f"{(tmp_path / 'there' / 'mlartifacts').as_uri()}/moving/{run}/artifacts"
    (tmp_path / "out").mkdir()
    assert open(client.download_artifacts(run, "note.txt", str(tmp_path / "out"))).read() == "kept"
