"""What a sweep varies, read from Hydra's override grammar (public API: hydra.core.override_parser).

`python run.py -m a=1,2 b=x` with an experiment declaring `hydra.sweeper.params: {seed: 0,1}` sweeps `seed` and
`a`; `b` is fixed. `expand` gives the jobs exactly as Hydra's basic sweeper orders them (a later override of a
key replaces an earlier one; the last key varies fastest); `swept_keys` the keys that take several values.
"""

from __future__ import annotations

import itertools
from typing import Any, Iterable, Mapping

from hydra.core.override_parser.overrides_parser import OverridesParser

SWEEP_KEYS_FILE = "xablate_sweep_keys"  # in the sweep dir: the keys this sweep varies, one per line


def _arguments(declared: Mapping[str, object] | None, arguments: Iterable[str]) -> list[str]:
    """The experiment's declared sweep (hydra.sweeper.params) first, then the command line, as Hydra merges them."""
    return [f"{key}={value}" for key, value in (declared or {}).items()] + list(arguments)


def expand(declared: Mapping[str, object] | None, arguments: Iterable[str]) -> list[list[str]]:
    """One override list per job, in the basic sweeper's order."""
    by_key: dict[str, list[str]] = {}
    for override in OverridesParser.create().parse_overrides(_arguments(declared, arguments)):
        key = override.get_key_element()
        if override.is_sweep_override():
            if not override.is_discrete_sweep():
                raise ValueError(f"Received the sweep {override.input_line}; allowed: a list of values (a=1,2,3) "
                                 f"or range(...), as Hydra's basic sweeper takes.")
            by_key[key] = [f"{key}={value}" for value in override.sweep_string_iterator()]
        else:
            by_key[key] = [f"{key}={override.get_value_element_as_str()}"]
    return [list(job) for job in itertools.product(*by_key.values())]


def swept_keys(declared: Mapping[str, object] | None, arguments: Iterable[str]) -> list[str]:
    """The keys that take more than one value, in Hydra's order (seed included)."""
    keys: list[str] = []
    for override in OverridesParser.create().parse_overrides(_arguments(declared, arguments)):
        key = override.get_key_element().lstrip("+~")  # +model.x=1,2 sweeps the config key model.x
        if key in keys:
            keys.remove(key)  # a later value of the key replaces the earlier sweep (and its position)
        if override.is_sweep_override() and len(list(override.sweep_string_iterator())) > 1:
            keys.append(key)
    return keys


def as_override(value: Any) -> str:
    """A value as the sweep writes it on the command line (true, 4, none, null), whatever its YAML or Hydra
    spelling: YAML's null is `null`, the string "none" (intermediate_act's) stays `none`."""
    if value is None:
        return "null"
    text = str(value)
    if text.lower() in ("true", "false", "none", "null"):
        return text.lower()
    try:  # 1e-7, 1.0e-7 and 0.0000001 are one value
        return str(float(text)) if not text.isdigit() else text
    except ValueError:
        return text


def excluding(jobs: list[list[str]], exclude: Iterable[Mapping[str, object]] | None,
              declared: list[list[str]] | None = None) -> list[list[str]]:
    """The grid without the cells an experiment excludes (`hydra.sweeper.exclude`: a list of {key: value}, each
    dropping every job that takes all its values), e.g. the arm of a cross that would repeat another one.

    Each entry must name keys the experiment's declared grid (`declared`, else `jobs`) varies, at values it takes:
    a typo raises ValueError naming it rather than running the cell it meant to drop."""
    entries = list(exclude or [])
    taken: dict[str, set[str]] = {}
    for job in (declared if declared is not None else jobs):
        for override in job:
            key, _, value = override.lstrip("+~").partition("=")
            taken.setdefault(key, set()).add(as_override(value))
    varied = {key for key, values in taken.items() if len(values) > 1}
    kept = list(jobs)
    for entry in entries:
        if not isinstance(entry, Mapping) or not entry:
            raise ValueError(f"Received hydra.sweeper.exclude entry {entry!r}; allowed: a mapping of swept keys to "
                             f"one of their values, e.g. {{residual: true, model.match: params}}.")
        for key, value in entry.items():
            if key not in varied or as_override(value) not in taken[key]:
                allowed = (f"{key} in {', '.join(sorted(taken[key]))}" if key in varied
                           else f"a key the sweep varies ({', '.join(sorted(varied)) or 'none'})")
                raise ValueError(f"Received hydra.sweeper.exclude entry {dict(entry)!r} with {key}={value!r}; "
                                 f"allowed: {allowed}.")
        wanted = {f"{key}={as_override(value)}" for key, value in entry.items()}
        kept = [job for job in kept
                if not wanted <= {f"{o.lstrip('+~').partition('=')[0]}={as_override(o.partition('=')[2])}"
                                  for o in job}]
    if entries and jobs and not kept:
        raise ValueError(f"Received a sweep whose every job hydra.sweeper.exclude drops ({entries!r}); allowed: "
                         f"a cell the experiment runs.")
    return kept
