"""Starting a variant from pretrained weights (`model.weights`): Keras' published ImageNet Xception, or a file.

Files read, without running any code they might hold:
  - Keras' published HDF5 weights (the `keras.applications` files: one group per layer, `weight_names` in order);
  - Keras 3 `.weights.h5` (`layers/<class-based key>/vars/<i>`, named through a build of the same family);
  - `.keras` archives: only their `model.weights.h5` is read; the model's config is never deserialised, which
    is stricter than Keras' safe mode (no layer, lambda or custom object from the file is ever built).

Loading is by layer name and tensor shape: a tensor whose shape matches loads; one whose shape differs only by
unit axes loads reshaped (a depthwise kernel (3, 3, C, 1) is the grouped kernel (3, 3, 1, C) of C segments, in
the same element order); any other (the grouped spatial kernels when `segments` is not depthwise, the classifier
when the class count differs) stays freshly initialised. Layers the variant lacks (the shortcut convs when
`residual=False`) are ignored. A file that loads nothing is an error, not a silent random init.
"""

from __future__ import annotations

import io
import json
import os
import re
import socket
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

IMAGENET = "imagenet"
# keras.applications.Xception's weights without the classifier (our head is built for the data's classes)
IMAGENET_FILE = "xception_weights_tf_dim_ordering_tf_kernels_notop.h5"
IMAGENET_ORIGIN = ("https://storage.googleapis.com/tensorflow/keras-applications/xception/" + IMAGENET_FILE)
IMAGENET_HASH = "b0042744bf5b25fce3cb969f33bebb97"
IMAGENET_RANGE = (-1.0, 1.0)  # the input scaling the ImageNet weights were trained with
WEIGHT_SUFFIXES = (".h5", ".hdf5", ".keras")
DOWNLOAD_TIMEOUT_SECONDS = 20


@dataclass
class LoadReport:
    """What loading did: tensors loaded and left fresh (with why), parameters loaded, file layers not used."""

    loaded: list[str] = field(default_factory=list)
    fresh: list[tuple[str, tuple, str]] = field(default_factory=list)
    loaded_parameters: int = 0
    unused_layers: list[str] = field(default_factory=list)

    def params(self) -> dict[str, int]:
        return {"init.loaded_tensors": len(self.loaded), "init.fresh_tensors": len(self.fresh),
                "init.loaded_parameters": self.loaded_parameters}

    def fresh_listing(self) -> str:
        lines = [f"{name}\t{shape}\t{why}" for name, shape, why in self.fresh]
        lines += [f"(not in this variant) {layer}" for layer in self.unused_layers]
        return "tensor\tshape\twhy it is freshly initialised\n" + "\n".join(lines) + "\n"


def keras_cache_dir() -> Path:
    """Where Keras caches downloaded weights: $KERAS_HOME or ~/.keras, then models/."""
    return Path(os.environ.get("KERAS_HOME") or os.path.expanduser("~/.keras")) / "models"


def check_weights_setting(weights) -> None:
    """`model.weights`: null, "imagenet" or a weights file that exists (checked before any run)."""
    if weights is None or weights == IMAGENET:
        return
    if not isinstance(weights, str):
        raise ValueError(f"Received model.weights={weights!r}; allowed: null (random init), imagenet, or a path to "
                         f"a weights file ({', '.join(WEIGHT_SUFFIXES)}).")
    path = Path(weights).expanduser()
    if not path.name.lower().endswith(WEIGHT_SUFFIXES):
        raise ValueError(f"Received model.weights={weights!r}; allowed: null, imagenet, or a Keras weights file "
                         f"ending in {', '.join(WEIGHT_SUFFIXES)}.")
    if not path.is_file():
        raise ValueError(f"Received model.weights={weights!r}; the file does not exist ({path.resolve()}).")


