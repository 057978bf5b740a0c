"""Compute-matched spectrum points (xablate/models/matching.py): closed-form counts equal Keras' own, every
spectrum point of the mini model is matched within 3 % in parameters and in FLOPs, and a matched run logs what
it was matched to."""

import keras
import pytest
from mlflow import MlflowClient

from xablate.config import compose_job as compose
from xablate.models import build_xception, preset_kwargs, summarize_model
from xablate.models.matching import MATCH_TOLERANCE, counts, matched_width
from xablate.training.trainer import RunContext, train

SPECTRUM = [1, 2, 4, 8, 16, 32, 64]


@pytest.mark.parametrize("preset, extra", [
    ("debug", {}),
    ("debug", {"segments": 1, "residual": False}),
    ("debug", {"segments": 4, "head": "flatten", "width_divisor": 4, "width_multiplier": 0.09}),
    ("mini", {"segments": 16}),
    ("xception", {"input_shape": (71, 71, 3), "classes": 10, "segments": 8, "middle_blocks": 0,
                  "width_multiplier": 0.5}),  # the imagenet stem's valid convolutions
])
def test_closed_form_counts_equal_the_built_models(preset, extra):
    kwargs = preset_kwargs(preset, **extra)
    keras.backend.clear_session()
    model = build_xception(**kwargs)
    assert counts(**kwargs) == {"params": model.count_params(), "flops": summarize_model(model).flops}


@pytest.mark.parametrize("quantity", ["params", "flops"])
def test_every_spectrum_point_of_the_mini_model_is_matched_within_3_percent(quantity):
    base = preset_kwargs("mini", segments="depthwise")
    target = counts(**base)[quantity]
    assert target == {"params": 737_034, "flops": 29_755_392}[quantity]
    unmatched = [counts(**{**base, "segments": k})[quantity] / target for k in SPECTRUM]
    assert max(unmatched) > 1.5  # what matching corrects: k = 1 has several times the baseline's count
    for k in SPECTRUM:
        got = matched_width({**base, "segments": k}, quantity)
        achieved = counts(**{**base, "segments": k, **{n: v for n, v in got.items() if n.startswith("width_")}})
        assert got["target"] == target and got["achieved"] == achieved[quantity]
        assert abs(achieved[quantity] / target - 1) <= MATCH_TOLERANCE, (k, got)
        assert got["width_divisor"] == min(k, 8)  # k <= 8 exact in every layer, finer widths


def test_matched_models_built_by_keras_have_the_baselines_parameters():
    base = preset_kwargs("mini", segments="depthwise")
    keras.backend.clear_session()
    target = build_xception(**base).count_params()
    for k in (1, 32):
        widths = {n: v for n, v in matched_width({**base, "segments": k}, "params").items() if n.startswith("width_")}
        keras.backend.clear_session()
        model = build_xception(**{**base, "segments": k, **widths})
        assert abs(model.count_params() / target - 1) <= MATCH_TOLERANCE
        if k <= 8:  # exact in every separable layer
            assert {layer.segments for layer in summarize_model(model).separable_layers} == {k}


