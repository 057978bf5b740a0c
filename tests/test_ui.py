"""README: `xablate ui` opens the store in the MLflow UI on 127.0.0.1 — started here through the installed console
script on a free port, asked for the store's experiments, then stopped."""

from helpers import ServedUI
from xablate.tracking.store import EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND, open_experiment
import pytest  # noqa: E402

pytestmark = pytest.mark.slow  # starts run.py or trains for many seconds: the full suite's tier


def test_xablate_ui_serves_the_store_and_tags_its_experiments_for_training(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client, experiment_id = open_experiment(uri, "served_by_ui")
    client.delete_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG)  # as a store from before the tag existed
    ui = ServedUI(uri)
    try:
        experiments = {e["name"]: e for e in ui.api("experiments/search", max_results=100)["experiments"]}
        assert "served_by_ui" in experiments  # this store, not another
        tags = {t["key"]: t["value"] for t in experiments["served_by_ui"].get("tags", [])}
        assert tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING_KIND  # set again by `xablate ui`
    finally:
        ui.stop()
    output = ui.output()
    assert f"xablate: MLflow UI for {uri} at {ui.base}" in output
    assert f"{ui.base}/#/experiments?workflowType=machine_learning" in output
