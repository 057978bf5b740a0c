"""SegmentConv2D: every implementation computes Conv2D(groups=k), forward and backward; the layer serialises.

The reference is a naive per-segment convolution in NumPy (outputs, and gradients of <y, r> for a random
cotangent r with respect to the input and the kernel), itself checked against Keras' Conv2D(groups=k). Every
implementation is compared with it at every k below; the k are chosen so that each implementation's special
cases are exercised at CHANNELS = 24 (see test_the_chosen_k_exercise_every_code_path).

Breakages these tests were seen to catch (each made on purpose once): blocked with two blocks' kernels swapped,
or its kernel outside the gradient tape; depthwise_shift without the input permutation, with the permuted input
outside the tape (only the input gradient catches that), or with cyclic kernel indices on XOR-permuted inputs
(only k = 6, 4 channels per segment, catches that); depthwise_sum without its transposition; split with the
kernels of segments 0 and 1 swapped; masked with each segment's block transposed; depthwise with the kernel
flipped vertically.
"""

import functools

import keras
import numpy as np
import pytest
import tensorflow as tf

from xablate.models import SegmentConv2D, choose_implementation
from xablate.models.segment_conv import (
    BLOCK_WIDTH,
    IMPLEMENTATIONS,
    SPATIAL_OPS,
    _segment_members_per_block,
)

CHANNELS = 24
# 1 (a regular conv), wide segments (12 and 6 channels), narrow ones (4 and 2), depthwise (one channel each)
KS = [1, 2, 4, 6, 12, 24]
SHAPE = (2, 6, 5, CHANNELS)  # small and non-square, so a transposed H/W shows


def applies(implementation, k):
    if implementation == "dense":
        return k == 1
    if implementation == "depthwise":
        return k == CHANNELS
    return True


CASES = [(impl, k) for impl in IMPLEMENTATIONS for k in KS if applies(impl, k)]


