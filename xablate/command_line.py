"""A command line checked before Hydra starts anything, every failure said in one line.

`check_command_line` (run.py, before @hydra.main) composes the config the command asks for — a sweep at its first
value of each swept key — so that an unknown experiment, a group option that does not exist or a value of the
wrong type is one line naming the override and what is allowed, not Hydra's multi-line report.
`check_sweep_values` (the sweep's callback, before its parent run) composes and validates the job of every value
each swept key takes, so that `-m intermediate_act=relu,gleu` is refused before relu trains.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Iterable

# flags after which Hydra reads a value of its own; with a custom config place the check is Hydra's alone
VALUE_FLAGS = ("--cfg", "-c", "--package", "-p", "--info", "-i")
OWN_CONFIG_FLAGS = ("--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd", "--experimental-rerun",
                    "--help", "-h", "--hydra-help", "--version", "--shell-completion", "-sc")
MISSING_OPTION = re.compile(r"Could not find '(?P<group>[^']+)/(?P<name>[^'/]+)'")


def overrides_of(argv: Iterable[str]) -> list[str] | None:
    """The `key=value` words of a run.py command line; None when Hydra is told to look elsewhere or to help."""
    words, skip = [], False
    for word in argv:
        if skip and "=" not in word:
            skip = False
            continue
        skip = False
        if word.split("=", 1)[0] in OWN_CONFIG_FLAGS:
            return None
        if word.startswith("-"):
            skip = word in VALUE_FLAGS
            continue
        words.append(word)
    return words


def first_values(overrides: list[str]) -> list[str]:
    """The overrides with each swept key at its first value (a sweep that is not a list is left to Hydra)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from hydra.errors import OverrideParseException

    parser, single = OverridesParser.create(), []
    for word in overrides:
        try:
            parser.parse_overrides([word])
        except OverrideParseException as error:
            raise ValueError(f"Received {word!r}, which is not an override; {str(error).splitlines()[0]}") from None
    for override in parser.parse_overrides(overrides):
        if not override.is_sweep_override():
            single.append(override.input_line)
        elif override.is_discrete_sweep():
            single.append(f"{override.get_key_element()}={next(iter(override.sweep_string_iterator()))}")
    return single


def composition_message(error: BaseException) -> str:
    """Hydra's report of a failed composition (or an override's syntax) as one line."""
    text = str(error)
    missing = MISSING_OPTION.search(text)
    if missing:
        options = [line.strip() for line in text.split("Available options", 1)[-1].split("Config search path")[0]
                   .splitlines()[1:] if line.strip() and not line.strip().startswith("_")]  # _: the schema's
        group, name = missing.group("group"), missing.group("name")
        what = "a study of experiments/" if group == "experiment" else f"an option of conf/{group}/"
        return f"Received {group}={name}; allowed: {what}: {', '.join(options) or '(none)'}."
    cause = str(error.__cause__ or "").strip()
    merging = re.match(r"Error merging override (?P<override>\S+)", text)
    if merging and cause:
        key = re.search(r"full_key: (\S+)", cause)
        return (f"Received {merging.group('override')}; allowed: a value of {key.group(1) if key else 'the key'}'s "
                f"type ({cause.splitlines()[0]}).")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return "; ".join(lines[:2]) if lines else type(error).__name__


def check_command_line(argv: Iterable[str]) -> None:
    """ValueError in one line when the config `python run.py <argv>` asks for cannot be composed."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from xablate.config import compose_job
    from xablate.extras import require_for, require_launcher

    overrides = overrides_of(argv)
    if overrides is None:
        return
    require_launcher(overrides)  # hydra/launcher=ray_cluster without the [ray] extra: one line naming it
    base = first_values(overrides)
    try:
        require_for(compose_job(base, hydra=True))  # Hydra's config reads as the typed one: cfg.data.source
        for other in group_values(overrides):  # a swept group's other options: each must exist
            compose_job([*base, other], hydra=True)
    except (HydraException, OmegaConfBaseException) as error:
        raise ValueError(composition_message(error)) from None


def group_values(overrides: list[str]) -> list[str]:
    """`group=option` for every option but the first of each swept config group (model=mini,debug)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from xablate.paths import project_root

    groups = {p.name for p in (project_root() / "conf").iterdir() if p.is_dir()}
    found = []
    for override in OverridesParser.create().parse_overrides(overrides):
        key = override.get_key_element()
        if override.is_discrete_sweep() and (key.lstrip("+~").split("/")[0] in groups or key.startswith("hydra/")):
            found += [f"{key}={value}" for value in list(override.sweep_string_iterator())[1:]]
    return found


def value_jobs(jobs: list[list[str]]) -> list[list[str]]:
    """Of a grid's jobs, the first job and, for every value a key takes, the first job with that value: every value
    checked once, not every combination."""
    chosen, seen = [], set()
    for job in jobs:
        new = [override for override in job if override not in seen]
        if new or not chosen:
            chosen.append(job)
            seen.update(job)
    return chosen


def check_sweep_values(declared: dict | None, overrides: list[str], parsed: tuple = ()) -> None:
    """ValueError in one line for the first value of the sweep (declared params and the command line's) whose job
    does not compose or that its job's validation refuses: names the override. Each distinct study block a job
    carries is parsed once (`parsed`: the (study, analysis) the caller parsed already)."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from xablate.backend import start_like_a_job
    from xablate.config import compose_job
    from xablate.studies import check_study_block
    from xablate.sweeps import expand

    block_of = lambda study, analysis: json.dumps([study, analysis], sort_keys=True, default=str)  # noqa: E731
    jobs, studies = expand(declared, overrides), {block_of(*parsed)} if parsed else set()
    for job in value_jobs(jobs) if len(jobs) > 1 else []:  # a single job validates itself, once
        try:
            cfg = compose_job(job)
        except (HydraException, OmegaConfBaseException) as error:
            raise ValueError(composition_message(error)) from None
        block = block_of(cfg["study"], cfg["analysis"])
        if block not in studies:  # each distinct study block once (a sweep over experiment= has several)
            studies.add(block)
            check_study_block(cfg["study"], cfg["analysis"])
        if "keras" not in sys.modules:  # validation reads Keras: load it as the sweep's jobs will
            start_like_a_job(str(cfg["backend"]), cfg["train"]["onednn"], str(cfg["train"]["precision"]))
        from xablate.gate import parse_job

        try:
            parse_job(cfg)
        except ValueError as error:
            swept = [o for o in job if len({p for j in jobs for p in j if p.split("=")[0] == o.split("=")[0]}) > 1]
            raise ValueError(f"{error} (the sweep's job {' '.join(swept)})") from None
