"""The composition a study's runs were made with, read back from the store.

Every run records the command-line overrides it was started with (tag xablate.overrides), and so does every
sweep's parent run (the command as typed). The overrides all of a study's runs share, less what its grid varies,
the replicate keys and where results went (tracking.*), are the study's composition — e.g. `design=cpu_repro` for
the committed CPU reproduction — and the replicates are those of its latest finished sweep (`seed=range(3)` for a
study declared at 10 seeds but run at 3). `xablate status` and `xablate plan` put them in front of the user's
arguments, so that they report and extend exactly those runs instead of the default configuration's, and say so.
"""

from __future__ import annotations

from collections import Counter
from functools import lru_cache

from xablate.config import REPLICATE_KEYS
from xablate.tracking.reader import StoreReader

DROPPED = ("experiment", "study", *REPLICATE_KEYS)  # the study itself, its replicates


def _pairs(recorded: str) -> list[tuple[str, str]]:
    """(key, value as typed) of one run's recorded overrides, in order (Hydra's grammar: quoting, escapes)."""
    import shlex

    return [_pair(word) for word in shlex.split(recorded, posix=False)]


def _pair(word: str) -> tuple[str, str]:
    override = parsed_override(word)
    return override.get_key_element(), override.input_line.split("=", 1)[1] if "=" in override.input_line else ""


@lru_cache(maxsize=4096)
def parsed_override(word: str):
    """One override word parsed by Hydra's grammar, once: a study's runs and cells repeat the same words
    (`seed=3`, `design=cpu_repro`). Raises Hydra's error for a word that does not parse."""
    return _parser().parse_override(word)


@lru_cache(maxsize=1)
def _parser():
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create()


def recorded_composition(uri: str, study: str, varied: list[str]) -> tuple[list[str], int]:
    """(the overrides every job run of `study` was started with, less the keys in `varied`, the replicate keys and
    tracking.*; how many runs agree). Empty when the study has no runs or they share nothing."""
    reader = StoreReader(uri)
    experiment_id = reader.experiment_id(study)
    if experiment_id is None:
        return [], 0
    runs = reader.runs([experiment_id], tag="xablate.variant", newest_first=True)
    recorded = [r.data.tags.get("xablate.overrides") for r in runs]
    recorded = [r for r in recorded if r is not None]
    if not recorded:
        return [], 0
    skip = set(varied) | set(DROPPED)
    # a path recorded portably (`.../images`, or relative to the project) is not the path to type: left out
    skip |= {key.lstrip("+~") for overrides in recorded for key, value in _pairs(overrides)
             if value.startswith(".../") or "/" in value}
    shared: Counter = Counter()
    for overrides in recorded:
        shared.update({f"{key}={value}" for key, value in _pairs(overrides)
                       if key.lstrip("+~") not in skip and not key.lstrip("+~").startswith("tracking.")})
    first = [f"{k}={v}" for k, v in _pairs(recorded[0])]  # in the order they were typed
    composition = [o for o in first if shared[o] == len(recorded)]
    finished = reader.runs([experiment_id], tag_equals=("xablate.role", "sweep"), status="FINISHED",
                           newest_first=True, limit=1)
    if finished and finished[0].data.tags.get("xablate.overrides"):  # its replicates, as typed (seed=range(3))
        composition += [f"{k}={v}" for k, v in _pairs(finished[0].data.tags["xablate.overrides"])
                        if k.lstrip("+~") in REPLICATE_KEYS]
    return composition, len(recorded)
