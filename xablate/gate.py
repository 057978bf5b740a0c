"""The one gate a composed job config passes before anything reads it (its callers: the trainer, the sweep's
pre-flight, `xablate status`, the benchmarks): below it, code reads typed sections.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Mapping

from xablate.checks import finite_numbers
from xablate.dotted import flatten
from xablate.extras import MissingExtra
from xablate.models.segments import validate_segments
from xablate.schema import ConfigError, Job, check_known_keys, model_settings, typed


@dataclass(frozen=True)
class Checked:
    """A composed job config past the gate (`parse_job`): the plain config in canonical form - what the identity
    and the recorded params read - and the same config as typed sections, what everything else reads."""

    cfg: dict[str, Any]
    config: Job


def parse_job(cfg: Mapping[str, Any], *, sections: bool = True) -> Checked:
    """The one gate a composed job config passes, and the one place below run.py that reads it as a whole: every
    key known (else the nearest one is named), every number finite, each section's settings against what it
    allows, then the canonical form - the model section holding only what is set, intermediate_act "none" or a
    name, segments an int or "depthwise" - so that tags, params, identities and the analysis compare like with
    like. ConfigError (a ValueError) names the first bad setting.

    sections=False checks the keys only and imports no Keras: `xablate status` finds a cell's identity with it
    (the job checks the rest when it runs). The study's analysis block is not a job's setting: the sweep parses
    it once before its parent run, a single run through `check_study_block` (xablate.training.job)."""
    try:
        flat = flatten(cfg)
        check_known_keys(flat)
        if sections:
            from xablate.training.validation import validate_job

            finite_numbers({k: v for k, v in flat.items() if k.split(".", 1)[0] != "analysis"})
            validate_job(typed(Job, cfg))  # every key known: the schema's sections, its defaults where one is absent
        canonical = copy.deepcopy({**cfg, "model": model_settings(cfg["model"])} if "model" in cfg else dict(cfg))
        act = canonical["intermediate_act"]
        canonical["intermediate_act"] = "none" if act is None or (isinstance(act, str) and act.lower() == "none") \
            else act
        canonical["segments"] = validate_segments(canonical["segments"])
    except (ValueError, MissingExtra) as error:
        raise ConfigError(str(error)) from None
    return Checked(canonical, typed(Job, canonical))
