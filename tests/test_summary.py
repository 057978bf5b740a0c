"""The model summary: parameters, multiply-adds and per-layer effective segments, as later logged."""

import json

import keras

from xablate.models import SegmentConv2D, build_from_preset, build_xception, summarize_model


def test_mult_adds_of_a_hand_computed_model():
    model = keras.Sequential([
        keras.Input((8, 8, 4)),
        keras.layers.Conv2D(6, 3, padding="same", use_bias=False),  # 8*8 * 9*4*6 = 13,824
        SegmentConv2D(10, 2),  # 8*8 * (9*6*6/2 + 6*10) = 14,208
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(5),  # 10*5 = 50
    ])
    summary = summarize_model(model)
    assert summary.mult_adds == 13_824 + 14_208 + 50
    assert summary.flops == 2 * summary.mult_adds
    [layer] = summary.separable_layers
    assert (layer.in_channels, layer.out_channels, layer.segments, layer.channels_per_segment) == (6, 10, 2, 3)
    assert layer.implementation == "split"
    assert layer.params == 9 * 6 * 3 + 6 * 10


def test_full_xception_summary():
    summary = summarize_model(build_xception())
    assert (summary.total_params, summary.trainable_params) == (22_910_480, 22_855_952)
    assert round(summary.mult_adds / 1e9, 2) == 8.36  # the ~8.4 G mult-adds usually quoted for Xception
    assert len(summary.separable_layers) == 34  # 36 conv layers minus the two stem convs
    first = summary.separable_layers[0]
    assert (first.name, first.in_channels, first.out_channels, first.segments) == ("block2_sepconv1", 64, 128, 64)
    assert {l.implementation for l in summary.separable_layers} == {"keras_separable"}


def test_params_for_mlflow_name_every_separable_layer():
    summary = summarize_model(build_from_preset("debug", segments=4, intermediate_act="relu"))
    params = summary.to_params()
    segment_keys = [k for k in params if k.startswith("segments.")]
    assert len(segment_keys) == 13  # debug: 3 entry blocks x 2 + 1 middle x 3 + 2 exit x 2
    assert params["segments.block2_sepconv1"] == 4
    assert params["model.total_params"] == summary.total_params
    assert params["model.flops"] == 2 * params["model.mult_adds"]
    json.dumps(summary.to_dict())  # the per-layer table is JSON-serialisable for an artifact
