"""SegmentConv2D: spatial convolution over k channel segments -> optional activation -> pointwise conv.

One layer covers Xception's whole spectrum: k = 1 is a regular 3x3 convolution followed by a 1x1,
k = channels is a depthwise separable convolution, and anything between is an Inception-like grouped
convolution. The weights are stored in `Conv2D(groups=k)` layout whatever the implementation, so a
checkpoint does not depend on which implementation ran:

    spatial_kernel:   (kh, kw, channels // k, channels)   output channel o reads segment o // (channels // k)
    pointwise_kernel: (1, 1, channels, filters)

`Conv2D(groups=k)` itself is 6-1000x slower (k > 1) than the alternatives on CPU (Keras' TensorFlow backend sends
grouped convolutions through XLA), so the spatial op is computed by one of several equivalent
implementations (g = channels // k channels per segment), chosen per backend and k by `choose_implementation`:

    dense, grouped   one ops.conv with the grouped kernel (k = 1; torch runs groups natively)
    split            k convs on channel slices, concatenated (9*C*g multiply-adds per pixel)
    masked           one dense conv with a block-diagonal kernel (9*C*C: k times the grouped cost)
    blocked          split into blocks of adjacent segments, at most BLOCK_WIDTH = 16 channels each, one dense
                     conv with a block-diagonal kernel per block: any g < 16 costs 9*C*16, what k = C/16 costs
    depthwise_sum    one depthwise conv with channel multiplier g, then a sum over each segment's inputs
    depthwise_shift  g multiplier-1 depthwise convs, summed; the d-th reads the input permuted inside each
                     segment (position o XOR d: one flip; cyclic for widths that are not powers of two: a roll)
    depthwise        k = channels: one depthwise conv

What the TensorFlow choice rests on: `xablate bench segments` (results/bench/segments.md, 2026-11-28,
TF 2.21 CPU built without oneDNN, Keras 3.15; 128 channels at 32x32, seconds per epoch of 512 images, fastest of
10 interleaved train steps, 2 cores shared with a load average of 5-10):

    k                 8     16     32     64    128
    split          4.36   4.94   7.51  15.60
    blocked           -   3.39   4.25   4.29
    depthwise_shift   -   5.75   4.77   3.06
    depthwise                                 2.43
    auto           4.61   3.21   3.73   3.21   2.55

At k = 16..64 `blocked` runs the same eight 16-wide convs as split at k = 8, so the expectation there is a tie
with k = 8, not a fall below it (3.39 vs 4.36 above is the machine's noise). `depthwise_shift` costs about g
depthwise convs plus g - 1 flips (on TF CPU a flip of the innermost axis costs about one depthwise forward):
it wins at g = 2 (1.2-1.3x the depthwise step in two runs) and is within the noise of `blocked` at g = 4
(taken: of five interleaved comparisons it won three by 5-11 % and lost two by 12 and 29 %). The machine was
shared throughout: cells of one run are interleaved, yet one implementation in two cells of a run differed by
up to 30 % (auto and depthwise_shift at k = 32 above).

Tried and dropped (scratch runs in the same conditions, interleaved with the implementations above): one
batched matmul over the segments of the 3x3 patches (9 shifted slices of the padded input, then a (k, 9g, g)
matmul) 2-3x slower than split or blocked at k = 8..64, 8x as an einsum (k = 64); the 9 taps as elementwise
multiply-adds under tf.function(jit_compile=True) 20-50x slower; `depthwise_shift` with tf.roll (of the
output or the input) instead of a flip of the input 1.5-2.7x slower; one depthwise conv over [x, flip(x)]
stacked on channels, slower than two. JAX was not measured (the bench under JAX did not finish within 8
minutes on the shared machine), so JAX keeps the choice made before `blocked` and `depthwise_shift` existed.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

IMPLEMENTATIONS = ("dense", "grouped", "split", "masked", "depthwise_sum", "depthwise", "blocked", "depthwise_shift")
# `blocked` merges adjacent segments into blocks of at most this many channels, one dense conv each: at 128
# channels on TensorFlow CPU 16-wide dense convs were the fastest per multiply-add (split at k = 4, 8, 16:
# segments 32, 16, 8 wide), so narrower segments cost the same as k = 8 instead of more.
BLOCK_WIDTH = 16
# g multiplier-1 depthwise convs (`depthwise_shift`) beat `blocked` for segments of 2 channels, and of up to this
# many where the shifts are flips (powers of two) and the layer is wide enough for `blocked` to apply.
DEPTHWISE_SHIFT_MAX_SEGMENT_WIDTH = 4
# The choice before `blocked` and `depthwise_shift` existed, kept for JAX, where they were not measured.
DEPTHWISE_SUM_MAX_SEGMENT_WIDTH = 2


def choose_implementation(segments: int, channels: int, backend: str | None = None) -> str:
    """The fastest known spatial implementation for k segments over `channels` on a backend.

    TensorFlow (measured, see the module docstring): `dense` at k = 1, `depthwise` at k = channels,
    `depthwise_shift` for segments of 2 channels (and of 4 where `blocked` would apply), `blocked` where
    segments narrower than BLOCK_WIDTH merge into several blocks, else `split`. Torch: `grouped` (native).
    JAX: the table from before `blocked` and `depthwise_shift`, which were not measured under JAX.
    """
    backend = backend or keras.backend.backend()
    if segments == 1:
        return "dense"
    if segments == channels:
        return "depthwise"
    if backend == "torch":  # torch runs groups natively at normal speed
        return "grouped"
    width = channels // segments
    if backend == "jax":
        return "depthwise_sum" if width <= DEPTHWISE_SUM_MAX_SEGMENT_WIDTH else "split"
    blocks_apply = 1 < _segment_members_per_block(segments, width) < segments
    if width == 2 or (width <= DEPTHWISE_SHIFT_MAX_SEGMENT_WIDTH and _xor_shifts(width) and blocks_apply):
        return "depthwise_shift"
    return "blocked" if blocks_apply else "split"


def _segment_blocks(kernel, segments: int):
    """(kh, kw, g, C) grouped kernel -> (kh, kw, g_in, k, g_out) with segment j on axis 3."""
    kh, kw, g, channels = kernel.shape
    return ops.reshape(kernel, (kh, kw, g, segments, channels // segments))


def spatial_grouped(x, kernel, segments, padding):
    return ops.conv(x, kernel, padding=padding)


def spatial_split(x, kernel, segments, padding):
    inputs = ops.split(x, segments, axis=-1)
    kernels = ops.split(kernel, segments, axis=-1)
    return ops.concatenate([ops.conv(xi, ki, padding=padding) for xi, ki in zip(inputs, kernels)], axis=-1)


def spatial_masked(x, kernel, segments, padding):
    kh, kw, g, channels = kernel.shape
    blocks = _segment_blocks(kernel, segments)  # (h, w, i, j, o)
    eye = ops.eye(segments, dtype=kernel.dtype)
    dense = ops.einsum("hwijo,jJ->hwjiJo", blocks, eye)  # block-diagonal (h, w, C_in, C_out)
    return ops.conv(x, ops.reshape(dense, (kh, kw, channels, channels)), padding=padding)


def spatial_depthwise_sum(x, kernel, segments, padding):
    kh, kw, g, channels = kernel.shape
    # Input channel j*g+i produces g outputs (one per output channel of its segment) ...
    blocks = ops.transpose(_segment_blocks(kernel, segments), (0, 1, 3, 2, 4))  # (h, w, j, i, o)
    y = ops.depthwise_conv(x, ops.reshape(blocks, (kh, kw, channels, g)), padding=padding)
    # ... laid out as [j, i, o]; summing over i gives output channel j*g+o.
    shape = ops.shape(y)
    y = ops.reshape(y, (-1, shape[1], shape[2], segments, g, g))
    return ops.reshape(ops.sum(y, axis=-2), (-1, shape[1], shape[2], channels))


def _segment_members_per_block(segments: int, width: int) -> int:
    """Segments merged into one block by `blocked`: the most that divide k and fit in BLOCK_WIDTH channels."""
    return max(m for m in range(1, segments + 1) if segments % m == 0 and (m * width <= BLOCK_WIDTH or m == 1))


def spatial_blocked(x, kernel, segments, padding):
    kh, kw, g, channels = kernel.shape
    members = _segment_members_per_block(segments, g)
    blocks = channels // (members * g)
    # One dense conv per block of `members` adjacent segments, its kernel block-diagonal (as in `masked`).
    per_block = ops.reshape(kernel, (kh, kw, g, blocks, members, g))  # (h, w, i, b, j, o)
    eye = ops.eye(members, dtype=kernel.dtype)
    dense = ops.einsum("hwibjo,jJ->bhwjiJo", per_block, eye)  # (b, h, w, j, i, J, o): zero unless j == J
    dense = ops.reshape(dense, (blocks, kh, kw, members * g, members * g))
    if blocks == 1:
        return ops.conv(x, dense[0], padding=padding)
    inputs = ops.split(x, blocks, axis=-1)
    return ops.concatenate([ops.conv(xb, dense[b], padding=padding) for b, xb in enumerate(inputs)], axis=-1)


def _xor_shifts(width: int) -> bool:
    # Powers of two up to 64: there, o XOR d permutes a tensor with one flip of at most 7 axes (TF's limit: 8).
    return width & (width - 1) == 0 and width <= 64


def _shift_source(width: int, shift: int) -> np.ndarray:
    """pi_d: the position inside a segment that output position o reads at shift d (a bijection for every d).

    o XOR d for a power-of-two width (permuting a tensor is then one flip), else the cyclic (o - d) mod g (a
    roll). Either way every (input i, output o) pair of a segment occurs at exactly one shift d.
    """
    o = np.arange(width)
    return o ^ shift if _xor_shifts(width) else (o - shift) % width


def _permute_segments(x, segments: int, width: int, shift: int):
    """x with channel j*g + o replaced by channel j*g + pi_d(o)."""
    shape = ops.shape(x)
    if not _xor_shifts(width):
        y = ops.roll(ops.reshape(x, (-1, shape[1], shape[2], segments, width)), shift, axis=-1)
        return ops.reshape(y, (-1, shape[1], shape[2], segments * width))
    # o's bits, most significant first, grouped into runs that d flips or keeps: o XOR d reverses the flipped runs.
    flags = [shift >> b & 1 for b in reversed(range(width.bit_length() - 1))]
    runs = []
    for flag in flags:
        if runs and runs[-1][0] == flag:
            runs[-1][1] *= 2
        else:
            runs.append([flag, 2])
    y = ops.reshape(x, (-1, *[size for _, size in runs]))
    y = ops.flip(y, axis=tuple(1 + r for r, (flag, _) in enumerate(runs) if flag))
    return ops.reshape(y, (-1, shape[1], shape[2], segments * width))


def spatial_depthwise_shift(x, kernel, segments, padding):
    kh, kw, g, channels = kernel.shape
    flat = ops.reshape(kernel, (kh, kw, g * channels))
    c = np.arange(channels)
    y = None
    for d in range(g):
        # Output channel c = j*g+o gets segment j's input position i = pi_d(o) through kernel[..., i, c]: with the
        # input permuted inside each segment so that channel c holds x[j*g+i], that is one multiplier-1
        # depthwise conv. Over the g shifts every (i, o) pair of every segment is covered once.
        source = _shift_source(g, d)[c % g]
        kd = ops.take(flat, ops.convert_to_tensor((source * channels + c).astype("int32")), axis=2)
        xd = _permute_segments(x, segments, g, d) if d else x
        yd = ops.depthwise_conv(xd, ops.reshape(kd, (kh, kw, channels, 1)), padding=padding)
        y = yd if y is None else y + yd
    return y


def spatial_depthwise(x, kernel, segments, padding):
    kh, kw, _, channels = kernel.shape
    return ops.depthwise_conv(x, ops.reshape(kernel, (kh, kw, channels, 1)), padding=padding)


SPATIAL_OPS = {
    "dense": spatial_grouped,  # k = 1: the same call is a regular convolution
    "grouped": spatial_grouped,
    "split": spatial_split,
    "masked": spatial_masked,
    "depthwise_sum": spatial_depthwise_sum,
    "depthwise": spatial_depthwise,
    "blocked": spatial_blocked,
    "depthwise_shift": spatial_depthwise_shift,
}


@keras.saving.register_keras_serializable(package="xablate")
class SegmentConv2D(keras.layers.Layer):
    """Spatial convolution over `segments` channel groups, optional activation, then a 1x1 convolution.

    Args:
        filters: output channels of the pointwise convolution.
        segments: number of channel segments of the spatial convolution; must divide the input channels
            (1 = regular convolution, channels = depthwise).
        kernel_size: spatial kernel size (int or pair), 3 in Xception.
        intermediate_activation: None, or a Keras activation name applied between the spatial and the
            pointwise op (the paper's Fig. 10 axis); adds no parameters.
        implementation: "auto" (choose_implementation) or one of IMPLEMENTATIONS; all give the same result.
        padding: "same" or "valid".
        kernel_initializer, kernel_regularizer: applied to both kernels.
    """

    def __init__(
        self,
        filters: int,
        segments: int,
        kernel_size: int | tuple[int, int] = 3,
        intermediate_activation: str | None = None,
        implementation: str = "auto",
        padding: str = "same",
        kernel_initializer="glorot_uniform",
        kernel_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if implementation != "auto" and implementation not in IMPLEMENTATIONS:
            raise ValueError(
                f"Received implementation={implementation!r}; allowed: 'auto', {', '.join(IMPLEMENTATIONS)}."
            )
        if padding not in ("same", "valid"):
            raise ValueError(f"Received padding={padding!r}; allowed: 'same', 'valid'.")
        self.filters = int(filters)
        self.segments = int(segments)
        self.kernel_size = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
        self.intermediate_activation = intermediate_activation
        self.implementation = implementation
        self.padding = padding
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self._activation = keras.activations.get(intermediate_activation) if intermediate_activation else None

    def build(self, input_shape):
        channels = int(input_shape[-1])
        if channels % self.segments:
            raise ValueError(
                f"Received segments={self.segments} for {channels} input channels in layer {self.name}; "
                f"segments must divide the input channels."
            )
        self.channels = channels
        self.resolved_implementation = (
            choose_implementation(self.segments, channels) if self.implementation == "auto" else self.implementation
        )
        self._spatial = SPATIAL_OPS[self.resolved_implementation]
        self.spatial_kernel = self.add_weight(
            name="spatial_kernel",
            shape=(*self.kernel_size, channels // self.segments, channels),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
        )
        self.pointwise_kernel = self.add_weight(
            name="pointwise_kernel",
            shape=(1, 1, channels, self.filters),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
        )

    def call(self, inputs):
        x = self._spatial(inputs, self.spatial_kernel, self.segments, self.padding)
        if self._activation is not None:
            x = self._activation(x)
        return ops.conv(x, self.pointwise_kernel, padding="valid")

    def compute_output_shape(self, input_shape):
        height, width = input_shape[1:3]
        if self.padding == "valid":
            height = None if height is None else height - self.kernel_size[0] + 1
            width = None if width is None else width - self.kernel_size[1] + 1
        return (input_shape[0], height, width, self.filters)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "segments": self.segments,
            "kernel_size": self.kernel_size,
            "intermediate_activation": self.intermediate_activation,
            "implementation": self.implementation,
            "padding": self.padding,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
        }