def weights_file(weights) -> Path | None:
    """The file `model.weights` names: None for random init; for imagenet, Keras' cached file, downloaded into
    Keras' cache as keras.applications does when it is missing; a clear error when it cannot be had."""
    if weights is None:
        return None
    if weights != IMAGENET:
        return Path(weights).expanduser()
    cached = keras_cache_dir() / IMAGENET_FILE
    if cached.is_file():
        return cached
    import keras

    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_SECONDS)
    try:
        return Path(keras.utils.get_file(IMAGENET_FILE, IMAGENET_ORIGIN, cache_subdir="models",
                                         file_hash=IMAGENET_HASH, cache_dir=str(keras_cache_dir().parent)))
    except Exception as error:  # no network, a proxy, a partial file: all end the same way
        raise ValueError(
            f"Received model.weights=imagenet, but {IMAGENET_FILE} is not in Keras' cache ({keras_cache_dir()}) and "
            f"could not be downloaded ({type(error).__name__}: {str(error)[:200]}). Put the file in that folder "
            f"(or set KERAS_HOME to a folder whose models/ holds it), or pass model.weights=<path to the file>."
        ) from None
    finally:
        socket.setdefaulttimeout(previous)


def read_weights(path: Path, candidates=()) -> dict[str, list[np.ndarray]]:
    """{layer name: its tensors in order} from any of the supported files.

    Keras 3 files key layers by class (`separable_conv2d_5`: the sixth SeparableConv2D of the model), not by
    name. A `.keras` archive's config.json names them (read as JSON; nothing is built from it). A bare
    `.weights.h5` does not: its keys are matched against `candidates` (models of the same family, e.g. the
    variant's own architecture with and without shortcuts, stock or segment convs), and the first whose layer
    classes, order and tensor shapes match the file lends its layer names."""
    import h5py

    path = Path(path)
    if path.name.lower().endswith(".keras"):
        with zipfile.ZipFile(path) as archive:
            data = archive.read("model.weights.h5")
            config = json.loads(archive.read("config.json"))
        layers = config.get("config", {}).get("layers", [])
        names = {key: entry.get("name") or entry["config"]["name"]
                 for key, entry in zip(keras_saving_keys([e["class_name"] for e in layers]), layers)}
        with h5py.File(io.BytesIO(data), "r") as f:
            stored = _read_h5(f)
        return _named(stored, names, path) if _keras3(stored) else stored
    with h5py.File(path, "r") as f:
        stored = _read_h5(f)
    if not _keras3(stored):
        return stored
    for model in candidates:
        classes = [type(layer).__name__ for layer in model.layers]
        names = dict(zip(keras_saving_keys(classes), (layer.name for layer in model.layers)))
        by_name = {layer.name: layer for layer in model.layers}
        keys = {key[len(KERAS3):]: tensors for key, tensors in stored.items()}
        if set(keys) <= set(names) and all(
                [tuple(t.shape) for t in tensors] == [tuple(w.shape) for w in by_name[names[key]].weights]
                for key, tensors in keys.items()):
            return _named(stored, names, path)
    raise ValueError(f"Received model.weights={str(path)!r}: a Keras 3 .weights.h5 holds no layer names, and its "
                     f"layers did not match this model's architecture with or without shortcuts and stock or "
                     f"segment separable convs. Pass the .keras file it was saved with (its config names the layers).")


KERAS3 = "keras3:"  # marks the class-based keys of a Keras 3 file until they are named


def keras_saving_keys(class_names: list[str]) -> list[str]:
    """The keys Keras 3's saving gives a model's layers, in order: the class name in snake case, made unique by
    a counter per name (keras.saving's rule: SeparableConv2D, SeparableConv2D -> separable_conv2d,
    separable_conv2d_1)."""
    used: dict[str, int] = {}
    keys = []
    for class_name in class_names:
        name = re.sub(r"\W+", "", class_name.split(">")[-1])
        name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
        name = re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()
        used[name] = used.get(name, -1) + 1
        keys.append(f"{name}_{used[name]}" if used[name] else name)
    return keys


