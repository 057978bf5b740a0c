"""The config's schema (xablate.schema): every key declared once with its role, typos refused before any store.

- Every field has a role; the identity's lists, the split keys and the reuse key are derived from the roles.
- Every key that any group option or study file composes is declared (a new YAML key must be declared too).
- The model section's keys are the builder's keyword arguments, read without importing Keras.
- The identity of every committed run, recomputed from its params with the derived lists, is its tag.
- `+train.epoch=3` and friends: refused naming the nearest known key, in process and through run.py (single run
  and sweep), before any MLflow store exists.
"""

import hashlib
import inspect
import json
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from helpers import ROOT, run_py, runs_of
from xablate.config import compose_job, flatten
from xablate import schema
from xablate.gate import parse_job
from xablate.data.digest import SPLIT_KEYS
from xablate.tracking.identity import IDENTITY_VERSION, NEUTRAL_DEFAULTS, NON_SEMANTIC, is_semantic, param_value

TYPOS = [("+train.epoch=3", "train.epoch=3", "train.epochs"),
         ("+optim.momentom=0.9", "optim.momentom=0.9", "optim.momentum"),
         ("+data.limit_tran=5", "data.limit_tran=5", "data.limit_train"),
         ("+intermediat_act=relu", "intermediat_act='relu'", "intermediate_act"),
         ("+model.widht_multiplier=0.5", "model.widht_multiplier=0.5", "model.width_multiplier"),
         ("+data.augment.zoon=0.2", "data.augment.zoon=0.2", "data.augment.zoom")]


def composed(*overrides, resolve=True):
    return compose_job(list(overrides), resolve=resolve)


def options(group):
    return sorted(p.stem for p in (ROOT / "conf" / group).glob("*.yaml") if not p.stem.startswith("_"))


def test_every_field_declares_a_role_and_a_neutral_key_its_value():
    declared = schema.declared()
    assert len(declared) == 80
    for name, f in declared.items():
        assert f.metadata["role"] in schema.ROLES, name
        assert ("neutral" in f.metadata) == (f.metadata["role"] == "neutral"), name
    with pytest.raises(ValueError, match="allowed: semantic, neutral, non_semantic"):
        schema.key(1, "maybe")
    with pytest.raises(ValueError, match="declares its neutral value"):
        schema.key(1, "neutral")


def test_the_lists_keyed_by_role_are_derived_from_the_schema():
    builder_at_preset = {k: schema.PRESET for k in schema.builder_keys() if k != "model.head"}
    assert NEUTRAL_DEFAULTS == builder_at_preset | {
        "model.weights": None, "model.head": "avg", "model.match": None, "model.match_residual": None, "data.limit_test": None,
        "data.augment.shear_degrees": None, "data.augment.brightness_mode": "additive",
        # a source's own keys and a schedule's own keys: null on the others, as absent before the typed schema
        **dict.fromkeys(["data.test_fraction", "data.path", "data.name", "data.train_split", "data.validation_split",
                         "data.test_split", "optim.momentum", "optim.schedule.every_epochs",
                         "optim.schedule.every_samples", "optim.schedule.factor", "optim.schedule.at_fractions",
                         "optim.schedule.horizon_epochs"]),
        "train.precise_bn_batches": 0, "train.freeze_base_epochs": 0,
        # each source of variance's own seed: null draws it from the replicate's seed, as before they existed
        "train.init_seed": None, "data.order_seed": None, "data.subsample_seed": None}
    assert {"study", "force", "analysis", "tracking.uri", "tracking.stage", "train.onednn", "train.jit_compile",
            "train.run_eagerly", "data.cache", "data.cache_dir"} <= set(NON_SEMANTIC)
    assert not is_semantic("tracking.heartbeat_seconds") and is_semantic("train.epochs")
    assert set(SPLIT_KEYS) == {"split_seed", "test_fraction", "validation_fraction", "limit_train", "limit_val",
                               "limit_test", "image_size", "train_split", "validation_split", "test_split",
                               "subsample_seed"}
    assert schema.keys_with("graph", "train.") == ("epochs", "batch_size", "precision", "jit_compile")


def test_the_model_keys_are_the_builders_keyword_arguments():
    from xablate.models import build_xception

    live = [name for name in inspect.signature(build_xception).parameters
            if name not in ("residual", "intermediate_act", "segments", "input_shape", "classes")]
    assert schema.builder_keys() == tuple(f"model.{name}" for name in live)


