"""Bad builder input fails before anything is built, naming the argument, the value and what is allowed."""

import pytest

from xablate.models import build_from_preset, build_xception, effective_segments
from xablate.models.segments import divisors


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"intermediate_act": "swishy"}, r"intermediate_act='swishy'; allowed: none, .*elu.*relu"),
        ({"segments": 0}, r"segments=0; allowed: an integer >= 1 or \"depthwise\""),
        ({"segments": -4}, r"segments=-4; allowed"),
        ({"segments": 2.5}, r"segments=2.5 \(float\); allowed"),
        ({"segments": True}, r"segments=True \(bool\); allowed"),
        ({"segments": "grouped"}, r"segments='grouped'; allowed"),
        ({"segments": 16, "segment_rounding": "exact"},
         r"segments=16, which does not divide the 184 input channels of layer block4_sepconv2"),
        ({"segment_rounding": "up"}, r"segment_rounding='up'; allowed: nearest, exact"),
        ({"segment_impl": "fast"}, r"segment_impl='fast'; allowed: auto, dense"),
        ({"input_shape": (4, 4, 3)}, r"input_shape=\(4, 4, 3\); height and width must be >= 8"),
        ({"stem": "tiny"}, r"stem='tiny'; allowed: imagenet, small"),
        ({"width_multiplier": 0}, r"width_multiplier=0; allowed: a finite number > 0"),
        ({"middle_blocks": -1}, r"middle_blocks=-1; allowed: an integer >= 0"),
        ({"bn_momentum": 1.0}, r"bn_momentum=1.0; allowed: 0 <= bn_momentum < 1"),
        ({"dropout": 1.5}, r"dropout=1.5; allowed"),
        ({"weight_decay": -1.0}, r"weight_decay=-1.0; allowed: >= 0"),
        ({"classes": 0}, r"classes=0; allowed: an integer >= 1"),
        ({"pooling": "sum"}, r"pooling='sum'; allowed"),
    ],
)
def test_bad_argument_raises_value_error_with_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_from_preset("mini", **kwargs)


def test_imagenet_stem_refuses_inputs_under_71():
    with pytest.raises(ValueError, match=r"input_shape=\(32, 32, 3\); stem='imagenet' needs .* >= 71 .*stem='small'"):
        build_xception(input_shape=(32, 32, 3))


def test_unknown_preset():
    with pytest.raises(ValueError, match=r"preset='huge'; allowed: xception, mini, debug"):
        build_from_preset("huge")


def test_keyword_arguments_only():
    with pytest.raises(TypeError):
        build_xception(True)


def test_nearest_divisor_rule():
    assert divisors(728) == [1, 2, 4, 7, 8, 13, 14, 26, 28, 52, 56, 91, 104, 182, 364, 728]
    cases = {1: 1, 4: 4, 8: 8, 16: 14, 32: 28, 64: 56, 91: 91, 128: 104, 1000: 728, "depthwise": 728, "4": 4}
    assert {k: effective_segments(k, 728) for k in cases} == cases
    assert effective_segments(16, 184) == 23  # 184 = 8 * 23: log|16/23| < log|16/8|
    assert effective_segments(32, 16) == 16  # never more segments than channels
