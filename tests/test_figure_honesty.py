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


def test_the_study_figure_draws_the_claimed_metric_of_every_seed_beside_the_curves(tmp_path):
    import numpy as np

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    values = {"none": [0.90, 0.92, 0.91], "elu": [0.80, 0.83, 0.81]}
    log_study(uri, "final", values, losses={v: {s: [1.0, 0.5] for s in range(3)} for v in values})
    selection = select_runs(runs_frame(uri, study="final"),
                            parse_study("final", {"analysis": {"axes": ["intermediate_act"]}}))
    history = history_frame(uri, selection.runs, axes=selection.axes)
    panel = curves_figure(history, selection.variants, title="final", final=selection).axes[-1]
    assert selection.metric == "test_accuracy" and panel.get_ylabel().startswith("test accuracy")
    dots = [sorted(c.get_offsets()[:, 1]) for c in panel.collections if len(c.get_offsets()) == 3]
    named = [v.split("=", 1)[1] for v in selection.variants]
    assert dots == [pytest.approx(sorted(values[v])) for v in named]  # every seed, as logged
    means = [c.lines[0].get_ydata()[0] for c in panel.containers]
    assert means == pytest.approx([np.mean(values[v]) for v in named])
    from scipy import stats

    half = stats.t.ppf(0.975, 2) * np.std(values["none"], ddof=1) / np.sqrt(3)
    [segment] = panel.containers[named.index("none")].lines[2][0].get_segments()
    assert (segment[0][1], segment[1][1]) == pytest.approx((np.mean(values["none"]) - half, np.mean(values["none"]) + half))


def test_a_trend_figure_draws_each_points_paired_difference_from_the_baseline(tmp_path):
    import numpy as np
    from scipy import stats

    from xablate.analysis.figures import trend_figure

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    base = [0.80, 0.85, 0.90]  # a large seed effect: unpaired intervals are wide, paired ones narrow
    values = {0.01: base, 0.02: [b + 0.01 for b in base], 0.04: [b + 0.02 + e for b, e in zip(base, (0, 0.004, -0.004))]}
    log_study(uri, "lr", {str(k): v for k, v in values.items()}, axis="optim.learning_rate",
              value_params={str(k): {"optim.learning_rate": str(k)} for k in values})
    selection = select_runs(runs_frame(uri, study="lr"), parse_study("lr", {"analysis": {
        "axes": ["optim.learning_rate"], "baseline": {"optim.learning_rate": 0.01}}}))
    top, middle, bottom = trend_figure(selection, "test_accuracy").axes
    assert "unpaired" in top.get_legend().get_texts()[1].get_text()
    container = middle.containers[0]
    assert list(container.lines[0].get_ydata()) == pytest.approx([0.0, 0.01, 0.02])
    diffs = np.array(values[0.04]) - np.array(base)
    half = stats.t.ppf(0.975, 2) * np.std(diffs, ddof=1) / np.sqrt(3)
    segment = container.lines[2][0].get_segments()[-1]
    assert (segment[0][1], segment[1][1]) == pytest.approx((diffs.mean() - half, diffs.mean() + half))
    assert "paired by seed" in middle.get_legend().get_texts()[0].get_text()
