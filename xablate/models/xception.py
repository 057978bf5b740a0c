"""`build_xception`: keras.applications.Xception with the paper's ablation axes as plain arguments.

The architecture is data (`ENTRY_FLOW`, `MIDDLE_BLOCK`, `EXIT_FLOW`); one block function builds every block,
so the three axes — `residual`, `intermediate_act`, `segments` — are resolved once and reach every separable
convolution the same way. With its defaults the model is keras.applications.Xception layer for layer:
same layer names (the unnamed shortcut layers get the names Keras gives them in a fresh session), output
shapes and 22,910,480 parameters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import keras
from keras import layers

from xablate.models.segment_conv import IMPLEMENTATIONS, SegmentConv2D
from xablate.models.segments import DEPTHWISE, ROUNDING_RULES, effective_segments, validate_segments

STEMS = ("imagenet", "small")
HEADS = ("avg", "flatten")  # the classifier's input with include_top
POOLINGS = (None, "avg", "max")
# keras.applications.Xception refuses inputs under 71x71 (two valid 3x3 convs, one strided, then four
# stride-2 stages); the small stem keeps full resolution and only needs the four stages to leave >= 1 pixel.
MIN_INPUT_SIZE = {"imagenet": 71, "small": 8}
WIDTH_DIVISOR = 8  # widths stay multiples of 8 so that k in {1, 2, 4, 8} divides every layer exactly


@dataclass(frozen=True)
class BlockSpec:
    """One Xception block: its separable convs' output widths and how they are wired.

    activation: "pre" — ReLU before each separable conv (entry/middle flow); "post" — ReLU after each BN
        (block 14). `first_activation=False` drops the ReLU in front of the first conv (block 2).
    shortcut: "projection" (strided 1x1 conv + BN), "identity", or None.
    """

    widths: tuple[int, ...]
    shortcut: str | None
    pool: bool
    activation: str = "pre"
    first_activation: bool = True


ENTRY_FLOW = (
    BlockSpec((128, 128), "projection", pool=True, first_activation=False),
    BlockSpec((256, 256), "projection", pool=True),
    BlockSpec((728, 728), "projection", pool=True),
)
MIDDLE_BLOCK = BlockSpec((728, 728, 728), "identity", pool=False)
EXIT_FLOW = (
    BlockSpec((728, 1024), "projection", pool=True),
    BlockSpec((1536, 2048), None, pool=False, activation="post"),
)
STEM_WIDTHS = (32, 64)


@dataclass(frozen=True)
class Axes:
    """The ablation axes and per-layer knobs every separable conv receives, resolved once."""

    residual: bool
    intermediate_act: str | None
    segments: int | str
    segment_rounding: str
    segment_impl: str
    bn_momentum: float
    regularizer: keras.regularizers.Regularizer | None


class _KerasAutoNames:
    """Names Keras gives unnamed layers in a fresh session (conv2d, conv2d_1, …), made deterministic."""

    def __init__(self):
        self.counts: dict[str, int] = {}

    def __call__(self, base: str) -> str:
        n = self.counts.get(base, 0)
        self.counts[base] = n + 1
        return base if n == 0 else f"{base}_{n}"


def scale_width(width: int, multiplier: float, divisor: int = WIDTH_DIVISOR) -> int:
    """`width * multiplier` rounded to the nearest multiple of `divisor` (8 by default; at least `divisor`)."""
    return max(divisor, int(round(width * multiplier / divisor)) * divisor)


def activation_names() -> list[str]:
    """Keras activation names accepted for `intermediate_act`."""
    skip = {"get", "serialize", "deserialize"}
    return sorted(n for n in dir(keras.activations) if not n.startswith("_") and n not in skip)


def normalize_activation(intermediate_act: str | None) -> str | None:
    """None/"none" -> None; a Keras activation name -> itself; anything else -> ValueError."""
    if intermediate_act is None or (isinstance(intermediate_act, str) and intermediate_act.lower() == "none"):
        return None
    allowed = ["none", *activation_names()]
    if not isinstance(intermediate_act, str) or intermediate_act not in activation_names():
        raise ValueError(f"Received intermediate_act={intermediate_act!r}; allowed: {', '.join(allowed)}.")
    return intermediate_act


def _validate(*, input_shape, classes, include_top, pooling, stem, width_multiplier, middle_blocks, bn_momentum,
              dropout, weight_decay, segment_rounding, segment_impl, head="avg",
              width_divisor=WIDTH_DIVISOR) -> tuple[int, int, int]:
    if head not in HEADS:
        raise ValueError(f"Received head={head!r}; allowed: {', '.join(HEADS)}.")
    if keras.config.image_data_format() != "channels_last":
        raise ValueError(
            f"Received image_data_format={keras.config.image_data_format()!r}; xablate builds channels_last models."
        )
    if stem not in STEMS:
        raise ValueError(f"Received stem={stem!r}; allowed: {', '.join(STEMS)}.")
    if len(tuple(input_shape)) != 3 or any(not isinstance(d, int) or d < 1 for d in input_shape):
        raise ValueError(f"Received input_shape={input_shape!r}; allowed: (height, width, channels), positive ints.")
    height, width, channels = input_shape
    if min(height, width) < MIN_INPUT_SIZE[stem]:
        raise ValueError(
            f"Received input_shape={tuple(input_shape)}; stem={stem!r} needs height and width >= "
            f"{MIN_INPUT_SIZE[stem]} (use stem='small' for small images)."
            if stem == "imagenet" else
            f"Received input_shape={tuple(input_shape)}; height and width must be >= {MIN_INPUT_SIZE[stem]}."
        )
    if include_top and (isinstance(classes, bool) or not isinstance(classes, int) or classes < 1):
        raise ValueError(f"Received classes={classes!r}; allowed: an integer >= 1.")
    if pooling not in POOLINGS:
        raise ValueError(f"Received pooling={pooling!r}; allowed: None, 'avg', 'max'.")
    if not (isinstance(width_multiplier, (int, float)) and math.isfinite(width_multiplier) and width_multiplier > 0):
        raise ValueError(f"Received width_multiplier={width_multiplier!r}; allowed: a finite number > 0.")
    if isinstance(width_divisor, bool) or not isinstance(width_divisor, int) or width_divisor < 1:
        raise ValueError(f"Received width_divisor={width_divisor!r}; allowed: an integer >= 1.")
    if isinstance(middle_blocks, bool) or not isinstance(middle_blocks, int) or middle_blocks < 0:
        raise ValueError(f"Received middle_blocks={middle_blocks!r}; allowed: an integer >= 0.")
    if not 0.0 <= bn_momentum < 1.0:
        raise ValueError(f"Received bn_momentum={bn_momentum!r}; allowed: 0 <= bn_momentum < 1.")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"Received dropout={dropout!r}; allowed: 0 <= dropout < 1.")
    if not weight_decay >= 0.0:
        raise ValueError(f"Received weight_decay={weight_decay!r}; allowed: >= 0.")
    if segment_rounding not in ROUNDING_RULES:
        raise ValueError(f"Received segment_rounding={segment_rounding!r}; allowed: {', '.join(ROUNDING_RULES)}.")
    if segment_impl != "auto" and segment_impl not in IMPLEMENTATIONS:
        raise ValueError(f"Received segment_impl={segment_impl!r}; allowed: auto, {', '.join(IMPLEMENTATIONS)}.")
    return height, width, channels


def build_xception(
    *,
    residual: bool = True,
    intermediate_act: str | None = None,
    segments: int | str = DEPTHWISE,
    segment_rounding: str = "nearest",
    segment_impl: str = "auto",
    include_top: bool = True,
    input_shape: Sequence[int] = (299, 299, 3),
    classes: int = 1000,
    pooling: str | None = None,
    classifier_activation: str | None = "softmax",
    width_multiplier: float = 1.0,
    width_divisor: int = WIDTH_DIVISOR,
    middle_blocks: int = 8,
    stem: str = "imagenet",
    bn_momentum: float = 0.99,
    dropout: float = 0.0,
    weight_decay: float = 0.0,
    head: str = "avg",
    name: str = "xception",
) -> keras.Model:
    """Builds an Xception variant. With the defaults: keras.applications.Xception(weights=None).

    Args:
        residual: keep the shortcut branches (entry/exit strided 1x1 convs, middle identity adds).
        intermediate_act: None or "none" (the paper's default), or a Keras activation name ("relu", "elu", …)
            placed between the spatial and the pointwise op of every separable conv; adds no parameters.
        segments: channel segments of every spatial conv: 1 (regular 3x3 conv), an integer k, or "depthwise"
            (one segment per channel, the stock model). See `segment_rounding` for k not dividing a layer.
        segment_rounding: "nearest" — per layer, the divisor of its channels nearest to k (log scale);
            "exact" — k must divide every layer's channels.
        segment_impl: "auto" or a SegmentConv2D implementation to force (benchmarks, equivalence tests).
        include_top, input_shape, classes, pooling, classifier_activation, name: as in keras.applications.
        width_multiplier: scales every width, rounded to a multiple of `width_divisor`.
        width_divisor: widths are multiples of it (8: k in {1, 2, 4, 8} divides every layer). Compute-matched
            spectrum points (xablate.models.matching) use k itself: finer widths, and k exact in every layer.
        middle_blocks: number of middle-flow blocks (8 in the paper).
        stem: "imagenet" (3x3 stride-2 valid conv, 3x3 valid conv; >= 71x71 input) or "small" (both stride 1,
            same padding; for 32x32 images).
        bn_momentum: BatchNormalization momentum (Keras' 0.99 is too slow for short CPU runs).
        dropout: dropout rate before the classifier (paper: 0.5).
        weight_decay: L2 factor on every conv and dense kernel (paper: 1e-5).
        head: with include_top, the classifier's input: "avg" (global average pooling, keras.applications) or
            "flatten" (Flatten of the last feature map, as the seed project's fine-tuning head).

    Raises:
        ValueError: naming the argument, the value received and what is allowed.
    """
    height, width, _ = _validate(
        input_shape=input_shape, classes=classes, include_top=include_top, pooling=pooling, stem=stem,
        width_multiplier=width_multiplier, width_divisor=width_divisor, middle_blocks=middle_blocks, bn_momentum=bn_momentum, dropout=dropout,
        weight_decay=weight_decay, segment_rounding=segment_rounding, segment_impl=segment_impl, head=head,
    )
    axes = Axes(
        residual=bool(residual),
        intermediate_act=normalize_activation(intermediate_act),
        segments=validate_segments(segments),
        segment_rounding=segment_rounding,
        segment_impl=segment_impl,
        bn_momentum=float(bn_momentum),
        regularizer=keras.regularizers.L2(weight_decay) if weight_decay else None,
    )
    auto_name = _KerasAutoNames()
    inputs = layers.Input(shape=tuple(input_shape), name="input_layer")
    x = _stem(inputs, stem, width_multiplier, width_divisor, axes)
    blocks = [*ENTRY_FLOW, *([MIDDLE_BLOCK] * middle_blocks), *EXIT_FLOW]
    for index, spec in enumerate(blocks, start=2):
        x = _block(x, spec, index, width_multiplier, width_divisor, axes, auto_name)
    x = _head(x, include_top=include_top, pooling=pooling, classes=classes,
              classifier_activation=classifier_activation, dropout=dropout, axes=axes, head=head)
    return keras.Model(inputs, x, name=name)


def _batch_norm(axes: Axes, name: str):
    return layers.BatchNormalization(axis=-1, momentum=axes.bn_momentum, name=name)


def _stem(x, stem: str, multiplier: float, divisor: int, axes: Axes):
    strides, padding = ((2, 1), "valid") if stem == "imagenet" else ((1, 1), "same")
    for j, (base_width, stride) in enumerate(zip(STEM_WIDTHS, strides), start=1):
        x = layers.Conv2D(scale_width(base_width, multiplier, divisor), 3, strides=stride, padding=padding, use_bias=False,
                          kernel_regularizer=axes.regularizer, name=f"block1_conv{j}")(x)
        x = _batch_norm(axes, f"block1_conv{j}_bn")(x)
        x = layers.Activation("relu", name=f"block1_conv{j}_act")(x)
    return x


def _separable(x, filters: int, axes: Axes, name: str):
    """The spectrum point of one layer: Keras' SeparableConv2D where it is the stock layer, else ours."""
    channels = int(x.shape[-1])
    k = effective_segments(axes.segments, channels, rounding=axes.segment_rounding, layer=name)
    if k == channels and axes.intermediate_act is None and axes.segment_impl == "auto":
        return layers.SeparableConv2D(filters, 3, padding="same", use_bias=False, name=name,
                                      depthwise_regularizer=axes.regularizer,
                                      pointwise_regularizer=axes.regularizer)(x)
    return SegmentConv2D(filters, k, intermediate_activation=axes.intermediate_act,
                         implementation=axes.segment_impl, kernel_regularizer=axes.regularizer, name=name)(x)


def _block(x, spec: BlockSpec, index: int, multiplier: float, divisor: int, axes: Axes,
           auto_name: _KerasAutoNames):
    prefix = f"block{index}"
    widths = [scale_width(w, multiplier, divisor) for w in spec.widths]
    shortcut = x
    if axes.residual and spec.shortcut == "projection":
        shortcut = layers.Conv2D(widths[-1], 1, strides=2, padding="same", use_bias=False,
                                 kernel_regularizer=axes.regularizer, name=auto_name("conv2d"))(x)
        shortcut = _batch_norm(axes, auto_name("batch_normalization"))(shortcut)
    for j, filters in enumerate(widths, start=1):
        act_name = f"{prefix}_sepconv{j}_act"
        if spec.activation == "pre" and (j > 1 or spec.first_activation):
            x = layers.Activation("relu", name=act_name)(x)
        x = _separable(x, filters, axes, name=f"{prefix}_sepconv{j}")
        x = _batch_norm(axes, f"{prefix}_sepconv{j}_bn")(x)
        if spec.activation == "post":
            x = layers.Activation("relu", name=act_name)(x)
    if spec.pool:
        x = layers.MaxPooling2D(3, strides=2, padding="same", name=f"{prefix}_pool")(x)
    if axes.residual and spec.shortcut is not None:
        x = layers.Add(name=auto_name("add"))([x, shortcut])
    return x


def _head(x, *, include_top, pooling, classes, classifier_activation, dropout, axes: Axes, head="avg"):
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x) if head == "avg" else layers.Flatten(name="flatten")(x)
        if dropout:
            x = layers.Dropout(dropout, name="dropout")(x)
        # under a mixed precision policy the classifier computes in float32 (stable softmax, float32 metrics)
        mixed = keras.config.dtype_policy().name.startswith("mixed")
        return layers.Dense(classes, activation=classifier_activation, kernel_regularizer=axes.regularizer,
                            name="predictions", dtype="float32" if mixed else None)(x)
    if pooling == "avg":
        return layers.GlobalAveragePooling2D(name="global_average_pooling2d")(x)
    if pooling == "max":
        return layers.GlobalMaxPooling2D(name="global_max_pooling2d")(x)
    return x


def check_build_kwargs(**kwargs) -> None:
    """Validates builder arguments without building (fails like build_xception would, before any work)."""
    import inspect

    parameters = inspect.signature(build_xception).parameters
    unknown = sorted(set(kwargs) - set(parameters))
    if unknown:
        raise ValueError(f"Received unknown model argument(s) {unknown}; allowed: {', '.join(parameters)}.")
    merged = {name: p.default for name, p in parameters.items()} | kwargs
    _validate(**{k: merged[k] for k in (
        "input_shape", "classes", "include_top", "pooling", "stem", "width_multiplier", "width_divisor",
        "middle_blocks", "bn_momentum", "dropout", "weight_decay", "segment_rounding", "segment_impl", "head")})
    normalize_activation(merged["intermediate_act"])
    segments = validate_segments(merged["segments"])
    if segments == DEPTHWISE:
        return
    layers_in = separable_inputs(merged["width_multiplier"], merged["middle_blocks"], merged["width_divisor"])
    widest = max(channels for _, channels in layers_in)
    if segments > widest:
        raise ValueError(f"Received segments={segments}; allowed: 1 to {widest} (the widest separable layer's input "
                         f"channels in this model) or \"depthwise\".")
    for name, channels in layers_in:
        effective_segments(segments, channels, rounding=merged["segment_rounding"], layer=name)


def separable_inputs(width_multiplier: float, middle_blocks: int,
                     width_divisor: int = WIDTH_DIVISOR) -> list[tuple[str, int]]:
    """(layer name, input channels) of every separable conv, in order, without building the model."""
    channels = scale_width(STEM_WIDTHS[-1], width_multiplier, width_divisor)
    result = []
    for index, spec in enumerate([*ENTRY_FLOW, *([MIDDLE_BLOCK] * middle_blocks), *EXIT_FLOW], start=2):
        for j, width in enumerate(spec.widths, start=1):
            result.append((f"block{index}_sepconv{j}", channels))
            channels = scale_width(width, width_multiplier, width_divisor)
    return result
