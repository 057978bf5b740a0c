"""What a built model is, in the numbers a run logs: parameters, multiply-adds, per-layer segments."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import keras
import numpy as np

from xablate.models.segment_conv import SegmentConv2D


@dataclass(frozen=True)
class SeparableLayer:
    """One separable conv of the spectrum: its widths and the segments its spatial op actually uses."""

    name: str
    in_channels: int
    out_channels: int
    segments: int
    channels_per_segment: int
    implementation: str
    params: int


@dataclass(frozen=True)
class ModelSummary:
    total_params: int
    trainable_params: int
    non_trainable_params: int
    mult_adds: int  # multiply-accumulates per image in conv and dense layers
    separable_layers: list[SeparableLayer] = field(default_factory=list)

    @property
    def flops(self) -> int:
        """FLOPs per image, counting a multiply-add as two."""
        return 2 * self.mult_adds

    def to_dict(self) -> dict:
        return {**asdict(self), "flops": self.flops}

    def format_table(self) -> str:
        """A plain-text table: totals, then one line per separable layer."""
        lines = [
            f"parameters: {self.total_params:,} total, {self.trainable_params:,} trainable",
            f"per image:  {self.mult_adds / 1e6:,.1f} M mult-adds ({self.flops / 1e6:,.1f} MFLOPs)",
            f"{'layer':<18} {'in':>5} {'out':>5} {'segments':>8} {'ch/seg':>6}  implementation",
        ]
        lines += [
            f"{l.name:<18} {l.in_channels:>5} {l.out_channels:>5} {l.segments:>8} {l.channels_per_segment:>6}"
            f"  {l.implementation}"
            for l in self.separable_layers
        ]
        return "\n".join(lines)

    def to_params(self) -> dict[str, int | str]:
        """Flat key -> value pairs for MLflow params."""
        params = {
            "model.total_params": self.total_params,
            "model.trainable_params": self.trainable_params,
            "model.mult_adds": self.mult_adds,
            "model.flops": self.flops,
        }
        params.update({f"segments.{layer.name}": layer.segments for layer in self.separable_layers})
        return params


def _count(weights) -> int:
    return int(sum(np.prod(w.shape) for w in weights))


def _spatial(layer) -> tuple[int, int]:
    shape = layer.output.shape
    return int(shape[1]), int(shape[2])


def _layer_mult_adds(layer) -> int:
    if isinstance(layer, keras.layers.Dense):
        return int(layer.kernel.shape[0] * layer.kernel.shape[1])
    if isinstance(layer, (keras.layers.Conv2D, keras.layers.SeparableConv2D, keras.layers.DepthwiseConv2D,
                          SegmentConv2D)):
        # Every kernel here is applied once per output pixel (stride 1 same-padded spatial op in separable
        # layers; the pointwise op runs at the same resolution).
        h, w = _spatial(layer)
        return h * w * sum(int(np.prod(k.shape)) for k in layer.trainable_weights if len(k.shape) == 4)
    return 0


def _separable_info(layer) -> SeparableLayer | None:
    if isinstance(layer, SegmentConv2D):
        channels, k, impl = layer.channels, layer.segments, layer.resolved_implementation
    elif isinstance(layer, keras.layers.SeparableConv2D):
        channels = int(layer.depthwise_kernel.shape[2])
        k, impl = channels, "keras_separable"
    else:
        return None
    return SeparableLayer(
        name=layer.name,
        in_channels=channels,
        out_channels=int(layer.output.shape[-1]),
        segments=k,
        channels_per_segment=channels // k,
        implementation=impl,
        params=layer.count_params(),
    )


def summarize_model(model: keras.Model) -> ModelSummary:
    """Parameter counts, multiply-adds per image and the effective segments of every separable layer."""
    separable = [info for info in map(_separable_info, model.layers) if info is not None]
    return ModelSummary(
        total_params=model.count_params(),
        trainable_params=_count(model.trainable_weights),
        non_trainable_params=_count(model.non_trainable_weights),
        mult_adds=sum(_layer_mult_adds(layer) for layer in model.layers),
        separable_layers=separable,
    )