def naive_grouped_conv(x, kernel, k, padding):
    """Conv2D(groups=k) spelled out: output channel o reads input segment o // (C // k) through kernel[..., o]."""
    kh, kw, g, channels = kernel.shape
    if padding == "same":
        x = np.pad(x, ((0, 0), (kh // 2, (kh - 1) // 2), (kw // 2, (kw - 1) // 2), (0, 0)))
    n, hp, wp, _ = x.shape
    h, w = hp - kh + 1, wp - kw + 1
    y = np.zeros((n, h, w, channels), dtype=np.float64)
    for o in range(channels):
        segment = o // g
        for a in range(kh):
            for b in range(kw):
                patch = x[:, a:a + h, b:b + w, segment * g:(segment + 1) * g]  # (n, h, w, g)
                y[..., o] += patch @ kernel[a, b, :, o]
    return y


def naive_grads(x, kernel, k, padding, cotangent):
    """Gradients of sum(naive_grouped_conv(x, kernel) * cotangent) with respect to x and to kernel."""
    kh, kw, g, channels = kernel.shape
    top, left = (kh // 2, kw // 2) if padding == "same" else (0, 0)
    xp = np.pad(x, ((0, 0), (top, (kh - 1) // 2 if padding == "same" else 0),
                    (left, (kw - 1) // 2 if padding == "same" else 0), (0, 0))).astype(np.float64)
    h, w = cotangent.shape[1:3]
    dx = np.zeros_like(xp)
    dk = np.zeros(kernel.shape, dtype=np.float64)
    for o in range(channels):
        s = slice((o // g) * g, (o // g + 1) * g)
        r = cotangent[..., o]  # (n, h, w)
        for a in range(kh):
            for b in range(kw):
                dk[a, b, :, o] = np.einsum("nhwi,nhw->i", xp[:, a:a + h, b:b + w, s], r)
                dx[:, a:a + h, b:b + w, s] += r[..., None] * kernel[a, b, :, o]
    return dx[:, top:top + x.shape[1], left:left + x.shape[2]], dk


@functools.lru_cache(maxsize=None)
def problem(k, padding, seed=0):
    """Input, kernel (Conv2D(groups=k) layout), cotangent, and the naive output and gradients."""
    rng = np.random.default_rng(seed + 1000 * k)
    x = rng.normal(size=SHAPE).astype("float32")
    kernel = rng.normal(size=(3, 3, CHANNELS // k, CHANNELS)).astype("float32")
    y = naive_grouped_conv(x, kernel, k, padding)
    cotangent = rng.normal(size=y.shape).astype("float32")
    dx, dk = naive_grads(x, kernel, k, padding, cotangent)
    return x, kernel, cotangent, y, dx, dk


def output_and_grads(fn, x, kernel, cotangent):
    x, kernel = tf.constant(x), tf.constant(kernel)
    with tf.GradientTape() as tape:
        tape.watch([x, kernel])
        y = fn(x, kernel)
        loss = tf.reduce_sum(y * cotangent)
    dx, dk = tape.gradient(loss, [x, kernel], unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return np.asarray(y), np.asarray(dx), np.asarray(dk)


def assert_close(actual, expected, what):
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4, err_msg=what)


@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("k", [1, 4, 24])
def test_naive_reference_is_conv2d_groups(k, padding):
    x, kernel, cotangent, y, dx, dk = problem(k, padding)
    spatial = keras.layers.Conv2D(CHANNELS, 3, padding=padding, groups=k, use_bias=False)
    spatial.build(x.shape)
    spatial.kernel.assign(kernel)
    via_ops = output_and_grads(lambda xx, kk: keras.ops.conv(xx, kk, padding=padding), x, kernel, cotangent)
    assert_close(np.asarray(spatial(x)), y, "Conv2D(groups=k) output")
    for got, want, what in zip(via_ops, (y, dx, dk), ("output", "d/dx", "d/dkernel")):
        assert_close(got, want, f"ops.conv with the grouped kernel: {what}")


@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("implementation, k", CASES)
def test_every_implementation_matches_forward_and_backward(implementation, k, padding):
    x, kernel, cotangent, y, dx, dk = problem(k, padding)
    op = SPATIAL_OPS[implementation]
    got_y, got_dx, got_dk = output_and_grads(lambda xx, kk: op(xx, kk, k, padding), x, kernel, cotangent)
    assert_close(got_y, y, f"{implementation} k={k} output")
    assert_close(got_dx, dx, f"{implementation} k={k} gradient w.r.t. the input")
    assert_close(got_dk, dk, f"{implementation} k={k} gradient w.r.t. the kernel")


def test_the_chosen_k_exercise_every_code_path():
    widths = {CHANNELS // k for k in KS}
    assert {1, 2, 4, 6}.issubset(widths) and max(widths) > BLOCK_WIDTH // 2  # depthwise, XOR (2, 4), cyclic (6)
    members = {k: _segment_members_per_block(k, CHANNELS // k) for k in KS}
    assert any(1 < m < k for k, m in members.items())  # blocked: several blocks of several segments
    assert any(m == 1 and k > 1 for k, m in members.items())  # blocked degenerating to split


@pytest.mark.parametrize("k, act", [(1, None), (2, "elu"), (4, None), (6, "elu"), (12, None), (24, "elu")])
def test_layer_equals_conv2d_groups_then_pointwise(k, act):
    """The layer (spatial -> activation -> pointwise) equals Keras layers, forward and backward."""
    x, kernel, _, _, _, _ = problem(k, "same")
    rng = np.random.default_rng(k)
    spatial = keras.layers.Conv2D(CHANNELS, 3, padding="same", groups=k, use_bias=False)
    pointwise = keras.layers.Conv2D(16, 1, use_bias=False)
    spatial.build(x.shape)
    spatial.kernel.assign(kernel)
    pointwise.build((None, None, None, CHANNELS))
    pointwise.kernel.assign(rng.normal(size=pointwise.kernel.shape).astype("float32"))
    activation = keras.activations.get(act) if act else (lambda t: t)
    cotangent = rng.normal(size=(*SHAPE[:3], 16)).astype("float32")
    xt = tf.constant(x)

    def run(forward, weights):
        with tf.GradientTape() as tape:
            tape.watch(xt)
            out = forward(xt)
            loss = tf.reduce_sum(out * cotangent)
        grads = tape.gradient(loss, [xt, *weights], unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return [np.asarray(out)] + [np.asarray(g) for g in grads]

    expected = run(lambda t: pointwise(activation(spatial(t))), [spatial.kernel, pointwise.kernel])
    for implementation in [i for i in IMPLEMENTATIONS if applies(i, k)] + ["auto"]:
        layer = SegmentConv2D(16, k, intermediate_activation=act, implementation=implementation)
        layer.build(x.shape)
        layer.spatial_kernel.assign(kernel)
        layer.pointwise_kernel.assign(pointwise.kernel)
        got = run(layer, [layer.spatial_kernel, layer.pointwise_kernel])
        for g, e, what in zip(got, expected, ("output", "d/dx", "d/dspatial", "d/dpointwise")):
            np.testing.assert_allclose(g, e, rtol=1e-3, atol=1e-3, err_msg=f"{implementation} k={k} {what}")


def test_parameter_count_is_grouped_plus_pointwise():
    for k in [1, 2, 3, 4, 6, 8, 12, 24]:
        layer = SegmentConv2D(40, k)
        layer.build((None, 5, 5, CHANNELS))
        assert layer.count_params() == 9 * CHANNELS * CHANNELS // k + CHANNELS * 40


def test_reference_layer_count_for_one_728_layer():
    # the paper-scale reference: 3x3 + 1x1 parameters of one 728->728 layer along the spectrum
    expected = {1: 5_299_840, 4: 1_722_448, 8: 1_126_216, 91: 582_400, 728: 536_536}
    for k, count in expected.items():
        layer = SegmentConv2D(728, k)
        layer.build((None, 4, 4, 728))
        assert layer.count_params() == count


def test_auto_choice_table():
    # TensorFlow, from results/bench/segments.md (128 channels): split for segments of 16+ channels, blocked
    # for 8 (eight dense 16-wide convs, as at k = 8), depthwise_shift for 4 and 2.
    table = {(1, 128): "dense", (2, 128): "split", (4, 128): "split", (8, 128): "split", (16, 128): "blocked",
             (32, 128): "depthwise_shift", (64, 128): "depthwise_shift", (128, 128): "depthwise",
             (364, 728): "depthwise_shift", (182, 728): "depthwise_shift", (91, 728): "split",  # 91 = 7 * 13
             (128, 384): "blocked",  # 3 channels per segment: shifts would be rolls, not flips
             (2, 8): "split", (4, 8): "depthwise_shift", (2, 6): "split"}  # one block would be `masked`
    for (k, channels), implementation in table.items():
        assert choose_implementation(k, channels, "tensorflow") == implementation, (k, channels)
    # JAX keeps the choice made before blocked/depthwise_shift (not measured under JAX); torch runs groups natively
    assert choose_implementation(32, 128, "jax") == "split"
    assert choose_implementation(64, 128, "jax") == "depthwise_sum"
    assert choose_implementation(128, 128, "jax") == "depthwise"
    assert choose_implementation(8, 128, "torch") == "grouped"


@pytest.mark.parametrize("k, implementation", [(2, "auto"), (4, "auto"), (2, "blocked"), (2, "depthwise_shift")])
def test_saved_layer_reloads_with_its_config(tmp_path, k, implementation):
    layer = SegmentConv2D(4, k, intermediate_activation="relu", implementation=implementation, kernel_regularizer="l2",
                          name="seg")
    model = keras.Sequential([keras.Input((6, 6, 8)), layer])
    x = np.random.default_rng(0).normal(size=(1, 6, 6, 8)).astype("float32")
    model.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras")
    layer = reloaded.get_layer("seg")
    assert (layer.filters, layer.segments, layer.intermediate_activation) == (4, k, "relu")
    assert layer.implementation == implementation
    assert layer.resolved_implementation == model.layers[0].resolved_implementation
    assert isinstance(layer.kernel_regularizer, keras.regularizers.L2)
    np.testing.assert_allclose(reloaded(x), model(x), rtol=1e-6)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match=r"implementation='fast'.*allowed: 'auto', dense"):
        SegmentConv2D(4, 2, implementation="fast")
    layer = SegmentConv2D(4, 5, name="seg")
    with pytest.raises(ValueError, match=r"segments=5 for 8 input channels in layer seg"):
        layer.build((None, 6, 6, 8))
    assert set(IMPLEMENTATIONS) == {"dense", "grouped", "split", "masked", "depthwise_sum", "depthwise", "blocked",
                                    "depthwise_shift"}
