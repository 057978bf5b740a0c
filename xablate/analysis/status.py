"""`xablate status`: a study's expected grid against the store, cell by cell, and what is left to run.

The grid is exactly what `python run.py -m <the same arguments>` would launch: Hydra's basic sweeper expands
the experiment's `hydra.sweeper.params` together with the command-line sweeps. Each cell's config is composed
as that job's would be, so its run identity matches the runs the sweep logs; the store then says whether the
cell is done, diverged, running, failed (resumable) or missing.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from xablate.analysis.composition import parsed_override
from xablate.analysis.plans import recorded_choices  # noqa: F401 - status reads each searched cell's values
from xablate.dotted import get_dotted
from xablate.paths import project_root
from xablate.gate import parse_job
from xablate.staging import REPLICATE_KEYS, STAGE_TAG, crossed_levels, override_key, parse_tune, serves, \
    replicate_choice, replicate_index, variant_name, with_overrides
from xablate.sweeps import excluding, expand, swept_keys
from xablate.data.digest import source_digest
from xablate.data.sources import SOURCES
from xablate.tracking.identity import run_identity
from xablate.tracking.previous_runs import DATA_DIGEST_TAG, IDENTITY_TAG, variant_state
from xablate.tracking.reader import StoreReader
from xablate.tracking.store import resolve_tracking_uri, store_missing

STATES = ("done", "diverged", "running", "failed", "missing")
TO_RUN = ("failed", "missing")  # a rerun resumes the failed cells and trains the missing ones


@dataclass
class StudyStatus:
    study: str
    uri: str
    base: list[str]          # the arguments every job shares
    sweep_keys: list[str]    # the keys the grid varies, in Hydra's order
    cells: pd.DataFrame      # one row per job: the sweep keys' values, state, run_id, reason
    note: str = ""           # a sequential study: what its looks decided so far
    crossed: str | None = None  # a tuned key the study crosses at every variant's value: a column of cells too

    def counts(self) -> dict[str, int]:
        return {state: int((self.cells["state"] == state).sum()) for state in STATES}

    def commands(self) -> list[str]:
        """`python run.py -m …` commands that run only the cells still to run (grouped on the last key)."""
        # a job of a crossed study runs its cells at every tuned value (those done are skipped): one per job
        def jobs(cells):  # without swept keys (one cell typed out), every crossed cell is that one job's
            if not self.crossed:
                return cells
            return cells.drop_duplicates(self.sweep_keys) if self.sweep_keys else cells.iloc[:1]

        todo = jobs(self.cells[self.cells["state"].isin(TO_RUN)])
        if todo.empty:
            return []
        if len(todo) == len(jobs(self.cells)):  # nothing to skip: the whole sweep
            args = [*self.base, *(f"{k}={','.join(dict.fromkeys(self.cells[k]))}" for k in self.sweep_keys)]
            return ["python run.py -m " + " ".join(shlex.quote(a) for a in args)]
        # one sub-grid per combination of the other keys, then merge those that need the same last-key values
        head, last = self.sweep_keys[:-1], self.sweep_keys[-1]
        merged: dict[tuple, list[str]] = {}
        for values, group in (todo.groupby(head, sort=False) if head else [((), todo)]):
            values = values if isinstance(values, tuple) else (values,)
            key = (values[:-1], tuple(group[last]))
            merged.setdefault(key, []).extend(values[-1:])
        commands = []
        for (fixed, last_values), merged_values in merged.items():
            pairs = list(zip(head, [*fixed, ",".join(merged_values)])) if head else []
            args = [*self.base, *(f"{k}={v}" for k, v in pairs), f"{last}={','.join(last_values)}"]
            commands.append("python run.py -m " + " ".join(shlex.quote(a) for a in args))
        return commands


def study_grid(arguments: list[str]):
    """(shared arguments, swept keys, one override list per job, the tuning stage or None)."""
    return _grid(arguments)


def grid_jobs(arguments: list[str]) -> tuple[list[str], list[str], list[list[str]]]:
    """(shared arguments, swept keys, one override list per job) for `run.py -m <arguments>`."""
    base, keys, jobs, _ = _grid(arguments)
    return base, keys, jobs


def _grid(arguments: list[str]):
    base, cfg = _composed(arguments)
    return _grid_of(cfg.hydra.sweeper, base, arguments)


_WITH_HYDRA: dict[tuple, object] = {}  # the latest composition with Hydra's section: its group overrides, conf/


def _composed(arguments: list[str]):
    """(the arguments every job shares, the config they compose to, with Hydra's section). The latest composition
    is reused while its group overrides and conf/'s files are the same: the study grid of
    `with_recorded_composition` and the study's status differ only in values (e.g. train.save_model=False), set
    on a copy as Hydra sets them (`composed_cell`). Hydra's section reads as composed for the group overrides
    (the values are not in its list of overrides): what is read of it is the sweeper's."""
    import copy

    parsed = OverridesParser.create().parse_overrides(arguments)
    base = [a for a, o in zip(arguments, parsed) if not o.is_sweep_override()]
    conf = project_root() / "conf"
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        groups, values = _split(base)
        composition = (groups, tuple(map(tuple, conf_stamps())))  # an edited file: composed anew
        if composition not in _WITH_HYDRA:
            _WITH_HYDRA.clear()
            _WITH_HYDRA[composition] = compose("config", overrides=list(groups), return_hydra_config=True)
        cfg = copy.deepcopy(_WITH_HYDRA[composition]) if values else _WITH_HYDRA[composition]
        unresolved = OmegaConf.to_container(cfg, resolve=False)
        try:
            if any(get_dotted(unresolved, key, _ABSENT) is _ABSENT for key, _ in values):
                raise KeyError("not in the composed config")
            for key, value in values:
                OmegaConf.update(cfg, key, value, merge=True)
        except Exception:  # noqa: BLE001 - an unknown key, a value the schema refuses: Hydra's own message
            cfg = compose("config", overrides=base, return_hydra_config=True)
        return base, cfg


def conf_stamps() -> list[list]:
    """The stamp of every file under conf/ (the experiments' folder it links to included)."""
    from xablate.remembered import stamp

    conf = project_root() / "conf"
    return [stamp(f) for f in sorted(f for depth in ("*.yaml", "*/*.yaml", "*/*/*.yaml") for f in conf.glob(depth))]


def _split(overrides: list[str]) -> tuple[tuple[str, ...], list[tuple[str, object]]]:
    """(the group overrides and anything else Hydra must compose, as typed; the plain scalar value overrides as
    (key, value)), inside an initialised Hydra."""
    from hydra.core.global_hydra import GlobalHydra

    repository = GlobalHydra.instance().config_loader().repository
    parsed = [parsed_override(o) for o in overrides]
    plain = [not p.is_add() and not p.is_force_add() and not p.is_delete() and p.package is None
             and not repository.group_exists(p.key_or_group) and not isinstance(p.value(), (dict, list))
             for p in parsed]
    groups = tuple(o for o, is_plain in zip(overrides, plain) if not is_plain)
    return groups, [(p.key_or_group, p.value()) for p, is_plain in zip(parsed, plain) if is_plain]


def _grid_of(sweeper, base: list[str], arguments: list[str]):
    """The grid from the sweeper's section (its declared params and tuning stage) and the command line."""
    declared = sweeper.get("params")
    params = OmegaConf.to_container(declared, resolve=False) if declared is not None else {}
    tune = sweeper.get("tune")
    tune = parse_tune(OmegaConf.to_container(tune, resolve=True)) if tune is not None else None
    exclude = sweeper.get("exclude")
    exclude = OmegaConf.to_container(exclude, resolve=True) if exclude is not None else None
    return base, swept_keys(params, arguments), excluding(expand(params, arguments), exclude, expand(params, [])), tune


def sequential_progress(uri: str, study) -> tuple[int, str]:
    """(seeds per variant the study needs now, what its looks decided) for a sequential study: the look every
    claim was decided at, else the next look after the one its seeds reach (the first look with no runs).

    Deciding the looks runs the study's tests (and loads scipy.stats: 0.6 s); the answer is a function of the
    store, the study, conf/ and the code, so for a SQLite store it is remembered per their stamps and digest
    (xablate.remembered): a status asked again of an unchanged store reads it back."""
    from xablate.analysis.plans import with_recorded_plan
    from xablate.remembered import code_digest, remembered, stamp

    study = with_recorded_plan(uri, study)  # the looks its first sweep recorded
    if not uri.startswith("sqlite:///"):
        return _sequential_progress(uri, study)
    database = Path(uri[len("sqlite:///"):])
    stores = [stamp(Path(f"{database}{suffix}")) for suffix in ("", "-wal", "-journal")]
    key = ["sequential", stores, repr(study), conf_stamps(), code_digest()]
    return tuple(remembered("sequential-looks.json", key, lambda: list(_sequential_progress(uri, study))))


def _sequential_progress(uri: str, study) -> tuple[int, str]:
    from xablate.analysis.report import config_defaults
    from xablate.analysis.store import HISTORY_MEASURES, history_frame, runs_frame, select_runs
    from xablate.analysis.registration import registered_labels
    from xablate.analysis.verdicts import INCONCLUSIVE, verdict_tables

    spec = study.sequential
    runs = runs_frame(uri, study=study.name) if not (uri.startswith("sqlite:///") and not
                                                     Path(uri[len("sqlite:///"):]).exists()) else None
    if runs is None or runs.empty:
        return spec.looks[0], f"sequential: no runs yet, first look at n={spec.looks[0]}"
    from xablate.analysis.plans import crossed_choices

    selection = select_runs(runs, study, config_defaults, crossed_choices(uri, study))
    history = history_frame(uri, selection.runs, metrics=HISTORY_MEASURES, axes=selection.axes)
    table, rows = verdict_tables([(selection, history)], registered_labels(uri, selection),
                                 uncertainty=False)  # the decisions only, in the verdict's Holm families
    reached = rows.groupby("claim")["n"].min() if not rows.empty else None  # a look is reached when every comparison is
    if reached is None or rows.empty:
        return spec.looks[0], f"sequential: first look at n={spec.looks[0]}"
    if (table["verdict"] != INCONCLUSIVE).all():
        n = int(reached.max())
        at = f"look {spec.looks.index(n) + 1} of {len(spec.looks)}" if n in spec.looks else \
            f"looks {', '.join(map(str, spec.looks))}"
        return n, f"sequential: every claim decided by n={n} ({at})"
    undecided = table.loc[table["verdict"] == INCONCLUSIVE, "claim"]
    n = int(reached[reached.index.isin(undecided)].min())  # the claims still open set the pace
    later = [look for look in spec.looks if look > n]
    needed = later[0] if later else spec.looks[-1]
    if not later:  # run to its last look: the study is done, undecided claims and all
        return needed, f"sequential: undecided at its last look (n={n}; looks {', '.join(map(str, spec.looks))})"
    return needed, f"sequential: undecided at n={n}; next look at n={needed} ({', '.join(map(str, spec.looks))})"


def _study_of(first, analysis: dict):
    """The study as its composed config declares it (its claims, with the tuning stage they may be read at)."""
    from xablate.studies import parse_study

    declared, tune = first.hydra.sweeper.get("params"), first.hydra.sweeper.get("tune")
    return parse_study(str(first.study), {"analysis": analysis, "hydra": {"sweeper": {
        "params": OmegaConf.to_container(declared, resolve=False) if declared else {},
        "tune": OmegaConf.to_container(tune, resolve=True) if tune is not None else None}}})


def study_status(arguments: list[str], *, backend: str | None = None) -> StudyStatus:
    """The completeness of `python run.py -m <arguments>` in its store; a sequential study's grid reaches the
    look it needs now (unless seeds are typed)."""
    note = ""
    base, first = _composed(arguments)
    analysis = OmegaConf.to_container(first.analysis, resolve=True) if first.get("analysis") else None
    typed_seed = any(a.split("=", 1)[0].lstrip("+~") == "seed" for a in arguments)
    study = None
    if analysis and (analysis.get("sequential") or analysis.get("claims")) and first.hydra.sweeper.get("tune"):
        study = _study_of(first, analysis)
    if analysis and analysis.get("sequential") and not typed_seed:
        study = study or _study_of(first, analysis)
        needed, note = sequential_progress(resolve_tracking_uri(first.tracking.uri), study)
        arguments = [*arguments, f"seed=range({needed})"]  # a sweep: the shared arguments stay the same
    base, keys, jobs, tune = _grid_of(first.hydra.sweeper, base, arguments)
    crossed = study.crossed if study is not None and tune is not None else None
    rows, identities = [], []
    uri = experiment = stale = None
    searched = {} if tune is None or (tune.search is None and not crossed) else \
        recorded_choices(resolve_tracking_uri(first.tracking.uri), str(first.tracking.experiment))
    levels = crossed_levels(searched, crossed) if crossed and searched else []
    columns = [*[key for key in keys if key not in (tune.keys if tune else ())], *([crossed] if crossed else [])]
    cache: dict = {}
    replicates: dict = {}  # a variant's replicates so far, in grid order (repeated tuning: which choice is whose)
    with initialize_config_dir(config_dir=str(project_root() / "conf"), version_base="1.3"):
        for job in jobs:
            values = {k.lstrip("+~"): v for k, v in (o.split("=", 1) for o in job)}
            row = {key: values[key] for key in keys if key not in (tune.keys if tune else ())}
            # a tuned study's cell is done at whichever value its tuning chose: one identity per candidate (a
            # grid), or the values its search recorded (none yet: the cell is missing); a study crossed at its
            # tuned values has a cell per variant x tuned value (none before the tuning chose them)
            variant = tuple(o for o in job if override_key(o) not in (*REPLICATE_KEYS, *(tune.keys if tune else ())))
            replicates[variant] = replicates.get(variant, -1) + 1
            index = replicate_index(job, replicates[variant])
            chosen = searched.get(variant_name(variant, set(keys)))
            if tune is None:
                cells = [(row, [job], True)]
            elif crossed:
                cells = ([({**row, crossed: level}, [with_overrides(job, {**chosen, crossed: level})], True)
                          for level in levels] if chosen else [({**row, crossed: "(after tuning)"}, [job], False)])
            elif tune.search is None:
                cells = [(row, [with_overrides(job, {tune.key: v}) for v in tune.values], True)]
            else:
                cells = [(row, [with_overrides(job, replicate_choice(chosen, index))], True) if chosen
                         else (row, [job], False)]
            for row, options, known in cells:
                cell = []
                for overrides in options:
                    # the keys, and the data the cell's digest reads; the rest is the job's to check (no Keras here)
                    checked = parse_job(composed_cell(cache, overrides), sections=False)
                    data = checked.config.data
                    SOURCES[data.source].check(data)
                    cell.append((run_identity(checked.cfg, backend or str(checked.config.backend)),
                                 source_digest(data)))
                if uri is None:
                    tracking = checked.config.tracking
                    uri = resolve_tracking_uri(tracking.uri)
                    experiment, stale = str(tracking.experiment), float(tracking.stale_after_seconds)
                rows.append(row)
                identities.append(cell if known else [])  # a search not run yet: nothing in the store is this cell
    runs = []
    if not store_missing(uri):  # reading a missing store would create it
        reader = StoreReader(uri)
        runs = reader.runs([reader.experiment_id(experiment)], tag=IDENTITY_TAG, newest_first=True)
    by_identity: dict[str, list] = {}
    for run in runs:
        by_identity.setdefault(run.data.tags[IDENTITY_TAG], []).append(run)
    for row, cell in zip(rows, identities):
        same_data = [r for identity, digest in cell for r in by_identity.get(identity, [])
                     if r.data.tags.get(DATA_DIGEST_TAG, digest) == digest
                     and serves(r.data.tags.get(STAGE_TAG), "final")]
        state, run = variant_state(sorted(same_data, key=lambda r: -r.info.start_time), stale)
        row.update(state=state, run_id=run.info.run_id if run else "",
                   reason=(run.data.tags.get("xablate.error", "") if run and state in ("failed", "diverged") else ""))
    return StudyStatus(experiment, uri, base, keys, pd.DataFrame(rows, columns=[*columns, "state", "run_id", "reason"]),
                       note, crossed)


def started_studies(uri: str) -> set[str]:
    """The studies (MLflow experiments) of the store with at least one job run, in any state."""
    if store_missing(uri):
        return set()
    reader = StoreReader(uri)
    return {name for name, experiment_id in reader.experiments().items()
            if reader.runs([experiment_id], tag=IDENTITY_TAG, limit=1)}


def latest_sweep_arguments(uri: str, study: str) -> list[str] | None:
    """The command-line overrides of the study's latest sweep (its parent run's record), with the store made this
    one; None when the study has no sweep in the store (a study without a file: the user's own sweeps)."""
    if store_missing(uri):
        return None
    reader = StoreReader(uri)
    parents = reader.runs([reader.experiment_id(study)], tag_equals=("xablate.role", "sweep"), newest_first=True,
                          limit=1)
    if not parents:
        return None
    words = parents[0].data.tags.get("xablate.overrides", "").split()
    kept = [w for w in words if override_key(w) not in ("tracking.uri", "study")]
    return [*kept, f"study={study}", f"tracking.uri={uri}"]


def composed_cell(cache: dict, overrides: list[str]) -> dict:
    """The cell's config as Hydra composes it, resolved. Hydra builds a config from its group overrides (the
    defaults list) and then sets each value override in order (`OmegaConf.update(…, merge=True)`); so do we, with
    one composition per distinct set of group overrides: the value overrides that tell cells apart (an axis, a
    seed) are set on that config and put back afterwards (interpolations such as split_seed: ${seed} resolve in
    between). A study's sixty cells cost one composition, not sixty. Anything but a plain scalar value override,
    or an error, goes to Hydra itself."""
    groups, values = _split(overrides)
    if groups not in cache:
        cfg = compose("config", overrides=list(groups))
        cache[groups] = (cfg, OmegaConf.to_container(cfg, resolve=False))
    cfg, unresolved = cache[groups]
    if any(get_dotted(unresolved, key, _ABSENT) is _ABSENT for key, _ in values):
        return OmegaConf.to_container(compose("config", overrides=overrides), resolve=True)  # Hydra's own error
    try:
        for key, value in values:
            OmegaConf.update(cfg, key, value, merge=True)
        return OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # a value the schema refuses: Hydra's message, as `run.py` would print it
        return OmegaConf.to_container(compose("config", overrides=overrides), resolve=True)
    finally:
        for key, _ in reversed(values):  # as composed: `${seed}` stays an interpolation
            OmegaConf.update(cfg, key, get_dotted(unresolved, key), merge=False)


_ABSENT = object()


def format_status(status: StudyStatus) -> str:
    """The grid as a matrix (rows: all swept keys but the last; columns: the last), counts and commands."""
    cells = status.cells
    lines = [f"study {status.study!r} in {status.uri}: {len(cells)} cells"] + ([status.note] if status.note else [])
    if status.sweep_keys:
        *rows, column = status.sweep_keys
        rows += [status.crossed] if status.crossed else []
        if rows:
            matrix = cells.pivot_table(index=rows, columns=column, values="state", aggfunc="first", sort=False)
        else:
            matrix = cells.set_index(column)[["state"]].T
        lines.append(matrix.to_string())
    counts = status.counts()
    lines.append("  ".join(f"{state}: {n}" for state, n in counts.items()))
    for row in cells[cells["state"].isin(("failed", "diverged"))].itertuples(index=False):
        lines.append(f"  {row.state} {row.run_id}: {row.reason[:160]}")
    commands = status.commands()
    if commands:
        lines.append("to run what is missing (failed cells resume):")
        lines.extend(f"  {command}" for command in commands)
    else:
        lines.append("nothing left to run")
    return "\n".join(lines)
