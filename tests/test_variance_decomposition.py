"""A variance decomposition whose shares are known in closed form: with every run's value the sum of one effect
per source (no noise), each source's component is the sample variance of its effects and the residual is zero;
noise added lands in the residual."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from xablate.analysis.variance import RESIDUAL, decomposition, variance_table

EFFECTS = {"init": [0.00, 0.02, 0.04], "order": [0.0, 0.01, -0.01], "split": [0.0, 0.0, 0.03]}


def _crossed(noise: float = 0.0, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [{"init": i, "order": o, "split": s,
             "value": 0.85 + EFFECTS["init"][i] + EFFECTS["order"][o] + EFFECTS["split"][s] + rng.normal(0, noise)}
            for i, o, s in itertools.product(range(3), repeat=3)]
    return pd.DataFrame(rows)


def test_without_noise_each_component_is_its_effects_variance():
    table = decomposition(_crossed(), ["init", "order", "split"]).set_index("source")
    expected = {k: np.var(v, ddof=1) for k, v in EFFECTS.items()}
    for source, value in expected.items():
        assert table.loc[source, "component"] == pytest.approx(value, abs=1e-12)
    assert table.loc[RESIDUAL, "component"] == pytest.approx(0.0, abs=1e-12)
    total = sum(expected.values())
    assert table.loc["init", "share"] == pytest.approx(expected["init"] / total)
    assert table["share"].sum() == pytest.approx(1.0) and (table["runs"] == 27).all()


def test_noise_lands_in_the_residual_and_a_source_without_effect_near_zero():
    table = decomposition(_crossed(noise=0.01, seed=3).assign(value=lambda d: d["value"]), ["init", "order", "split"])
    table = table.set_index("source")
    assert table.loc[RESIDUAL, "component"] == pytest.approx(0.01 ** 2, rel=0.5)
    data = _crossed(noise=0.01, seed=4)
    data["value"] -= [EFFECTS["order"][o] for o in data["order"]]  # order: no effect at all
    flat = decomposition(data, ["init", "order", "split"]).set_index("source")
    assert flat.loc["order", "component"] < 0.2 * flat.loc["init", "component"]


def _crossed_selection(tmp_path):
    """The crossed design logged as runs, each with its sources' seeds recorded as the trainer records them
    (one sweep per cell), selected as a study that declares the decomposition."""
    from made_up_store import log_study
    from xablate.analysis.store import runs_frame, select_runs
    from xablate.studies import parse_study

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    for _, row in _crossed().iterrows():
        cell = {"init": int(row["init"]), "order": int(row["order"]), "split": int(row["split"])}
        log_study(uri, "var", {"none": [row["value"]]}, extra_params={
            "train.init_seed": str(cell["init"]), "data.order_seed": str(cell["order"]),
            "data.split_seed": str(cell["split"]), **{f"seeds.{k}": str(v) for k, v in cell.items()}})
    study = parse_study("var", {"analysis": {"axes": ["intermediate_act"],
                                             "variance": {"sources": ["init", "order", "split"]}}})
    return uri, select_runs(runs_frame(uri, study="var"), study)


def test_a_study_declares_its_sources_and_gets_a_row_per_variant_and_source(tmp_path):
    _, selection = _crossed_selection(tmp_path)
    assert len(selection.runs) == 27  # each cell its own replicate: none dropped as a duplicate
    table = variance_table(selection).set_index("source")
    assert table.loc["init", "component"] == pytest.approx(np.var(EFFECTS["init"], ddof=1), abs=1e-9)
    assert table.loc["split", "levels"] == 3


@pytest.mark.parametrize("block", [{"sources": ["init"]}, {"sources": ["init", "weather"]}, ["init", "order"],
                                   {"sources": ["init", "init"]}])
def test_a_bad_variance_block_is_refused(block):
    from xablate.studies import parse_study

    with pytest.raises(ValueError, match="allowed: {sources: \\[...\\]}, two or more of init, order, split, subsample"):
        parse_study("bad", {"analysis": {"variance": block}})


def test_the_study_figures_draw_each_sources_share(tmp_path):
    from xablate.analysis.report import study_figures
    from xablate.analysis.store import history_frame

    uri, selection = _crossed_selection(tmp_path)
    panel = study_figures(selection, history_frame(uri, selection.runs, axes=selection.axes))["variance"].axes[0]
    widths = [p.get_width() for p in panel.patches]
    expected = {k: np.var(v, ddof=1) for k, v in EFFECTS.items()}
    assert widths[:3] == pytest.approx([expected[k] / sum(expected.values()) for k in ("init", "order", "split")])
