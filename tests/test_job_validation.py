"""A bad setting fails before data loads or any MLflow run starts, naming the setting, value and allowed."""

import pytest
from mlflow import MlflowClient

from helpers import run_py, sqlite_uri

CASES = [
    ("intermediate_act=swishy", "Received intermediate_act='swishy'; allowed: none"),
    ("segments=0", 'Received segments=0; allowed: an integer >= 1 or "depthwise"'),
    ("segments=2.5", "Received segments=2.5 (float)"),
    ("model=huge", "Could not find 'model/huge'"),
    ("+model.preset_size=3", "Received unknown model argument(s) ['preset_size']"),
    ("data.source=mnist", "Received data.source='mnist'; allowed: digits, cifar10, cifar100, folder, tfds"),
    ("optim.optimizer=lamb", "Received optim.optimizer='lamb'; allowed: sgd, adam, rmsprop"),
    ("train.epochs=0", "Received train.epochs=0; allowed: an integer >= 1"),
    ("train.batch_size=-8", "Received train.batch_size=-8; allowed: an integer >= 1"),
    ("data=folder data.path=/no/such/folder", "Received data.path='/no/such/folder'; allowed: a folder holding"),
]


@pytest.mark.parametrize("override, message", CASES)
def test_bad_setting_fails_before_any_run(tmp_path, override, message):
    uri = sqlite_uri(tmp_path)
    proc = run_py("debug=default", f"tracking.uri={uri}", *override.split(), cwd=tmp_path, timeout=300)
    assert proc.returncode != 0
    assert message in proc.stderr
    client = MlflowClient(uri)
    experiments = client.search_experiments()
    assert sum(len(client.search_runs([e.experiment_id])) for e in experiments) == 0
