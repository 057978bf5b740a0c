"""Studies are data: every experiments/*.yaml parses into a study the analysis can read, its grid expands as
Hydra's sweeper would, and a bad analysis block is refused with the file, the setting and what is allowed."""

import re

import pytest

from xablate.analysis.status import grid_jobs
from xablate.studies import Claim, declared_studies, load_study, parse_study
from xablate.sweeps import excluding, expand, swept_keys


@pytest.mark.parametrize("name", declared_studies())
def test_every_declared_study_parses_and_its_claims_name_its_axes(name):
    study = load_study(name)
    assert study.declared and study.title != name and study.axes
    # a sequential study's sweep adds the seeds up to its last look (the staged sweeper does, as here)
    seeds = [f"seed=range({study.sequential.looks[-1]})"] if study.sequential else []
    base, keys, jobs = grid_jobs([f"experiment={name}", *seeds])
    assert keys == [*study.axes, "seed"]  # what the file declares is what its sweep varies
    assert len(jobs) >= 2 * 10  # at least two variants x ten seeds
    for claim in study.claims:
        for variant in (claim.variant, *claim.others):
            assert set(variant) <= set(study.axes)


def test_the_paper_studies_claims_as_the_paper_makes_them():
    fig10 = load_study("fig10_intermediate_act")
    assert [(c.kind, c.variant, c.others, c.metric) for c in fig10.claims] == [
        ("better", {"intermediate_act": "none"}, [{"intermediate_act": "elu"}, {"intermediate_act": "relu"}],
         "test_accuracy"),
        ("better", {"intermediate_act": "none"}, [{"intermediate_act": "elu"}, {"intermediate_act": "relu"}],
         "train_loss_auc")]
    spectrum = load_study("spectrum")
    assert spectrum.claims == [Claim(spectrum.claims[0].text, "no_worse", {"segments": "depthwise"},
                                     [{"segments": 4}], "test_accuracy", 0.01)]
    assert load_study("a_sweep_nobody_declared").declared is False