@pytest.mark.slow
def test_a_matched_run_logs_its_target_the_achieved_count_and_the_width(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = compose(["debug=default", "model.match=params", "segments=2", f"tracking.uri={uri}", "study=matched",
                   "train.epochs=1", "train.save_model=false"])
    result = train(cfg, RunContext(output_dir=tmp_path / "out"))
    params = MlflowClient(uri).get_run(result.run_id).data.params
    # the debug model at 16x16x1 with 10 classes: its depthwise count is the target
    base = preset_kwargs("debug", segments="depthwise", input_shape=(16, 16, 1), classes=10)
    target = counts(**base)["params"]
    assert params["match.quantity"] == "params" and int(params["match.target"]) == target
    assert int(params["match.achieved"]) == int(params["model.total_params"])
    assert abs(int(params["match.achieved"]) / target - 1) <= MATCH_TOLERANCE
    assert float(params["match.relative_error"]) == pytest.approx(int(params["match.achieved"]) / target - 1, abs=1e-6)
    assert params["builder.width_divisor"] == "2" and float(params["builder.width_multiplier"]) < 0.0625
    assert int(params["model.total_params"]) < counts(**{**base, "segments": 2})["params"]  # narrower than unmatched


def test_an_unknown_match_quantity_is_named():
    with pytest.raises(ValueError, match="Received model.match='bytes'; allowed: null, params, flops"):
        matched_width(preset_kwargs("mini", segments=4), "bytes")


def test_a_point_that_cannot_be_matched_is_refused_naming_the_closest(monkeypatch):
    import xablate.models.matching as matching

    monkeypatch.setattr(matching, "MATCH_TOLERANCE", 1e-9)  # no width grid reaches a count exactly
    with pytest.raises(ValueError, match=r"Received segments=4 with model.match=params: no width comes within 0% of "
                                         r"the baseline's 737,034 params \(closest: [\d,]+ at width_multiplier="):
        matching.matched_width(preset_kwargs("mini", segments=4), "params")


@pytest.mark.parametrize("divisor, exact_up_to", [(8, 8), (64, 64)])
def test_width_divisor_64_makes_every_spectrum_point_of_the_mini_model_exact(divisor, exact_up_to):
    """Clean spectrum points: at the mini preset's widths (divisor 8: separable inputs 16 … 384 with 184 = 8 · 23)
    k <= 8 is exact in every separable layer; at model.width_divisor=64 (inputs 64, 192, 256, 384) every k up
    to 64 is, so no two requested points are the same model."""
    from xablate.models.segments import effective_segments
    from xablate.models.xception import separable_inputs

    mini = preset_kwargs("mini")
    layers = separable_inputs(mini["width_multiplier"], mini["middle_blocks"], divisor)
    for k in (1, 2, 4, 8, 16, 32, 64):
        used = {effective_segments(k, channels) for _, channels in layers}
        assert (used == {k}) == (k <= exact_up_to), (k, used)


def test_every_builder_argument_is_either_counted_or_changes_no_count():
    """A new builder argument fails here until matching says whether it changes the counts (and models it)."""
    import inspect

    from xablate.models.matching import COUNT_NEUTRAL, COUNTED

    assert COUNTED | COUNT_NEUTRAL == set(inspect.signature(build_xception).parameters)
    assert not COUNTED & COUNT_NEUTRAL


@pytest.mark.parametrize("extra", [{"intermediate_act": "elu"}, {"bn_momentum": 0.5, "dropout": 0.3},
                                   {"segment_impl": "split", "segments": 2}, {"pooling": "max", "include_top": False},
                                   {"weight_decay": 1e-4, "classifier_activation": None}])
def test_the_count_neutral_arguments_leave_keras_count_equal_to_the_closed_form(extra):
    kwargs = preset_kwargs("debug", **extra)
    keras.backend.clear_session()
    model = build_xception(**kwargs)
    assert counts(**kwargs) == {"params": model.count_params(), "flops": summarize_model(model).flops}


def test_an_argument_the_counts_do_not_model_is_refused(monkeypatch):
    from xablate.models import matching

    monkeypatch.setattr(matching, "COUNT_NEUTRAL", matching.COUNT_NEUTRAL - {"bn_momentum"})
    with pytest.raises(ValueError, match=r"Received bn_momentum=0.5 with model.match; allowed: bn_momentum at its "
                                         r"default \(0.99\)"):
        counts(**preset_kwargs("debug", bn_momentum=0.5))


def test_a_residual_free_model_is_matched_to_the_residual_models_parameters():
    """model.match_residual=true: the residual-free mini model widened to the residual one's count (within 3 %),
    as Keras counts the built model; without it, matching a depthwise model is the identity."""
    plain = preset_kwargs("mini", residual=False, input_shape=(28, 28, 3), classes=10)
    target = counts(**{**plain, "residual": True})["params"]
    assert target / counts(**plain)["params"] - 1 > 0.09  # what matching corrects: the shortcuts' 9 % more
    got = matched_width(plain, "params", residual=True)
    assert got["target"] == target and abs(got["relative_error"]) <= MATCH_TOLERANCE
    assert got["width_multiplier"] > plain["width_multiplier"]  # wider, not deeper
    keras.backend.clear_session()
    model = build_xception(**{**plain, "width_multiplier": got["width_multiplier"],
                              "width_divisor": got["width_divisor"]})
    assert model.count_params() == got["achieved"]
    assert matched_width(plain, "params")["relative_error"] == 0.0  # its own reference: unchanged
    assert matched_width(plain, "params", residual=False)["width_multiplier"] == plain["width_multiplier"]
    with pytest.raises(ValueError, match=r"Received segments=depthwise, residual=False with model.match=params "
                                         r"model.match_residual=True: no width"):
        import xablate.models.matching as matching
        original, matching.MATCH_TOLERANCE = matching.MATCH_TOLERANCE, 1e-9
        try:
            matching.matched_width(plain, "params", residual=True)
        finally:
            matching.MATCH_TOLERANCE = original


@pytest.mark.slow
def test_a_run_matched_to_the_residual_model_logs_that_reference(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = compose(["debug=default", "residual=false", "model.match=params", "model.match_residual=true",
                   f"tracking.uri={uri}", "study=matched", "train.epochs=1", "train.save_model=false"])
    result = train(cfg, RunContext(output_dir=tmp_path / "out"))
    params = MlflowClient(uri).get_run(result.run_id).data.params
    base = preset_kwargs("debug", residual=True, input_shape=(16, 16, 1), classes=10)
    assert params["match.baseline_residual"] == "True" and int(params["match.target"]) == counts(**base)["params"]
    assert int(params["match.achieved"]) == int(params["model.total_params"])
    assert abs(int(params["model.total_params"]) / counts(**base)["params"] - 1) <= MATCH_TOLERANCE
    assert int(params["model.total_params"]) > counts(**{**base, "residual": False})["params"]
