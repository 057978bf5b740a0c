"""The default build is keras.applications.Xception, layer for layer."""

import keras
import pytest

from xablate.models import build_xception, summarize_model


def layer_table(model):
    return [(l.name, type(l).__name__, tuple(l.output.shape), l.count_params()) for l in model.layers]


@pytest.mark.parametrize("include_top, expected", [(True, 22_910_480), (False, 20_861_480)])
def test_default_build_matches_keras_xception_layer_for_layer(include_top, expected):
    ours = build_xception(include_top=include_top)
    keras.backend.clear_session()  # Keras names the shortcut layers from a fresh counter
    # (without the top, Keras leaves height and width open unless given; ours keeps the 299x299 default)
    reference = keras.applications.Xception(weights=None, include_top=include_top, input_shape=(299, 299, 3))

    assert ours.count_params() == reference.count_params() == expected
    assert len(ours.layers) == len(reference.layers) == (134 if include_top else 132)
    assert layer_table(ours) == layer_table(reference)


def test_default_trainable_params_are_the_papers_table_3_figure():
    summary = summarize_model(build_xception())
    assert summary.trainable_params == 22_855_952
    assert summary.non_trainable_params == 54_528  # BN moving mean and variance, 27,264 channels x 2
    assert summary.total_params == 22_910_480


def test_default_build_takes_the_reference_weights_and_gives_its_outputs():
    import numpy as np

    ours = build_xception(input_shape=(71, 71, 3), classes=7)
    keras.backend.clear_session()
    reference = keras.applications.Xception(weights=None, input_shape=(71, 71, 3), classes=7)
    ours.set_weights(reference.get_weights())
    x = np.random.default_rng(0).uniform(-1, 1, size=(2, 71, 71, 3)).astype("float32")
    np.testing.assert_allclose(ours.predict(x, verbose=0), reference.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