@pytest.mark.parametrize("overrides", [
    [], *[[f"data={o}"] for o in options("data")], *[[f"model={o}"] for o in options("model")],
    *[[f"optim={o}"] for o in options("optim")], *[[f"design={o}"] for o in options("design")],
    *[[f"experiment={o}"] for o in options("experiment")], ["debug=default"],
])
def test_every_composed_key_is_declared(overrides):
    assert schema.unknown_keys(flatten(composed(*overrides, resolve=False))) == []


@pytest.mark.parametrize("override, shown, nearest", TYPOS)
def test_a_typo_is_refused_naming_the_nearest_key(override, shown, nearest):
    with pytest.raises(ValueError, match=rf"^Received an unknown key {shown}; did you mean {nearest}\?"):
        parse_job(composed("debug=default", override))


def test_a_key_nothing_resembles_says_so_and_keys_under_a_free_form_block_pass():
    with pytest.raises(ValueError, match="no known key is close"):
        schema.check_known_keys(flatten({**composed(), "zzz": 1}))
    assert schema.unknown_keys(flatten({**composed(), "analysis": {"anything": {"goes": 1}}})) == []


def test_the_identity_of_every_committed_run_is_recomputed_from_its_params():
    """Golden: the derived lists hash exactly what the hand lists hashed when these runs were made."""
    client = MlflowClient(f"sqlite:///{ROOT / 'results' / 'store' / 'mlflow.db'}")
    known = set(schema.declared()) | set(schema.builder_keys())
    checked = 0
    for experiment in client.search_experiments():
        for run in client.search_runs([experiment.experiment_id], max_results=5000):
            tags = run.data.tags
            if "xablate.identity" not in tags:
                continue
            config = {k: v for k, v in sorted(run.data.params.items()) if k in known and is_semantic(k)
                      and not (k in NEUTRAL_DEFAULTS and v == param_value(NEUTRAL_DEFAULTS[k]))}
            payload = {"version": IDENTITY_VERSION, "backend": tags["xablate.backend"], "config": config}
            assert hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16] == \
                tags["xablate.identity"], run.info.run_id
            checked += 1
    assert checked >= 148


@pytest.mark.slow
@pytest.mark.parametrize("arguments", [
    ["debug=default", "+train.epoch=3"],
    ["-m", "debug=default", "+train.epoch=3", "seed=0,1"],  # in the sweep's base config
    ["-m", "debug=default", "+train.epoch=2,3"],  # only in the sweep's values
])
def test_run_py_refuses_a_typo_in_one_line_before_any_store_exists(tmp_path, arguments):
    proc = run_py(*arguments, f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}", cwd=tmp_path, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("xablate: ")]
    assert len(errors) == 1 and "did you mean train.epochs?" in errors[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "mlflow.db").exists()


def test_checking_keys_imports_no_keras():
    import subprocess

    code = ("import sys; from xablate import schema; schema.check_override_keys(['+train.epochs=3'], {'model'}); "
            "schema.builder_keys(); print(sorted(m for m in ('keras', 'tensorflow', 'mlflow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(ROOT), timeout=120)
    assert out.stdout.strip() == "[]", out.stderr[-2000:]


@pytest.mark.slow
def test_a_bad_tuning_stage_is_refused_before_the_sweeps_parent_exists(tmp_path):
    proc = run_py("-m", "experiment=fig10_tuned", "debug=default", "hydra.sweeper.tune.values=[]",
                  f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}", cwd=tmp_path, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "xablate: Received hydra.sweeper.tune.values=[]; allowed: a list of at least two distinct values." \
        in proc.stderr
    assert not (tmp_path / "mlflow.db").exists()
    # a tuning seed band that meets the study's own seeds (fashion_fig9_r2 runs seeds 0..19 by its last look)
    proc = run_py("-m", "experiment=fashion_fig9_r2", "debug=default", "hydra.sweeper.tune.seeds_from=5",
                  f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}", cwd=tmp_path, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "xablate: Received hydra.sweeper.tune.seeds_from=5; allowed: an integer above every seed the study's " \
           "runs use (they reach 19; the tuning's seeds 5..8 would repeat seed 5)." in proc.stderr
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.slow
def test_run_py_help_opens_with_the_apps_own_help_listing_every_study_and_group_option(tmp_path):
    proc = run_py("--help", cwd=tmp_path, timeout=120)
    assert proc.returncode == 0
    head, _, rest = proc.stdout.partition("== Config ==")
    assert head.startswith("xablate: architecture ablations of the Xception family.")
    assert "== Hydra ==" in rest and "--multirun" in rest  # Hydra's own flags follow
    studies = head.split("Studies (python run.py -m experiment=NAME): ", 1)[1].split("Groups", 1)[0]
    assert sorted(s.strip() for s in studies.replace("\n", " ").split(",")) == options("experiment")
    groups = " ".join(head.split("Groups (GROUP=OPTION): ", 1)[1].split("Any key", 1)[0].split())
    listed = {g.split(": ")[0]: sorted(g.split(": ")[1].split(", ")) for g in groups.split(" | ")}
    assert listed == {group: options(group) for group in ("model", "data", "optim", "design", "debug",
                                                          "hydra/launcher")}
    assert "_common" not in head


