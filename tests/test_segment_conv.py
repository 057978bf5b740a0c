"""SegmentConv2D: every implementation computes Conv2D(groups=k) exactly, and the layer serialises."""

import keras
import numpy as np
import pytest

from xablate.models import SegmentConv2D, choose_implementation
from xablate.models.segment_conv import IMPLEMENTATIONS

CHANNELS = 24


def implementations_for(k):
    out = ["grouped", "split", "masked", "depthwise_sum"]
    if k == 1:
        out.append("dense")
    if k == CHANNELS:
        out.append("depthwise")
    return out


def reference_and_input(k, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2, 9, 7, CHANNELS)).astype("float32")
    spatial = keras.layers.Conv2D(CHANNELS, 3, padding="same", groups=k, use_bias=False)
    spatial.build(x.shape)
    spatial.kernel.assign(rng.normal(size=spatial.kernel.shape).astype("float32"))
    return x, spatial


@pytest.mark.parametrize("k", [1, 2, 3, 4, 6, 8, 12, 24])
@pytest.mark.parametrize("act", [None, "elu"])
def test_every_implementation_equals_conv2d_groups(k, act):
    x, spatial = reference_and_input(k)
    pointwise = keras.layers.Conv2D(16, 1, use_bias=False)
    hidden = spatial(x)
    if act:
        hidden = keras.activations.get(act)(hidden)
    expected = np.asarray(pointwise(hidden))

    for implementation in implementations_for(k):
        layer = SegmentConv2D(16, k, intermediate_activation=act, implementation=implementation)
        layer.build(x.shape)
        layer.spatial_kernel.assign(spatial.kernel)
        layer.pointwise_kernel.assign(pointwise.kernel)
        np.testing.assert_allclose(np.asarray(layer(x)), expected, rtol=1e-4, atol=1e-4, err_msg=implementation)


@pytest.mark.parametrize("k", [2, 6, 24])
def test_gradients_match_conv2d_groups(k):
    import tensorflow as tf

    x, spatial = reference_and_input(k, seed=1)
    layer = SegmentConv2D(CHANNELS, k, implementation="auto")
    layer.build(x.shape)
    layer.spatial_kernel.assign(spatial.kernel)
    layer.pointwise_kernel.assign(np.eye(CHANNELS, dtype="float32").reshape(1, 1, CHANNELS, CHANNELS))
    with tf.GradientTape(persistent=True) as tape:
        ours = tf.reduce_sum(layer(x) ** 2)
        ref = tf.reduce_sum(spatial(x) ** 2)
    np.testing.assert_allclose(
        tape.gradient(ours, layer.spatial_kernel), tape.gradient(ref, spatial.kernel), rtol=1e-3, atol=1e-3
    )


def test_parameter_count_is_grouped_plus_pointwise():
    for k in [1, 2, 3, 4, 6, 8, 12, 24]:
        layer = SegmentConv2D(40, k)
        layer.build((None, 5, 5, CHANNELS))
        assert layer.count_params() == 9 * CHANNELS * CHANNELS // k + CHANNELS * 40


def test_reference_layer_count_for_one_728_layer():
    # shared/REFERENCE.md: 3x3 + 1x1 parameters of one 728->728 layer along the spectrum
    expected = {1: 5_299_840, 4: 1_722_448, 8: 1_126_216, 91: 582_400, 728: 536_536}
    for k, count in expected.items():
        layer = SegmentConv2D(728, k)
        layer.build((None, 4, 4, 728))
        assert layer.count_params() == count


def test_auto_choice_table():
    assert choose_implementation(1, 128, "tensorflow") == "dense"
    assert choose_implementation(128, 128, "tensorflow") == "depthwise"
    assert choose_implementation(4, 128, "tensorflow") == "split"
    assert choose_implementation(32, 128, "jax") == "split"
    assert choose_implementation(64, 128, "tensorflow") == "depthwise_sum"  # 2 channels per segment
    assert choose_implementation(364, 728, "tensorflow") == "depthwise_sum"
    assert choose_implementation(8, 128, "torch") == "grouped"


def test_saved_layer_reloads_with_its_config(tmp_path):
    model = keras.Sequential([keras.Input((6, 6, 8)), SegmentConv2D(4, 2, intermediate_activation="relu",
                                                                     kernel_regularizer="l2", name="seg")])
    x = np.random.default_rng(0).normal(size=(1, 6, 6, 8)).astype("float32")
    model.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras")
    layer = reloaded.get_layer("seg")
    assert (layer.filters, layer.segments, layer.intermediate_activation) == (4, 2, "relu")
    assert isinstance(layer.kernel_regularizer, keras.regularizers.L2)
    np.testing.assert_allclose(reloaded(x), model(x), rtol=1e-6)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match=r"implementation='fast'.*allowed: 'auto', dense"):
        SegmentConv2D(4, 2, implementation="fast")
    layer = SegmentConv2D(4, 5, name="seg")
    with pytest.raises(ValueError, match=r"segments=5 for 8 input channels in layer seg"):
        layer.build((None, 6, 6, 8))
    assert set(IMPLEMENTATIONS) == {"dense", "grouped", "split", "masked", "depthwise_sum", "depthwise"}