@pytest.mark.parametrize("block, message", [
    ({"metric": "f1"}, "Received analysis.metric='f1'"),
    ({"axes": "residual"}, "Received analysis.axes='residual' in experiments/s.yaml; allowed: a list of config keys"),
    ({"claims": [{"claim": "x", "better": True, "no_worse": True, "than": [False]}]}, "allowed: exactly one of better"),
    ({"claims": [{"claim": "x", "better": True}]}, "Received than=None for the claim 'x'"),
    ({"claims": [{"claim": "x", "no_worse": True, "than": [False]}]}, "Received no margin for the no_worse claim 'x'"),
    ({"claims": [{"claim": "x", "equivalent": [True, False]}]}, "Received no margin for the equivalent claim 'x'"),
    ({"claims": [{"claim": "x", "equivalent": [True, False], "margin": -0.01}]}, "Received margin=-0.01 for the "
                                                                                  "claim 'x'"),
    ({"claims": [{"claim": "x", "no_worse": True, "than": [False], "margin": 0}]}, "Received margin=0 for the claim"),
    ({"claims": [{"claim": "x", "equivalent": [True]}]}, "Received than=None for the claim 'x'"),
    ({"claims": [{"claim": "x", "better": True, "than": [False], "smallest_effect": 0}]},
     "Received smallest_effect=0 for the better claim 'x'"),
    ({"claims": [{"claim": "x", "no_worse": True, "than": [False], "margin": 0.01, "smallest_effect": 0.01}]},
     "Received smallest_effect=0.01 for the no_worse claim 'x'"),
    ({"claims": [{"claim": "x", "better": True, "than": [False], "metric": "auc"}]}, "Received metric='auc'"),
    ({"axes": ["a", "b"], "claims": [{"claim": "x", "better": 1, "than": [2]}]}, "the study has 2 axes"),
    # a closed schema: a typo is refused with the nearest key, not read as a default
    ({"baselin": {"residual": True}}, "Received an unknown key analysis.baselin={'residual': True} in "
                                      "experiments/s.yaml; did you mean baseline?"),
    ({"claimz": []}, "unknown key analysis.claimz=[] in experiments/s.yaml; did you mean claims?"),
    ({"claims": [{"claim": "x", "metrc": "train_loss_auc", "better": True, "than": [False]}]},
     "unknown key the claim 'x':.metrc='train_loss_auc' in experiments/s.yaml; did you mean metric?"),
    ({"claims": {"claim": "x"}}, "Received analysis.claims={'claim': 'x'}"),
    # margins finite and positive; a variant never compared with itself
    ({"claims": [{"claim": "x", "no_worse": True, "than": [False], "margin": float("inf")}]},
     "Received margin=inf for the claim 'x' in experiments/s.yaml; allowed: a finite number > 0"),
    ({"claims": [{"claim": "x", "equivalent": [True, False], "margin": float("nan")}]}, "Received margin=nan"),
    ({"claims": [{"claim": "x", "better": True, "than": [False], "smallest_effect": float("inf")}]},
     "Received smallest_effect=inf"),
    ({"claims": [{"claim": "x", "better": True, "than": [False, True]}]},
     "Received the claim 'x' in experiments/s.yaml comparing residual=true with itself; allowed: distinct variants"),
    ({"claims": [{"claim": "x", "better": True, "than": [False, {"residual": "false"}]}]},
     "comparing residual=false with itself"),
    ({"claims": [{"claim": "x", "equivalent": ["none", "none"], "margin": 0.01}]}, "comparing residual=none with "),
])
def test_a_bad_analysis_block_is_refused(block, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_study("s", {"analysis": {"axes": ["residual"], **block}}, where="experiments/s.yaml")


def test_an_equivalence_claim_reads_as_a_pair_or_against_a_list():
    pair = parse_study("s", {"analysis": {"axes": ["act"], "claims": [
        {"claim": "x", "equivalent": ["none", "elu"], "margin": 0.01},
        {"claim": "y", "equivalent": "none", "than": ["elu", "relu"], "margin": 0.02},
        {"claim": "z", "better": "none", "than": ["elu"], "margin": 0.01, "smallest_effect": 0.005}]}})
    assert [(c.kind, c.variant, c.others, c.margin, c.smallest_effect) for c in pair.claims] == [
        ("equivalent", {"act": "none"}, [{"act": "elu"}], 0.01, None),
        ("equivalent", {"act": "none"}, [{"act": "elu"}, {"act": "relu"}], 0.02, None),
        ("better", {"act": "none"}, [{"act": "elu"}], 0.01, 0.005)]


def test_sweep_expansion_matches_hydras_grammar():
    assert expand({"seed": "0,1"}, ["a=x,y", "b=1"]) == [["seed=0", "a=x", "b=1"], ["seed=0", "a=y", "b=1"],
                                                          ["seed=1", "a=x", "b=1"], ["seed=1", "a=y", "b=1"]]
    assert swept_keys({"seed": "range(3)"}, ["+model.width_multiplier=0.25,0.5", "a=1"]) == [
        "seed", "model.width_multiplier"]
    assert swept_keys({"seed": "0,1"}, ["seed=4"]) == []  # a plain value on the command line wins
    with pytest.raises(ValueError, match="Received the sweep lr=interval"):
        expand({}, ["lr=interval(0.1,1)"])


def test_the_tuned_fig10_declares_its_stages_and_keeps_the_tuned_key_off_its_axes():
    from xablate.staging import PilotSpec, TuneSpec

    study = load_study("fig10_tuned")
    assert study.axes == ["intermediate_act"]
    assert study.tune == TuneSpec(key="optim.learning_rate", values=[3.0e-4, 1.0e-3, 3.0e-3], seeds=1, budget={},
                                  metric="final_val_accuracy", epochs_fraction=0.35)
    assert study.pilot == PilotSpec(seeds=1, budget={}, epochs_fraction=0.25)
    with pytest.raises(ValueError, match="with the tuned key 'optim.learning_rate'"):
        parse_study("s", {"analysis": {"axes": ["optim.learning_rate"]},
                          "hydra": {"sweeper": {"tune": {"key": "optim.learning_rate", "values": [1, 2]}}}})


@pytest.mark.parametrize("declared, arguments", [
    ({"seed": "0,1"}, ["a=x,y", "b=1"]),
    ({"seed": "range(3)", "segments": "1,4,depthwise"}, ["intermediate_act=relu,elu", "+model.x=1,2"]),
    ({}, ["a=1,2", "b=3", "a=5,6"]),  # a later override of a key replaces the earlier one
    ({"seed": "0,1"}, ["seed=4", "residual=true,false"]),
])
def test_the_grid_is_the_one_hydras_basic_sweeper_makes(declared, arguments):
    """xablate.sweeps.expand stands in for Hydra's private BasicSweeper.split_arguments (the staged sweeper and
    `xablate status` use it): pinned here against Hydra's own, job for job."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides([*(f"{k}={v}" for k, v in declared.items()), *arguments])
    [hydras] = BasicSweeper.split_arguments(parsed, None)
    assert expand(declared, arguments) == [list(job) for job in hydras]


@pytest.mark.parametrize("overrides, message", [
    # a sweep typed on the command line reaches the callback as the sweeper's params (a=1,2 does not compose)
    (["experiment=fig10_intermediate_act", "hydra.sweeper.params.intermediate_act='none,gelu'"],
     "naming intermediate_act=elu, a variant neither this sweep nor the study's grid makes; allowed: "
     "intermediate_act in gelu, none"),
    (["experiment=fig9_residual", "hydra.sweeper.params.residual=true"], "naming residual=false, a variant neither"),
    (["experiment=spectrum_matched", "hydra.sweeper.params.segments='1,depthwise'"], "naming segments=4"),
    (["experiment=fig10_intermediate_act", "+analysis.claims=[{claim: x, equivalent: [none, elu]}]"],
     "Received no margin for the equivalent claim 'x'"),
    # a tuned study's search: refused by the same callback, before its parent run or optuna.db exists
    (["experiment=fig9_tuned", "hydra.sweeper.tune.metric=test_accuracy"],
     "Received hydra.sweeper.tune.metric='test_accuracy'; allowed: final_val_accuracy, best_val_accuracy"),
    (["experiment=fig9_tuned", "hydra.sweeper.tune.pruner=patient"],
     "Received hydra.sweeper.tune.pruner='patient'; allowed: none, median, successive_halving, hyperband"),
    (["experiment=fig9_tuned", "hydra.sweeper.tune.trials=3"],
     "Received hydra.sweeper.tune.trials=3; allowed: more than startup=4"),
    (["experiment=fashion_fig9_r2", "hydra.sweeper.exclude=[{residual:true,model.mach:params}]"],
     "with model.mach='params'; allowed: a key the sweep varies (model.match, residual)"),
])
def test_a_claim_the_sweep_cannot_test_is_refused_before_the_parent_run(tmp_path, capsys, overrides, message):
    from xablate.config import compose_job
    from xablate.tracking.hydra_callback import refuse_unknown_keys

    cfg = compose_job([*overrides, f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}"], hydra=True)
    with pytest.raises(SystemExit) as exit_:
        refuse_unknown_keys(cfg)
    assert exit_.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.parametrize("overrides", [
    ["experiment=fig10_intermediate_act"], ["experiment=fig9_residual", "hydra.sweeper.params.seed='0,1'"],
    ["experiment=fig10_intermediate_act", "hydra.sweeper.params.intermediate_act=none", "analysis.claims=[]"],
    ["experiment=fig9_residual", "residual=false"],  # completes part of the study (status prints such commands)
    ["experiment=spectrum_matched"], ["experiment=fig10_tuned"], ["experiment=spectrum"], ["experiment=fig9_tuned"],
    ["experiment=fashion_fig9"], ["experiment=fashion_fig10"], ["experiment=fashion_spectrum_matched"],
    ["experiment=fashion_fig9_r2"], ["experiment=fashion_fig10_r2"], ["experiment=fashion_spectrum_matched_r2"],
    ["experiment=fashion_fig9_r2", "residual=false"]])
def test_every_committed_study_and_an_exploratory_subset_pass_the_claim_check(overrides):
    from xablate.config import compose_job
    from xablate.tracking.hydra_callback import refuse_unknown_keys

    refuse_unknown_keys(compose_job(overrides, hydra=True))


def test_a_yaml_error_in_one_study_file_is_one_line_and_stops_nothing_about_another(tmp_path, monkeypatch):
    import xablate.studies as studies

    (tmp_path / "broken.yaml").write_text("study: broken\nanalysis:\n  title: [unclosed\n  axes: [a]\n")
    (tmp_path / "fine.yaml").write_text("analysis:\n  axes: [residual]\n  claims:\n    - claim: x\n"
                                        "      better: true\n      than: [false]\n")
    (tmp_path / "named.yaml").write_text("study: other_name\nanalysis:\n  title: Named\n")
    monkeypatch.setattr(studies, "experiments_dir", lambda: tmp_path)
    assert [c.variant for c in load_study("fine").claims] == [{"residual": True}]
    assert load_study("other_name").title == "Named"  # found by its study: name past the broken file
    with pytest.raises(ValueError) as error:
        load_study("broken")
    message = str(error.value)
    assert message.startswith(f"{tmp_path / 'broken.yaml'}:4: not valid YAML (") and "\n" not in message


def test_an_excluded_cell_is_dropped_from_the_cross_and_a_typo_in_it_is_refused():
    declared = {"residual": "true,false", "model.match": "null,params"}
    grid = expand(declared, ["seed=0,1"])
    kept = excluding(grid, [{"residual": True, "model.match": "params"}], expand(declared, []))
    assert len(grid) == 8 and len(kept) == 6
    assert not [job for job in kept if "residual=True" in job and "model.match=params" in job]
    assert [job for job in kept if "residual=False" in job and "model.match=params" in job]  # the other arm stays
    assert excluding(grid, None) == grid
    partial = expand(declared, ["residual=false", "seed=0"])  # part of the study: the entry is checked on the grid
    assert excluding(partial, [{"residual": True, "model.match": "params"}], expand(declared, [])) == partial
    for entry, message in [({"residual": True, "model.mach": "params"}, "with model.mach='params'; allowed: a key "
                             "the sweep varies"),
                           ({"residual": True, "model.match": "flops"}, "with model.match='flops'; allowed: "
                            "model.match in null, params"),
                           ("residual=true", "allowed: a mapping of swept keys")]:
        with pytest.raises(ValueError, match=re.escape(message)):
            excluding(grid, [entry], expand(declared, []))
    with pytest.raises(ValueError, match="every job hydra.sweeper.exclude drops"):
        excluding(expand(declared, ["residual=true", "model.match=params"]), [{"residual": True, "model.match": "params"}],
                  expand(declared, []))


def test_yamls_null_and_the_string_none_are_different_values_in_a_claim():
    from xablate.studies import _as_override

    assert _as_override(None) == "null" and _as_override("null") == "null"
    assert _as_override("none") == "none" and _as_override(True) == "true" and _as_override("5e-05") == "5e-05"


def test_the_round_2_fig9_runs_three_arms_matched_to_the_residual_model():
    study = load_study("fashion_fig9_r2")
    base, keys, jobs = grid_jobs(["experiment=fashion_fig9_r2", "seed=range(20)"])
    arms = {tuple(o for o in job if o.startswith(("residual=", "model.match="))) for job in jobs}
    assert keys == ["residual", "model.match", "seed"] and len(jobs) == 60
    assert arms == {("residual=True", "model.match=null"), ("residual=False", "model.match=null"),
                    ("residual=False", "model.match=params")}
    assert study.baseline == {"residual": True, "model.match": None}
    assert [c.others for c in study.claims][-1] == [{"residual": False, "model.match": None},
                                                    {"residual": False, "model.match": "params"}]
