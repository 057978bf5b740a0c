"""Run identities: which keys change them and which do not, and that they survive an upgrade that adds a key at
its neutral default (a finished run is still skipped)."""

import copy
from pathlib import Path

import pytest

from helpers import sqlite_uri
from xablate.config import compose_job, flatten
from xablate.tracking import identity
from xablate.tracking.identity import NEUTRAL_DEFAULTS, is_semantic, run_identity

# Every key that enters the hash today. A new config key must either join this list on purpose (its default
# changes what runs compute, so identities change with it) or declare its neutral value in NEUTRAL_DEFAULTS.
HASHED_KEYS = {
    "backend", "data.augment.brightness", "data.augment.enabled", "data.augment.horizontal_flip",
    "data.augment.rotation_degrees", "data.augment.shear", "data.augment.shift", "data.augment.zoom",
    "data.image_size", "data.limit_train", "data.limit_val", "data.pipeline", "data.source", "data.split_seed",
    "data.test_fraction", "data.validation_fraction", "intermediate_act", "model.preset", "optim.dropout",
    "optim.ema_momentum", "optim.learning_rate", "optim.name", "optim.optimizer", "optim.schedule.kind",
    "optim.weight_decay", "residual", "seed", "segments", "train.batch_size", "train.data_parallel",
    "train.diverge_factor", "train.epochs", "train.precision",
}


def composed(*overrides):
    return compose_job(overrides)


def test_every_semantic_key_is_hashed_or_declared_neutral():
    keys = {k for k in flatten(composed()) if is_semantic(k)}
    undeclared = keys - HASHED_KEYS - set(NEUTRAL_DEFAULTS)
    assert not undeclared, (f"new config key(s) {sorted(undeclared)}: declare the value that behaves as before "
                            f"in xablate.tracking.identity.NEUTRAL_DEFAULTS, or add them to HASHED_KEYS here if "
                            f"their default changes results")


@pytest.mark.parametrize("override", ["seed=1", "intermediate_act=relu", "optim.learning_rate=0.01",
                                      "data.split_seed=3", "train.precise_bn_batches=2", "data.limit_test=10"])
def test_what_changes_a_result_changes_the_identity(override):
    assert run_identity(composed(override), "tensorflow") != run_identity(composed(), "tensorflow")


@pytest.mark.parametrize("override", ["study=other", "tracking.uri=sqlite:///x.db", "train.verbose=0",
                                      "train.save_model=false", "train.checkpoint=false", "force=true",
                                      "data.cache=none", "train.jit_compile=true"])
def test_where_results_go_and_how_much_is_printed_do_not(override):
    assert run_identity(composed(override), "tensorflow") == run_identity(composed(), "tensorflow")


def test_a_key_at_its_neutral_default_is_left_out_of_the_hash():
    cfg = composed()
    without = copy.deepcopy(cfg)
    del without["train"]["precise_bn_batches"]  # a config from before the key existed
    at_neutral = copy.deepcopy(cfg)
    at_neutral["train"]["precise_bn_batches"] = NEUTRAL_DEFAULTS["train.precise_bn_batches"]
    assert run_identity(at_neutral, "tensorflow") == run_identity(without, "tensorflow")
    assert run_identity(cfg, "tensorflow") != run_identity(without, "tensorflow")  # its real default is not neutral


@pytest.mark.slow
def test_a_finished_run_is_still_skipped_after_an_upgrade_adds_a_key(tmp_path, monkeypatch):
    from xablate import schema
    from xablate.training.trainer import RunContext, train

    cfg = composed("debug=default", "train.epochs=1", "train.save_model=false", f"tracking.uri={sqlite_uri(tmp_path)}",
                   f"train.checkpoint_dir={tmp_path / 'ckpt'}")
    first = train(cfg, RunContext(output_dir=Path(tmp_path / "a")))
    assert first.status == "FINISHED"
    # the next version adds train.new_knob, whose default False behaves as before
    monkeypatch.setitem(identity.NEUTRAL_DEFAULTS, "train.new_knob", False)
    declared = schema.declared()  # ... declared in the schema (a key nobody declared is refused)
    monkeypatch.setattr(schema, "declared", lambda: {**declared, "train.new_knob": declared["train.checkpoint"]})
    upgraded = copy.deepcopy(cfg)
    upgraded["train"]["new_knob"] = False
    again = train(upgraded, RunContext(output_dir=Path(tmp_path / "b")))
    assert (again.status, again.run_id) == ("SKIPPED", first.run_id)
    upgraded["train"]["new_knob"] = True  # away from its neutral value it is another computation
    assert run_identity(upgraded, "tensorflow") != run_identity(cfg, "tensorflow")
