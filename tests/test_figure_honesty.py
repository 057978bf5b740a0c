"""Figures that claim only what they draw: no interval named over one seed, a log axis only where sizes span a
range worth one (made-up stores, real MLflow runs)."""

from __future__ import annotations

import pytest

from made_up_store import log_study
from xablate.analysis.figures import capacity_figure, curves_figure
from xablate.analysis.store import history_frame, runs_frame, select_runs
from xablate.studies import parse_study

def _selection(uri, study, sizes: dict[str, int], seeds: int = 3):
    values = {v: [0.9 - 0.01 * i] * seeds for i, v in enumerate(sizes)}
    log_study(uri, study, values, value_params={v: {"model.total_params": str(n), "model.flops": str(2 * n)}
                                                for v, n in sizes.items()})
    return select_runs(runs_frame(uri, study=study), parse_study(study, {"analysis": {"axes": ["intermediate_act"]}}))


@pytest.mark.parametrize("sizes, scale", [({"none": 736_890, "elu": 715_000, "relu": 758_000}, "linear"),
                                          ({"none": 736_890, "elu": 5_500_000}, "log")])
def test_capacity_axes_are_linear_over_a_small_range_and_log_over_a_wide_one(tmp_path, sizes, scale):
    selection = _selection(f"sqlite:///{tmp_path / 'mlflow.db'}", "sizes", sizes)
    parameters, flops = capacity_figure(selection, "test_accuracy").axes
    assert parameters.get_xscale() == flops.get_xscale() == scale
    assert f"({scale} scale" in parameters.get_xlabel() and f"({scale} scale" in flops.get_xlabel()
    drawn = sorted(c.lines[0].get_xdata()[0] for c in parameters.containers)
    assert drawn == pytest.approx(sorted(sizes.values()))  # one size each: nothing dodged


def test_curves_of_one_seed_name_no_interval(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    log_study(uri, "one", {"none": [0.9], "elu": [0.8]}, losses={"none": {0: [1.0, 0.5]}, "elu": {0: [1.1, 0.6]}})
    selection = select_runs(runs_frame(uri, study="one"), parse_study("one", {"analysis": {"axes": ["intermediate_act"]}}))
    history = history_frame(uri, selection.runs, axes=selection.axes)
    title = curves_figure(history, selection.variants, title="one")._suptitle.get_text()
    assert title == "one — one seed per variant: its curve, no interval" and "CI" not in title
    log_study(uri, "three", {"none": [0.9] * 3, "elu": [0.8] * 3},
              losses={"none": {s: [1.0, 0.5] for s in range(3)}, "elu": {s: [1.1, 0.6] for s in range(3)}})
    selection = select_runs(runs_frame(uri, study="three"),
                            parse_study("three", {"analysis": {"axes": ["intermediate_act"]}}))
    history = history_frame(uri, selection.runs, axes=selection.axes)
    assert curves_figure(history, selection.variants, title="three")._suptitle.get_text().endswith(
        "band: 95 % CI of the mean")