def test_the_model_group_holds_every_builder_argument_at_preset():
    model = composed()["model"]
    builder = [k.split(".", 1)[1] for k in schema.builder_keys()]
    assert list(model) == ["preset", "weights", "head", "match", "match_residual", *[k for k in builder if k != "head"]]
    assert {model[k] for k in builder if k != "head"} == {schema.PRESET}
    assert "preset" not in str(parse_job(composed(), sections=False).cfg["model"].values())
    assert schema.model_settings({"preset": "mini", "width_multiplier": 0.5, "stem": "preset"}) == {
        "preset": "mini", "width_multiplier": 0.5}


@pytest.mark.slow
def test_a_builder_argument_sweeps_without_plus_through_run_figures_and_status(tmp_path):
    """The model section follows the builder: `model.width_multiplier=a,b` runs, draws and reports."""
    from xablate.cli import main as xablate_main

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    sweep = ["debug=default", "model.width_multiplier=0.0625,0.125", f"tracking.uri={uri}"]
    proc = run_py("-m", *sweep, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = runs_of(uri, "default", role="job")
    assert sorted(r.data.params["model.width_multiplier"] for r in runs) == ["0.0625", "0.125"]
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert not [k for r in runs for k, v in r.data.params.items() if v == schema.PRESET]  # unset: not logged
    assert xablate_main(["figures", "--uri", uri, "--out", str(tmp_path / "results")]) == 0
    table = (tmp_path / "results" / "default" / "table.csv").read_text()
    assert "model.width_multiplier=0.0625" in table and "model.width_multiplier=0.125" in table
    assert xablate_main(["status", *sweep[:-1], f"tracking.uri={uri}"]) == 0  # every cell done


def test_the_config_reference_in_docs_is_generated_from_the_schema():
    """docs/config.md lists every declared key and builder argument; regenerate: python -m xablate.schema"""
    text = (ROOT / "docs" / "config.md").read_text()
    assert text == schema.reference_markdown(), "docs/config.md is stale: python -m xablate.schema > docs/config.md"
    for name in [*schema.declared(), *schema.builder_keys()]:
        assert f"| `{name}` |" in text


def test_numbers_keep_the_form_they_were_typed_in_so_identities_do_not_move():
    """A float annotation would turn learning_rate=1 into 1.0 (and its identity with it): numbers stay as typed;
    a source's own keys, null elsewhere, enter neither the identity nor the run's configuration group."""
    from xablate.config import compose_job
    from xablate.tracking.identity import semantic_params

    cfg = compose_job(["optim.learning_rate=1", "optim.weight_decay=0", "train.diverge_factor=10",
                       "optim.schedule.every_samples=3e6"])
    assert (cfg["optim"]["learning_rate"], cfg["optim"]["weight_decay"], cfg["train"]["diverge_factor"]) == (1, 0, 10)
    assert semantic_params(flatten(cfg))["optim.learning_rate"] == "1" and cfg["optim"]["schedule"]["every_samples"] == 3e6
    cifar = semantic_params(flatten(compose_job(["data=cifar10"])))
    assert not {"data.test_fraction", "data.path", "data.train_split", "optim.momentum"} & set(cifar)