def _keras3(stored: dict) -> bool:
    return any(key.startswith(KERAS3) for key in stored)


def _named(stored: dict, names: dict[str, str], path: Path) -> dict[str, list[np.ndarray]]:
    unknown = [key[len(KERAS3):] for key in stored if key[len(KERAS3):] not in names]
    if unknown:
        raise ValueError(f"Received model.weights={str(path)!r}; its layers {unknown[:5]} are not in its config.")
    return {names[key[len(KERAS3):]]: tensors for key, tensors in stored.items()}


def _read_h5(f) -> dict[str, list[np.ndarray]]:
    if "layer_names" in f.attrs or ("model_weights" in f and "layer_names" in f["model_weights"].attrs):
        group = f["model_weights"] if "model_weights" in f else f  # a whole Keras 2 model file, or weights only
        result = {}
        for name in group.attrs["layer_names"]:
            name = name.decode() if isinstance(name, bytes) else str(name)
            layer = group[name]
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in layer.attrs.get("weight_names", [])]
            result[name] = [np.asarray(layer[n]) for n in names]
        return result
    if "layers" in f:  # Keras 3: layers/<class-based key>/vars/<i>
        result = {}
        for key, layer in f["layers"].items():
            if "vars" in layer and len(layer["vars"]):
                result[KERAS3 + key] = [np.asarray(layer["vars"][str(i)]) for i in range(len(layer["vars"]))]
        return result
    raise ValueError(f"Received model.weights={str(f.filename)!r}; it is an HDF5 file but neither Keras' published "
                     f"weights layout (layer_names) nor a Keras 3 weights file (layers/…/vars).")


def load_pretrained(model, path: Path, candidates=()) -> LoadReport:
    """Loads the tensors of `path` into `model` by layer name and shape (see the module docstring);
    `candidates` name the layers of a bare Keras 3 `.weights.h5` (see `read_weights`)."""
    stored = read_weights(path, candidates)
    report = LoadReport()
    names = set()
    for layer in model.layers:
        names.add(layer.name)
        source = stored.get(layer.name)
        for index, variable in enumerate(layer.weights):
            label = f"{layer.name}/{variable.name}"
            shape = tuple(variable.shape)
            if source is None:
                report.fresh.append((label, shape, "no such layer in the file"))
                continue
            if index >= len(source):
                report.fresh.append((label, shape, "the file's layer has fewer tensors"))
                continue
            value = source[index]
            if tuple(value.shape) != shape:
                if tuple(d for d in value.shape if d != 1) != tuple(d for d in shape if d != 1):
                    report.fresh.append((label, shape, f"the file's tensor is {tuple(value.shape)}"))
                    continue
                value = value.reshape(shape)
            variable.assign(value.astype(variable.dtype))
            report.loaded.append(label)
            report.loaded_parameters += int(np.prod(shape))
    report.unused_layers = sorted(set(stored) - names)
    if not report.loaded:
        raise ValueError(f"Received model.weights={str(path)!r}; no tensor of it matches this model by layer name and "
                         f"shape (its layers: {', '.join(sorted(stored)[:5])}…), so nothing would be loaded.")
    return report


def family_builds(model, builder_kwargs: dict):
    """Models that may have written a bare Keras 3 `.weights.h5` for a variant built with `builder_kwargs`: the
    variant itself, then the same widths with and without shortcuts, with stock (SeparableConv2D) or segment
    (SegmentConv2D) separable convs. Built lazily, only as far as the search needs."""
    from xablate.models.xception import build_xception

    yield model
    for residual in (True, False):
        for act, segments in ((None, "depthwise"), ("relu", "depthwise"), (None, builder_kwargs.get("segments"))):
            yield build_xception(**{**builder_kwargs, "residual": residual, "intermediate_act": act,
                                    "segments": segments or "depthwise"})
