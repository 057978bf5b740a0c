"""Every variant of the ablation grid on the mini preset: shapes, finite outputs, names, the closed-form
parameter count, and a .keras save/load round trip."""

import math

import keras
import numpy as np
import pytest

from xablate.models import build_from_preset, summarize_model

SEGMENT_POINTS = [1, 2, 4, 8, 16, 32, "depthwise"]
ACTS = ["none", "relu", "elu"]
# Every pair of values of two axes appears (each activation at each segments point, each of those with and
# without residuals): 21 builds instead of the full 42; residual alternates along the (activation, segments) grid.
GRID = [((i + j) % 2 == 0, act, segments) for i, act in enumerate(ACTS) for j, segments in enumerate(SEGMENT_POINTS)]

# The mini preset written out independently of xablate: widths / 4 rounded to a multiple of 8, 2 middle blocks.
MINI_STEM = (8, 16)
MINI_BLOCKS = [((32, 32), "projection"), ((64, 64), "projection"), ((184, 184), "projection"),
               ((184, 184, 184), "identity"), ((184, 184, 184), "identity"),
               ((184, 256), "projection"), ((384, 512), None)]


def expected_segments(requested, channels):
    if requested == "depthwise":
        return channels
    divisors = [d for d in range(1, channels + 1) if channels % d == 0]
    return min(divisors, key=lambda d: (abs(math.log(d / requested)), d))


def closed_form_params(residual, requested, classes=10, in_channels=3):
    """Conv k x k: k^2*C*F; grouped 3x3 over C channels in k segments: 9*C^2/k; pointwise C*F; BN 4*F."""
    c = in_channels
    total = 0
    for f in MINI_STEM:
        total += 9 * c * f + 4 * f
        c = f
    for widths, shortcut in MINI_BLOCKS:
        if residual and shortcut == "projection":
            total += c * widths[-1] + 4 * widths[-1]
        for f in widths:
            k = expected_segments(requested, c)
            total += 9 * c * c // k + c * f + 4 * f
            c = f
    return total + c * classes + classes


@pytest.mark.parametrize("residual, act, segments", GRID)
def test_grid_variant(residual, act, segments, tmp_path):
    model = build_from_preset("mini", residual=residual, intermediate_act=act, segments=segments)

    assert model.count_params() == closed_form_params(residual, segments)
    names = [l.name for l in model.layers]
    assert len(names) == len(set(names))
    assert sum(isinstance(l, keras.layers.Add) for l in model.layers) == (6 if residual else 0)

    summary = summarize_model(model)
    assert [l.segments for l in summary.separable_layers] == [
        expected_segments(segments, l.in_channels) for l in summary.separable_layers
    ]
    assert len(summary.separable_layers) == 16  # 3 entry x 2 + 2 middle x 3 + 2 exit x 2

    x = np.random.default_rng(0).uniform(0, 1, size=(2, 32, 32, 3)).astype("float32")
    y = np.asarray(model(x, training=False))  # a plain call: predict() would trace a function per variant
    assert y.shape == (2, 10)
    assert np.isfinite(y).all()
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)

    if act != ACTS[SEGMENT_POINTS.index(segments) % len(ACTS)]:
        return  # the .keras round trip: once per segments point, the activations (and residual) taking turns
    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    np.testing.assert_allclose(np.asarray(reloaded(x, training=False)), y, rtol=1e-5, atol=1e-6)
    assert reloaded.count_params() == model.count_params()


def test_the_spectrum_has_distinct_points_from_regular_to_depthwise():
    params = [build_from_preset("mini", segments=k).count_params() for k in SEGMENT_POINTS]
    assert params == sorted(params, reverse=True)
    assert len(set(params)) == len(SEGMENT_POINTS)
    assert params[0] == 5_468_226 and params[-1] == 737_034


def test_intermediate_activation_adds_no_parameters_and_no_layers():
    plain = build_from_preset("mini")
    with_elu = build_from_preset("mini", intermediate_act="elu")
    assert with_elu.count_params() == plain.count_params()
    assert [l.name for l in with_elu.layers] == [l.name for l in plain.layers]


def test_residual_false_removes_exactly_the_shortcut_branches():
    with_res = build_from_preset("mini")
    without = build_from_preset("mini", residual=False)
    removed = {l.name for l in with_res.layers} - {l.name for l in without.layers}
    assert removed == {"conv2d", "conv2d_1", "conv2d_2", "conv2d_3", "batch_normalization",
                       "batch_normalization_1", "batch_normalization_2", "batch_normalization_3",
                       *(f"add_{i}" if i else "add" for i in range(6))}
    # 4 projection shortcuts: 1x1 conv C*F plus BN 4F
    shortcut_params = sum(c * f + 4 * f for c, f in [(16, 32), (32, 64), (64, 184), (184, 256)])
    assert with_res.count_params() - without.count_params() == shortcut_params


def test_scaling_knobs():
    model = build_from_preset("mini", middle_blocks=0, width_multiplier=0.5, dropout=0.5, weight_decay=1e-5)
    assert "block5_sepconv1" in [l.name for l in model.layers]  # exit flow renumbers after the middle flow
    assert model.get_layer("dropout").rate == 0.5
    widths = [l.output.shape[-1] for l in model.layers if l.name.endswith("_sepconv1")]
    assert widths == [64, 128, 368, 368, 768]  # 128/2, 256/2, 728/2 -> 368 (multiple of 8), 1536/2
    assert len(model.losses) == sum(1 for w in model.trainable_weights if len(w.shape) in (2, 4))
    bn = model.get_layer("block2_sepconv1_bn")
    assert bn.momentum == 0.9


def test_small_stem_keeps_resolution_and_imagenet_stem_matches_keras():
    small = build_from_preset("mini")
    assert tuple(small.get_layer("block1_conv2_act").output.shape) == (None, 32, 32, 16)
    full = build_from_preset("xception", include_top=False, input_shape=(71, 71, 3))
    assert tuple(full.get_layer("block1_conv2_act").output.shape) == (None, 33, 33, 64)
