"""The `staged` sweeper: pilot -> tune -> final, each stage one batch through the configured launcher.

Built on Hydra's public plugin API only (hydra.plugins.sweeper.Sweeper, Plugins.instantiate_launcher); the grid
is xablate.sweeps.expand, which tests/test_studies.py pins to the order of Hydra's basic sweeper."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from hydra.core.utils import JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf


@dataclass
class StagedSweeperConf:
    _target_: str = "hydra_plugins.xablate_sweeper.staged_sweeper.StagedSweeper"
    max_batch_size: Optional[int] = None
    params: Optional[Dict[str, str]] = None
    tune: Optional[Dict[str, Any]] = None
    pilot: Optional[Dict[str, Any]] = None
    exclude: Optional[List[Dict[str, Any]]] = None  # cells of the cross not to run (xablate.sweeps.excluding)


ConfigStore.instance().store(group="hydra/sweeper", name="staged", node=StagedSweeperConf, provider="xablate")


class StagedSweeper(Sweeper):
    def __init__(self, max_batch_size: Optional[int] = None, params: Optional[Dict[str, str]] = None,
                 tune: Optional[Dict[str, Any]] = None, pilot: Optional[Dict[str, Any]] = None,
                 exclude: Optional[List[Dict[str, Any]]] = None) -> None:
        from xablate.staging import parse_pilot, parse_tune

        self.max_batch_size = max_batch_size  # one batch per stage: kept for the config's shape
        self.params = dict(params or {})
        self.config: Optional[DictConfig] = None
        self.launcher = None
        self.hydra_context: Optional[HydraContext] = None

        plain = lambda node: OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node  # noqa
        self._tune_block = plain(tune)
        self.tune = parse_tune(self._tune_block)
        self.pilot = parse_pilot(plain(pilot))
        self.exclude = plain(exclude) or []

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(hydra_context=hydra_context,
                                                                task_function=task_function, config=config)

    def sweep(self, arguments: List[str]) -> Any:
        from xablate import staging
        from xablate.sweeps import excluding, expand, swept_keys

        assert self.config is not None and self.launcher is not None and self.hydra_context is not None
        declared = {k: str(v) for k, v in self.params.items()}
        sequential = self._sequential_study()
        if sequential is not None and not any(staging.override_key(a) == "seed" for a in arguments):
            arguments = [*arguments, f"seed=range({sequential.sequential.looks[-1]})"]  # up to the last look
        grid = excluding(expand(declared, arguments), self.exclude, expand(declared, []))
        self._grid = grid  # (a tie-break trains a variant's next replicates)
        swept = set(swept_keys(declared, arguments))
        self._check_tuning_seeds(declared, grid, sequential, swept)
        both = [key for key in (self.tune.keys if self.tune is not None else ()) if key in swept]
        if both:
            setting = "tune.key" if self.tune.search is None else f"tune.space.{both[0]}"
            raise ValueError(f"Received hydra.sweeper.{setting}={both[0]!r}, which the sweep also varies; "
                             f"allowed: a key the sweep does not vary (tuned per variant, not an axis).")
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        self.job_index, returns = 0, []

        epochs = int(self._value_in(grid[0], "train.epochs", self.config.train.epochs))
        if self.pilot is not None:
            jobs = staging.pilot_jobs(grid, self.pilot, epochs)
            print(f"[xablate] pilot: {len(jobs)} job(s) at {staging.stage_budget(self.pilot, epochs)}", flush=True)
            returns.append(self._launch(jobs, tolerate_divergence=True))
        choices = None
        if self.tune is not None and self.tune.search is not None:
            choices = self._tune_by_search(grid, epochs, sweep_dir, swept)
        elif self.tune is not None:
            planned = staging.tune_jobs(grid, self.tune, epochs)
            print(f"[xablate] tuning {self.tune.key} over {self.tune.values} per variant: {len(planned)} job(s) at "
                  f"{staging.stage_budget(self.tune, epochs)}", flush=True)
            results = self._launch([job for _, _, job in planned], tolerate_divergence=True)
            returns.append(results)
            choices = self._choose(planned, results, sweep_dir, swept)
        crossed, levels = self._crossed_key(), None
        if crossed and choices:  # every variant's tuned value: this sweep's, and the study's others in the store
            from xablate.analysis.plans import recorded_choices
            from xablate.tracking.store import resolve_tracking_uri

            recorded = recorded_choices(resolve_tracking_uri(self.config.tracking.uri), str(self.config.study))
            levels = staging.crossed_levels({**{(name,): c for name, c in recorded.items() if isinstance(c, dict)},
                                             **choices}, crossed)
        final = staging.final_jobs(grid, choices, self.tune, crossed, levels)
        if crossed and choices:
            print(f"[xablate] final stage crossed with every variant's tuned {crossed}: {levels} ({len(final)} "
                  f"job(s))", flush=True)
        if sequential is None:
            returns.append(self._launch(final, tolerate_divergence=False))
        else:
            returns += self._launch_sequentially(final, sequential)
        return returns

    def _check_tuning_seeds(self, declared: dict, grid: List[List[str]], sequential, swept: set) -> None:
        """Before any job: the tuning's seed band apart from every seed the study runs (its declared grid up to
        its last look, this command's, the config's own `seed`), and the same band its searches' trials used."""
        from xablate import staging, tuning
        from xablate.sweeps import expand
        from xablate.tracking.store import resolve_tracking_uri

        if self.tune is None or (self.tune.seeds_from is None and self.tune.search is None):
            return
        whole = [f"seed=range({sequential.sequential.looks[-1]})"] if sequential is not None else []
        staging.check_tuning_seeds([*grid, *expand(declared, whole)], self.tune, int(self.config.get("seed", 0)))
        if self.tune.search is not None:
            path = tuning.storage_url(resolve_tracking_uri(self.config.tracking.uri), self.config.tracking.database)
            tuning.check_band(path, [tuning.repeat_study_name(str(self.config.study), staging.variant_name(v, swept), k)
                                     for v in staging.variants_of(grid, self.tune.keys)
                                     for k in range(self.tune.search.repeats)], self.tune.seeds_from)

    def _crossed_key(self) -> Optional[str]:
        """The tuned key a claim of the study is read at every variant's tuned value of (`at: {key: tuned}`)."""
        from xablate.studies import parse_study

        analysis = self.config.get("analysis")
        if self.tune is None or not analysis or not analysis.get("claims"):
            return None
        return parse_study(str(self.config.study), {
            "analysis": OmegaConf.to_container(analysis, resolve=True),
            "hydra": {"sweeper": {"params": dict(self.params), "tune": self._tune_block}}}).crossed

    def _sequential_study(self):
        """The study, when its analysis declares a sequential design (seeds until decided), with the plan its first
        sweep recorded in the store (xablate.analysis.plans): a plan edited after the runs began is not the plan."""
        from xablate.analysis.plans import with_recorded_plan
        from xablate.studies import parse_study
        from xablate.tracking.store import resolve_tracking_uri

        analysis = self.config.get("analysis")
        if not analysis or not analysis.get("sequential"):
            return None
        study = parse_study(str(self.config.study), {"analysis": OmegaConf.to_container(analysis, resolve=True),
                                                     "hydra": {"sweeper": {"params": dict(self.params),
                                                                           "tune": self._tune_block}}})
        recorded = with_recorded_plan(resolve_tracking_uri(self.config.tracking.uri), study)
        if recorded.sequential != study.sequential:
            print(f"[xablate] sequential plan: {recorded.sequential.source}; its looks "
                  f"{list(recorded.sequential.looks)} are used", flush=True)
        return recorded

    def _launch_sequentially(self, final: List[List[str]], study) -> list:
        """The final stage look by look: the seeds up to each look, then every claim analysed with the alpha spent
        so far (xablate.analysis.sequential); no further seeds once every claim is decided."""
        from xablate import staging
        from xablate.analysis.plans import crossed_choices
        from xablate.analysis.report import config_defaults
        from xablate.analysis.store import HISTORY_MEASURES, history_frame, runs_frame, select_runs
        from xablate.analysis.registration import registered_labels
        from xablate.analysis.verdicts import INCONCLUSIVE, verdict_tables
        from xablate.tracking.store import resolve_tracking_uri

        spec, returns, run_ids, previous = study.sequential, [], set(), 0
        seed_of = lambda job: int(next(o.split("=", 1)[1] for o in job if staging.override_key(o) == "seed"))  # noqa
        uri = resolve_tracking_uri(self.config.tracking.uri)
        for k, n in enumerate(spec.looks):
            batch = [job for job in final if previous <= seed_of(job) < n]
            previous = n
            print(f"[xablate] sequential look {k + 1} of {len(spec.looks)}: seeds up to {n} per variant "
                  f"({len(batch)} job(s))", flush=True)
            results = self._launch(batch, tolerate_divergence=False)
            returns.append(results)
            run_ids |= {r.return_value["run_id"] for r in results}
            runs = runs_frame(uri, study=study.name)
            selection = select_runs(runs[runs["run_id"].isin(run_ids)].reset_index(drop=True), study,
                                    config_defaults(), crossed_choices(uri, study))
            history = history_frame(uri, selection.runs, metrics=HISTORY_MEASURES, axes=selection.axes)
            # in the verdict's Holm families: a look stops the seeds only where the verdict decides too
            table, _ = verdict_tables([(selection, history)], registered_labels(uri, selection), uncertainty=False)
            for row in table.itertuples():
                print(f"  {row.claim}: {row.verdict}", flush=True)
            if not table.empty and (table["verdict"] != INCONCLUSIVE).all():
                print(f"[xablate] every claim decided at look {k + 1} (n={n}): no further seeds", flush=True)
                break
        return returns

    def _tune_by_search(self, grid: List[List[str]], epochs: int, sweep_dir: Path, swept: set) -> dict:
        """Optuna per variant (xablate.tuning): ask `parallel` trials of every variant, run each trial's seeds as
        one launcher batch (with a pruner, the first seeds first, pruned as they train, then the other seeds of
        the trials left), tell each trial the mean over its seeds; until every variant has its trials."""
        from xablate import staging, tuning
        from xablate.tracking.store import resolve_tracking_uri

        spec, search = self.tune, self.tune.search
        uri = resolve_tracking_uri(self.config.tracking.uri)
        budget = staging.stage_budget(spec, epochs)
        stage_epochs = int(budget.get("train.epochs", self._value_in(grid[0], "train.epochs", epochs)))
        variants = staging.variants_of(grid, spec.keys)
        path = tuning.storage_url(uri, self.config.tracking.database)
        # one Optuna study per variant and repeat (each repeat the whole search again, its own sampler seed)
        studies = {(v, k): tuning.open_study(
            path, tuning.repeat_study_name(str(self.config.study), staging.variant_name(v, swept), k),
            tuning.repeat_spec(search, k), epochs=stage_epochs, metric=spec.metric, seeds_from=spec.seeds_from)
            for v in variants for k in range(search.repeats)}
        repeated = f", {search.repeats} repeats" if search.repeats > 1 else ""
        print(f"[xablate] tuning {', '.join(spec.keys)} per variant with Optuna ({search.sampler}, {search.trials} "
              f"trials of {spec.seeds} seed(s){repeated}, pruner {search.pruner}) at {budget}; studies in "
              f"{tuning.shown_url(path)}",
              flush=True)
        record: dict = {key: [] for key in studies}
        while True:
            asked = [(key, trial, values) for key in studies for trial, values in tuning.ask(studies[key], search,
                                                                                             search.parallel)]
            if not asked:
                break
            scores = {id(trial): [] for _, trial, _ in asked}
            runs = {id(trial): [] for _, trial, _ in asked}
            pruned: set = set()

            def jobs_of(entries, seeds, scout):
                out = []
                for key, trial, values in entries:
                    for job in staging.tuning_replicates(variants[key[0]], spec, *seeds):
                        extra = {**budget, **values, staging.STAGE_KEY: "tune", staging.TUNED_KEY: spec.key}
                        if scout:
                            extra[tuning.TRIAL_KEY] = tuning.trial_ref(studies[key], trial)
                        out.append(((key, trial), staging.with_overrides(job, extra)))
                return out

            if search.pruner != "none":  # scouts first: each trial's first seed, which its pruner may stop
                batches = [jobs_of(asked, (0, 1), True), None]
            else:
                batches = [jobs_of(asked, (0, spec.seeds), False)]
            for index, batch in enumerate(batches):
                if batch is None:  # the other seeds of the trials their scouts did not prune
                    batch = jobs_of([a for a in asked if id(a[1]) not in pruned], (1, spec.seeds), False)
                if not batch:
                    continue
                results = self._launch([job for _, job in batch], tolerate_divergence=True)
                for ((v, trial), _), result in zip(batch, results):
                    run_id, got, outcome = self._tuning_result(result)
                    runs[id(trial)].append(run_id)
                    if outcome == tuning.PRUNED:
                        pruned.add(id(trial))
                    else:
                        scores[id(trial)].append(got)
            for key, trial, values in asked:
                if id(trial) in pruned:
                    tuning.prune(studies[key], trial)
                    value, state = math.nan, "pruned"
                else:
                    value = tuning.tell(studies[key], trial, scores[id(trial)])
                    state = "failed" if math.isnan(value) else "complete"
                record[key].append({"trial": trial.number, "values": values, "state": state, "score": value,
                                    "runs": runs[id(trial)]})
                repeat = f" (repeat {key[1]})" if search.repeats > 1 else ""
                print(f"  {staging.variant_name(key[0], swept):30s} trial {trial.number}{repeat}: "
                      + ", ".join(f"{k}={x}" for k, x in values.items()) + f" -> {state}"
                      + ("" if math.isnan(value) else f" {value:.4f}"), flush=True)
        return self._record_search(studies, record, sweep_dir, swept, self._search_ties(studies, variants, swept))

    def _search_ties(self, studies: dict, variants: dict, swept: set) -> dict:
        """Per variant whose best complete trials tie exactly: the trial the tie-break's extra seeds chose, and
        what was run ({(variant, repeat): (trial number or None, record)})."""
        import optuna

        from xablate.tuning import rounded

        out = {}
        for (v, repeat), study in studies.items():
            complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
            by_number = {t.number: t for t in complete}
            scores = {t.number: [t.value] * self.tune.seeds for t in complete}
            settings: dict = {}  # a trial that repeats another's setting is the same draw, not a tie
            for n in _tied_numbers(complete):
                settings.setdefault(json.dumps({k: rounded(x) for k, x in by_number[n].params.items()},
                                               sort_keys=True, default=str), n)
            tied = list(settings.values())
            tie = self._break_tie(v, variants[v], tied, lambda number: {k: rounded(x) for k, x in
                                                                      by_number[number].params.items()}, scores, swept)
            if tie:
                means = {n: _mean(scores[n]) for n in tied}
                best = max(tied, key=lambda n: (means[n], -n))
                out[(v, repeat)] = (best if tie["broken"] else None, tie)
        return out

    def _tuning_result(self, result):
        """(run id, score, outcome) of one tuning job: a diverged run scores NaN, a pruned one says so."""
        from mlflow import MlflowClient

        from xablate import staging
        from xablate.tracking.store import resolve_tracking_uri
        from xablate.tracking.previous_runs import OUTCOME_TAG

        if result.status == JobStatus.FAILED:
            return _diverged_run(result), math.nan, "diverged"
        run = MlflowClient(resolve_tracking_uri(self.config.tracking.uri)).get_run(result.return_value["run_id"])
        return (run.info.run_id, staging.score(run.data.metrics, run.info.status, self.tune.metric),
                run.data.tags.get(OUTCOME_TAG, ""))

    def _record_search(self, studies: dict, record: dict, sweep_dir: Path, swept: set, ties: dict) -> dict:
        """Each variant's best trial (its values are the final stage's), kept in tuning.json and on the parent."""
        import optuna
        from mlflow import MlflowClient

        from xablate import staging
        from xablate.tracking.store import PARENT_RUN_FILE, resolve_tracking_uri
        from xablate.tuning import rounded

        spec, choices, variants = self.tune, {}, []
        for (v, repeat), study in studies.items():
            name = staging.variant_name(v, swept) + (f" (repeat {repeat})" if spec.search.repeats > 1 else "")
            complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
            if not complete:
                raise RuntimeError(f"no tuning trial of {name} finished (all diverged, failed or pruned): nothing "
                                   f"to choose from")
            preferred = ties.get((v, repeat), (None, None))[0]  # a tie broken by more seeds: their choice
            best = next(t for t in complete if t.number == preferred) if preferred is not None else \
                max(complete, key=lambda t: (t.value, -t.number))
            chosen = {k: rounded(best.params[k]) for k in spec.keys}
            choices.setdefault(v, []).append(chosen)
            trials = [{"trial": t.number, "values": {k: rounded(x) for k, x in t.params.items()},
                       "state": t.state.name.lower(), "score": t.value,
                       "pruned_at": max(t.intermediate_values) if t.state.name == "PRUNED" and t.intermediate_values
                       else None} for t in study.get_trials(deepcopy=False)
                      if t.state.name in ("COMPLETE", "PRUNED")]
            variants.append({"variant": staging.variant_name(v, swept), "repeat": repeat, "study": study.study_name,
                             "chosen": chosen if len(spec.keys) > 1 else chosen[spec.key],
                             "trials": trials, "this_sweep": record[(v, repeat)],
                             **({"tie_break": ties[(v, repeat)][1]} if (v, repeat) in ties else {})})
            print(f"  {name:30s} -> " + ", ".join(f"{k}={x}" for k, x in chosen.items())
                  + f"   (trial {best.number}, {best.value:.4f} mean over seeds)", flush=True)
        if spec.search.repeats == 1:  # one choice per variant, as before repeats existed
            choices = {v: chosen[0] for v, chosen in choices.items()}
        document = {"key": spec.key, "space": {k: {kind: args} for k, (kind, args) in spec.search.space.items()},
                    "sampler": spec.search.sampler, "trials": spec.search.trials, "pruner": spec.search.pruner,
                    "repeats": spec.search.repeats, "metric": spec.metric, "seeds": spec.seeds,
                    "budget": spec.budget, "epochs_fraction": spec.epochs_fraction, "variants": variants}
        (sweep_dir / staging.TUNING_FILE).write_text(json.dumps(document, indent=2, default=str))
        parent = sweep_dir / PARENT_RUN_FILE
        if parent.exists():
            client = MlflowClient(resolve_tracking_uri(self.config.tracking.uri))
            parent_id = parent.read_text().strip()
            client.set_tag(parent_id, staging.KEY_TAG, spec.key)
            recorded: dict = {}  # variant -> its choice, or with repeats the list of them (repeat order)
            for r in variants:
                if spec.search.repeats > 1:
                    recorded.setdefault(r["variant"], []).append(r["chosen"])
                else:
                    recorded[r["variant"]] = r["chosen"]
            client.set_tag(parent_id, staging.CHOICES_TAG, json.dumps(recorded))
            client.log_artifact(parent_id, str(sweep_dir / staging.TUNING_FILE))
        return choices

    def _value_in(self, job: List[str], key: str, default: Any) -> Any:
        from xablate.staging import override_key

        for override in job:
            if override_key(override) == key:
                return override.split("=", 1)[1]
        return default

    def _launch(self, jobs: List[List[str]], tolerate_divergence: bool) -> list:
        from xablate.training.divergence import RunDiverged

        self.validate_batch_is_legal(jobs)
        results = self.launcher.launch(jobs, initial_job_idx=self.job_index)
        self.job_index += len(jobs)
        for result in results:
            try:
                _ = result.return_value  # re-raises a job's failure, as Hydra's basic sweeper does
            except RunDiverged:
                if not tolerate_divergence:
                    raise  # a value that diverges loses a tuning stage; it does not end the study
        return results

    def _break_tie(self, variant, jobs: list, tied: list, overrides_of, scores: dict, swept: set) -> dict | None:
        """When settings tie for a variant's best mean, each is trained on the next `seeds` replicates
        (staging.tie_break_seeds) and their scores join its own (`scores`: setting -> list, updated in place);
        the record of what was run, or None without a tie. A tie the new seeds leave unbroken is said so."""
        from xablate import staging

        if len(tied) < 2:
            return None
        extra = staging.tie_break_seeds(jobs, self.tune.seeds, self.tune.seeds_from)
        name = staging.variant_name(variant, swept)
        if not extra:
            print(f"[xablate] {name}: settings {tied} tie and the study has no replicates beyond the tuning's: "
                  f"the tie stands (flagged in the verdict)", flush=True)
            return {"tied": tied, "seeds": 0, "broken": False}
        budget = staging.stage_budget(self.tune, int(self._value_in(jobs[0], "train.epochs",
                                                                    self.config.train.epochs)))
        print(f"[xablate] {name}: settings {tied} tie; breaking it with {len(extra)} more seed(s) each", flush=True)
        batch = [(value, staging.with_overrides(job, {**budget, **overrides_of(value), staging.STAGE_KEY: "tune",
                                                      staging.TUNED_KEY: self.tune.key}))
                 for value in tied for job in extra]
        for (value, _), result in zip(batch, self._launch([job for _, job in batch], tolerate_divergence=True)):
            scores.setdefault(value, []).append(self._tuning_result(result)[1])
        means = {value: _mean(scores[value]) for value in tied}
        broken = len(staging.tied_best(means)) == 1
        return {"tied": tied, "seeds": len(extra), "means": means, "broken": broken}

    def _choose(self, planned: list, results: list, sweep_dir: Path, swept: set) -> dict:
        from mlflow import MlflowClient

        from xablate import staging
        from xablate.tracking.store import PARENT_RUN_FILE, resolve_tracking_uri

        uri = resolve_tracking_uri(self.config.tracking.uri)
        client = MlflowClient(uri)
        scores: dict = {}
        runs: dict = {}
        for (variant, value, _), result in zip(planned, results):
            if result.status == JobStatus.FAILED:  # diverged (others raised above)
                run_id, got = _diverged_run(result), math.nan
            else:
                run_id = result.return_value["run_id"]
                run = client.get_run(run_id)
                got = staging.score(run.data.metrics, run.info.status, self.tune.metric)
            scores.setdefault(variant, {}).setdefault(staging._value(value), []).append(got)
            runs.setdefault(variant, {}).setdefault(staging._value(value), []).append(run_id)
        choices, record = {}, []
        name, higher = staging.TUNE_METRICS[self.tune.metric]
        print(f"[xablate] tuned {self.tune.key} on {self.tune.metric} (validation):", flush=True)
        grid = staging.variants_of(self._grid, self.tune.keys)
        for variant, per_value in scores.items():
            best, means = staging.pick(self.tune.values, per_value)
            tie = self._break_tie(variant, grid.get(variant, []), staging.tied_best(means),
                                  lambda value: {self.tune.key: value}, per_value, swept)
            if tie:
                best, means = staging.pick(self.tune.values, per_value)
            choices[variant] = {self.tune.key: best}
            shown = {v: (m if higher or math.isnan(m) else -m) for v, m in means.items()}
            record.append({"variant": staging.variant_name(variant, swept), "chosen": best, "scores": shown,
                           "runs": runs[variant], **({"tie_break": tie} if tie else {})})
            print(f"  {staging.variant_name(variant, swept):40s} -> {best}   "
                  + "  ".join(f"{v}: {m:.4f}" for v, m in shown.items()), flush=True)
        document = {"key": self.tune.key, "values": self.tune.values, "metric": self.tune.metric,
                    "seeds": self.tune.seeds, "budget": self.tune.budget,
                    "epochs_fraction": self.tune.epochs_fraction, "variants": record}
        (sweep_dir / staging.TUNING_FILE).write_text(json.dumps(document, indent=2))
        parent = sweep_dir / PARENT_RUN_FILE
        if parent.exists():
            parent_id = parent.read_text().strip()
            client.set_tag(parent_id, staging.KEY_TAG, self.tune.key)
            client.set_tag(parent_id, staging.CHOICES_TAG,
                           json.dumps({r["variant"]: r["chosen"] for r in record}))
            client.log_artifact(parent_id, str(sweep_dir / staging.TUNING_FILE))
        return choices


def _tied_numbers(complete: list) -> list[int]:
    """The numbers of the complete trials whose value equals the best (more than one: a tie)."""
    best = max((t.value for t in complete), default=math.nan)
    return [t.number for t in complete if t.value == best]


def _mean(values: list) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else math.nan


def _diverged_run(result) -> Optional[str]:
    """The run id a diverged job's RunDiverged carries (read through JobReturn's public return_value)."""
    try:
        _ = result.return_value
    except Exception as error:  # noqa: BLE001 - the job's own exception, re-raised by Hydra
        return getattr(error, "run_id", None)
    return None
