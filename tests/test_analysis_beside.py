"""`analysis.beside`: a study's trend figure draws another study on the same axis (the matched spectrum beside the
unmatched one), its sidecar lists both studies' runs, and a new run of either makes it stale. Made-up stores
whose means are known."""

import json

import numpy as np
import pytest

from made_up_store import log_study
from xablate.analysis import beside_selection, selected_runs
from xablate.analysis.report import stale_outputs, write_study
from xablate.studies import parse_study

MATCHED = {2: [0.80, 0.84], 4: [0.86, 0.88], "depthwise": [0.90, 0.94]}
UNMATCHED = {2: [0.70, 0.74], 4: [0.76, 0.78], "depthwise": [0.90, 0.92]}


def curves(values: dict) -> dict:
    return {v: {seed: [1.0, 0.5] for seed in range(len(per_seed))} for v, per_seed in values.items()}


def sizes(effective: dict, params: dict) -> dict:
    """Per segments value: two layers that both used `effective[value]` segments, the model's parameters, and
    what a matched run logs beside them (its width and its count against the target: derived, not config)."""
    return {v: {"segments.block1_sepconv1": str(effective[v]), "segments.block2_sepconv1": str(effective[v]),
                "model.total_params": str(params[v]), "builder.width_multiplier": str(params[v] / 4000),
                "match.achieved": str(params[v]), "match.relative_error": str(params[v] / 1000 - 1)}
            for v in effective}


@pytest.fixture
def uri(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    log_study(uri, "spectrum_matched", MATCHED, axis="segments", losses=curves(MATCHED),
              value_params=sizes({2: 2, 4: 4, "depthwise": 32}, {2: 1010, 4: 990, "depthwise": 1000}))
    return uri


def add_unmatched(uri):
    return log_study(uri, "spectrum", UNMATCHED, axis="segments", losses=curves(UNMATCHED),
                     value_params=sizes({2: 2, 4: 4, "depthwise": 16}, {2: 4000, 4: 2500, "depthwise": 1000}))


def test_the_matched_spectrum_is_drawn_beside_the_unmatched_one(uri, tmp_path):
    add_unmatched(uri)
    matched = selected_runs(uri, "spectrum_matched")
    assert matched.study.beside == "spectrum" and len(matched.runs) == 6  # matched widths are one configuration
    beside = beside_selection(uri, matched)
    assert beside is not None and beside.study.name == "spectrum" and len(beside.runs) == 6
    written = write_study(uri, "spectrum_matched", tmp_path / "out")
    assert tmp_path / "out" / "spectrum_matched" / "spectrum_matched.png" in written

    from xablate.analysis import history_frame, study_figures
    figures = study_figures(matched, history_frame(uri, matched.runs, axes=matched.axes), beside)
    top, middle, bottom = figures["spectrum_matched"].axes
    (ours, theirs) = top.containers  # one error bar series per study, each point at its own effective segments
    np.testing.assert_allclose(ours.lines[0].get_xdata(), [2, 4, 32])
    np.testing.assert_allclose(ours.lines[0].get_ydata(), [0.82, 0.87, 0.92])
    np.testing.assert_allclose(theirs.lines[0].get_xdata(), [2, 4, 16])
    np.testing.assert_allclose(theirs.lines[0].get_ydata(), [0.72, 0.77, 0.91])
    labels = [t.get_text() for t in top.get_legend().get_texts()]
    # each series says its own n, and that each point's interval is its own (the paired ones are in the middle)
    assert "mean ± 95 % CI of each point alone (unpaired), n=2 per point (spectrum_matched)" in labels
    assert "mean ± 95 % CI of each point alone (unpaired), n=2 per point (spectrum)" in labels
    assert len(middle.containers) == 2  # each study's paired differences from its own baseline
    assert ours.lines[0].get_linestyle() == "None"  # no line orders means that few seeds cannot order
    assert "n =" not in top.get_ylabel()
    params = {line.get_label(): list(line.get_ydata()) for line in bottom.get_lines()}
    assert params["parameters (millions) (spectrum_matched)"] == pytest.approx([0.00101, 0.00099, 0.001])
    assert params["parameters (millions) (spectrum)"] == pytest.approx([0.004, 0.0025, 0.001])

    sidecar = json.loads((tmp_path / "out" / "spectrum_matched" / "spectrum_matched.json").read_text())
    assert sidecar["query"] == {"study": "spectrum_matched", "beside": "spectrum"}
    assert len(sidecar["runs"]) == 12 and set(beside.runs["run_id"]) <= set(sidecar["runs"])
    table = json.loads((tmp_path / "out" / "spectrum_matched" / "table.json").read_text())
    assert len(table["runs"]) == 6 and table["query"] == {"study": "spectrum_matched"}
    assert stale_outputs(uri, tmp_path / "out") == []
    log_study(uri, "spectrum", {8: [0.8]}, axis="segments", value_params=sizes({8: 8}, {8: 1500}))
    stale = [(p.name, why) for p, why in stale_outputs(uri, tmp_path / "out")]
    assert stale == [("spectrum_matched.json", "1 new, 0 changed status, 0 no longer selected run(s)")]


def test_without_the_other_study_in_the_store_the_figure_shows_this_one_alone(uri):
    matched = selected_runs(uri, "spectrum_matched")
    assert beside_selection(uri, matched) is None
    from xablate.analysis import history_frame, study_figures
    top, _, _ = study_figures(matched, history_frame(uri, matched.runs, axes=matched.axes))["spectrum_matched"].axes
    assert len(top.containers) == 1
    assert [t.get_text() for t in top.get_legend().get_texts()] == [
        "each seed", "mean ± 95 % CI of each point alone (unpaired), n=2 per point"]


@pytest.mark.parametrize("value", [3, "", "spectrum_matched"])
def test_a_bad_beside_is_refused_naming_it(value):
    with pytest.raises(ValueError, match=r"Received analysis\.beside=.*; allowed: the name of another study"):
        parse_study("spectrum_matched", {"analysis": {"axes": ["segments"], "beside": value}}, where="x.yaml")
