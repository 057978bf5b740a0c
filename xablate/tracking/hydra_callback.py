"""Hydra callback: one MLflow parent run per multirun, closed with a summary table of its children.

`on_multirun_start` runs once, in the launcher's process, before any job: it opens the store and the study's
experiment (so parallel jobs never create them concurrently), starts the parent run and writes its id to
<sweep dir>/mlflow_parent_run_id, where every job — in this process or another (joblib, Ray, Slurm) — finds
it. Hydra turns callback exceptions into warnings, so failures here are also printed loudly.

When a job raises, Hydra's basic sweeper re-raises after the batch and never calls `on_multirun_end`; an
atexit hook then closes the parent (FAILED; KILLED when a signal stopped the sweep) and prints the summary, so no
parent is left RUNNING.

Once the parent is closed, the study's conclusion as it stands (per-variant means and intervals of its claimed
metrics, the verdict, the figures) is logged on it (xablate.tracking.parent_summary), so the MLflow UI shows it
beside the runs; an error there is one line, never a failed sweep.
"""

from __future__ import annotations

import atexit
import sys
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from xablate.config import REPLICATE_KEYS, short_name
from xablate.paths import portable
from xablate.sweeps import SWEEP_KEYS_FILE, swept_keys
from xablate.tracking.previous_runs import OUTCOME_TAG, owner_alive, owner_tags
from xablate.tracking.provenance import source_state
from xablate.tracking.store import PARENT_RUN_FILE, SKIPPED_DIR, open_experiment, resolve_tracking_uri
from xablate.tracking.wall_time import wall_seconds
from xablate import stop_request


class MlflowSweepCallback(Callback):
    def __init__(self) -> None:
        self.parent = None  # (uri, run_id)
        self.skipped_dir = Path(".")
        self.study = None

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        refuse_unknown_keys(config)  # before the store or the parent run exists
        stop_request.install()  # the launching process too (joblib, Ray): stopped, it closes the parent KILLED
        try:
            uri = resolve_tracking_uri(config.tracking.uri)
            client, experiment_id = open_experiment(uri, str(config.tracking.experiment))
            sweep_dir = Path(str(config.hydra.sweep.dir))
            # before this sweep's parent exists: it belongs to this process, which the check counts as finished
            close_dead_parents(client, experiment_id, float(config.tracking.stale_after_seconds))
            overrides = list(OmegaConf.to_container(config.hydra.overrides.task, resolve=False) or [])
            declared = config.hydra.sweeper.get("params")
            declared = OmegaConf.to_container(declared, resolve=False) if declared else {}
            keys = swept_keys(declared, overrides)
            # and what the study varies, when this command runs one value of it (intermediate_act=elu): its runs
            # are still that study's variants, named by their value (not "baseline")
            analysis = config.get("analysis")
            study_axes = list(analysis.get("axes") or []) if analysis else []
            keys += [k for k in dict.fromkeys([*swept_keys(declared, []), *study_axes])
                     if k not in keys and k not in REPLICATE_KEYS]
            tune = config.hydra.sweeper.get("tune")
            tuned = [tune.get("key")] if tune and tune.get("key") else list(tune.get("space") or []) if tune else []
            keys += [str(k) for k in tuned if k not in keys]  # staged sweeper: runs differ in the tuned keys too
            varies = " × ".join(short_name(k) for k in keys) or "one job"
            registered = _claims_tags(config)  # the claims as they stand before this sweep's runs
            source = source_state()  # the commit, and whether the checkout was edited
            run = client.create_run(experiment_id, run_name=f"{config.study}: {varies}", tags={
                **owner_tags(),
                "xablate.role": "sweep",
                "xablate.study": str(config.study),
                "xablate.sweep_dir": portable(str(sweep_dir.resolve())),
                "xablate.overrides": portable(" ".join(overrides)),
                "xablate.sweep_keys": " ".join(keys),
                "xablate.sweep_name": sweep_dir.name,
                **registered,
                **source.tags(),
            })
            sweep_dir.mkdir(parents=True, exist_ok=True)
            (sweep_dir / SWEEP_KEYS_FILE).write_text("\n".join(keys))
            (sweep_dir / PARENT_RUN_FILE).write_text(run.info.run_id)
            self.skipped_dir = sweep_dir / SKIPPED_DIR
            self.parent = (uri, run.info.run_id)
            self.study = str(config.study)
            atexit.register(self._close_parent, jobs_raised=True)
            print(f"[xablate] sweep parent run {run.info.run_id} in experiment '{config.tracking.experiment}' "
                  f"({uri})", flush=True)
        except Exception as error:  # Hydra would only warn; say it plainly, then let Hydra warn too
            print(f"[xablate] could not start the sweep's parent run: {error!r}", file=sys.stderr, flush=True)
            raise

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        self._close_parent()

    def _close_parent(self, jobs_raised: bool = False) -> None:
        """Ends the parent run: FINISHED when every child finished; KILLED when a signal stopped the sweep and no
        child failed otherwise; else FAILED. Prints the summary.

        `jobs_raised`: called at exit because a job raised (Hydra skips on_multirun_end then), possibly before
        its run existed (a refused setting), so the sweep failed whatever its children say."""
        if self.parent is None:
            return
        from mlflow import MlflowClient

        uri, parent_id = self.parent
        client = MlflowClient(tracking_uri=uri)
        children = client.search_runs(
            [client.get_run(parent_id).info.experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{parent_id}'",
            order_by=["attributes.start_time ASC"],
        )
        skipped = [client.get_run(path.read_text().strip()) for path in sorted(self.skipped_dir.glob("*"))]
        failed = [child for child in children if child.info.status != "FINISHED" and _status(child) != "PRUNED"]
        ok = not failed and not jobs_raised and (children or skipped)
        # stopped (Ctrl-C, SIGTERM: xablate.stop_request) reads KILLED, as its interrupted child does;
        # a child that failed for another reason keeps the parent FAILED
        interrupted = (stop_request.stopped_by_signal() or bool(failed)) and all(c.info.status == "KILLED" for c in failed)
        client.set_terminated(parent_id, status="FINISHED" if ok else "KILLED" if interrupted else "FAILED")
        if ok and not children:  # every job was in the store already: a parent of nothing is not kept
            client.delete_run(parent_id)
            print(f"[xablate] every job of this sweep was already in the store ({len(skipped)} skipped); its empty "
                  f"parent run {parent_id} was removed", flush=True)
        print(summary_table(children, skipped), flush=True)
        costs = stage_costs_line([*children, *skipped])
        if costs:
            print(f"[xablate] cost per stage (this sweep's runs, skipped ones included): {costs}", flush=True)
        if jobs_raised and not failed:
            print("[xablate] a job failed before its run started (see its error above)", file=sys.stderr,
                  flush=True)
        if failed:
            print(f"[xablate] {len(failed)} of {len(children)} job(s) did not finish: "
                  + ", ".join(f"{run.info.run_name} ({_status(run)})"
                              for run in failed), file=sys.stderr, flush=True)
        self.parent = None
        if self.study is not None:
            summarize_sweep(uri, self.study, parent_id)


def summarize_sweep(uri: str, study: str, parent_id: str) -> None:
    """The study's conclusion on the sweep's parent run (xablate.tracking.parent_summary: per-variant means and
    intervals of the claimed metrics, the verdict, the figures), after the parent is closed. Never fails the
    sweep: an error is one line."""
    try:
        from xablate.tracking.parent_summary import summarize_parent

        if summarize_parent(uri, study, parent_id) is not None:
            print(f"[xablate] the study's summary (per-variant means and intervals, verdict, figures) is on the sweep's "
                  f"parent run {parent_id} (artifacts summary/)", flush=True)
    except Exception as error:  # noqa: BLE001 — the sweep's runs are done and recorded whatever happens here
        print(f"[xablate] could not log the study's summary on the sweep's parent run: "
              f"{' '.join(f'{type(error).__name__}: {error}'.split())[:400]}", file=sys.stderr, flush=True)


def refuse_unknown_keys(config: DictConfig) -> None:
    """Ends the sweep with one line naming an unknown key and its nearest known key, or a bad tuning or pilot
    stage of the staged sweeper, before anything is created.
    SystemExit, not an exception: Hydra turns a callback's exceptions into warnings and would launch the jobs."""
    from xablate.paths import project_root
    from xablate.schema import check_known_keys, check_override_keys
    from xablate.config import flatten
    from xablate.staging import parse_pilot, parse_tune
    from xablate.studies import check_claims_made, check_study_name, parse_study
    from xablate.sweeps import excluding, expand
    from xablate.command_line import check_sweep_values

    job = {k: v for k, v in OmegaConf.to_container(config, resolve=False).items() if k != "hydra"}
    groups = {p.name for p in (project_root() / "conf").iterdir() if p.is_dir()}
    overrides = list(OmegaConf.to_container(config.hydra.overrides.task, resolve=False) or [])
    sweeper = config.hydra.sweeper
    try:
        check_known_keys(flatten(job))
        check_override_keys(overrides, groups)
        check_study_name(job.get("study"))
        if sweeper.get("exclude") is not None:  # the cells it drops name the declared grid's keys and values
            grid = sweeper.get("params")
            grid = OmegaConf.to_container(grid, resolve=False) if grid else {}
            excluding(expand(grid, []), OmegaConf.to_container(sweeper.get("exclude"), resolve=True))
        for block, parse in (("tune", parse_tune), ("pilot", parse_pilot)):  # the staged sweeper's stages
            if sweeper.get(block) is not None:
                parsed = parse(OmegaConf.to_container(sweeper.get(block), resolve=True))
                if block == "tune" and parsed.seeds_from is not None:  # its seed band apart from the study's seeds
                    from xablate.staging import check_tuning_seeds

                    declared = sweeper.get("params")
                    declared = OmegaConf.to_container(declared, resolve=False) if declared else {}
                    looks = ((job.get("analysis") or {}).get("sequential") or {}).get("looks") or []
                    whole = [f"seed=range({max(looks)})"] if looks else []
                    check_tuning_seeds(expand(declared, overrides) + expand(declared, whole), parsed,
                                       int(job.get("seed") or 0))
                if block == "tune" and parsed.search is not None:  # its Optuna studies: where every job reaches them
                    from xablate.tuning import storage_url

                    storage_url(resolve_tracking_uri(config.tracking.get("uri")), config.tracking.get("database"))
        if job.get("analysis"):  # the study's claims: well formed, and about variants this sweep makes
            declared = sweeper.get("params")
            declared = OmegaConf.to_container(declared, resolve=False) if declared else {}
            tune = sweeper.get("tune")
            study = parse_study(str(job.get("study")), {"analysis": job["analysis"], "hydra": {"sweeper": {
                "params": declared, "tune": OmegaConf.to_container(tune, resolve=True) if tune is not None else None}}})
            # the study's own grid and this command's (status prints commands that complete part of a study)
            check_claims_made(study, expand(declared, []) + expand(declared, overrides), flatten(job))
            if study.sequential is not None and "StagedSweeper" not in str(sweeper.get("_target_")):
                raise ValueError(f"Received analysis.sequential={job['analysis']['sequential']} with Hydra's "
                                 f"{sweeper.get('_target_')}; allowed: the staged sweeper, which adds seeds look by "
                                 f"look (the study's defaults: - override /hydra/sweeper: staged).")
        params = sweeper.get("params")  # every value the sweep takes, validated as its job will be
        analysis = OmegaConf.to_container(config.analysis, resolve=True) if config.get("analysis") else None
        check_sweep_values(OmegaConf.to_container(params, resolve=False) if params else {}, overrides,
                           parsed=(job.get("study"), analysis) if analysis else ())
    except ValueError as error:
        print(f"xablate: {error}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


def _claims_tags(config: DictConfig) -> dict[str, str]:
    """The study's claims with their hashes, for the parent run (xablate.analysis.registration reads them, with
    the parent's commit: a claim is pre-registered when it was recorded before the first run that tests it), and
    its sequential plan (xablate.analysis.plans)."""
    from xablate.studies import CLAIMS_TAG, SEQUENTIAL_TAG, claims_record, parse_study

    analysis = OmegaConf.to_container(config.analysis, resolve=True) if config.get("analysis") else None
    if not analysis or not analysis.get("claims"):
        return {}
    declared, tune = config.hydra.sweeper.get("params"), config.hydra.sweeper.get("tune")
    study = parse_study(str(config.study), {"analysis": analysis, "hydra": {"sweeper": {
        "params": OmegaConf.to_container(declared, resolve=False) if declared else {},
        "tune": OmegaConf.to_container(tune, resolve=True) if tune is not None else None}}})
    plan = {SEQUENTIAL_TAG: study.sequential.record()} if study.sequential is not None else {}
    return {CLAIMS_TAG: claims_record(study), **plan}  # the plan its looks are read at (xablate.analysis.plans)


def close_dead_parents(client, experiment_id: str, stale_after_seconds: float) -> None:
    """Sweep parents left RUNNING by a killed launcher (SIGKILL skips atexit) are closed as KILLED."""
    for run in client.search_runs([experiment_id], filter_string="tags.`xablate.role` = 'sweep' and "
                                  "attributes.status = 'RUNNING'", max_results=1000):
        if not owner_alive(run, stale_after_seconds):
            client.set_terminated(run.info.run_id, status="KILLED")


def _status(run) -> str:
    if run.info.status == "FAILED" and run.data.tags.get(OUTCOME_TAG) == "diverged":
        return "DIVERGED"
    if run.info.status == "KILLED" and run.data.tags.get(OUTCOME_TAG) == "pruned":
        return "PRUNED"  # a tuning trial's pruner stopped it: a result of the search, not a failure
    return run.info.status


def stage_costs_line(runs) -> str:
    """A staged sweep's runs, pruned runs, epochs and training minutes per stage (a run in the first stage it
    served); empty for a sweep with one stage."""
    from xablate.staging import STAGE_TAG, STAGES

    costs: dict = {}
    for run in {r.info.run_id: r for r in runs}.values():
        tagged = run.data.tags.get(STAGE_TAG, "final").split(",")
        stage = next((s for s in STAGES if s in tagged), "final")
        entry = costs.setdefault(stage, [0, 0, 0, 0.0, 0.0])
        entry[0] += 1
        entry[1] += _status(run) == "PRUNED"
        entry[2] += int(run.data.metrics.get("epochs_completed", 0))
        entry[3] += run.data.metrics.get("train_seconds", 0.0) / 60
        entry[4] += wall_seconds(run.info.start_time, run.info.end_time or run.info.start_time, run.data.tags) / 60
    if set(costs) <= {"final"}:
        return ""
    return "; ".join(f"{stage} {n} runs{f', {p} pruned' if p else ''}, {e} epochs, {m:.1f} min training "
                     f"({w:.1f} min wall)" for stage in STAGES if stage in costs for n, p, e, m, w in [costs[stage]])


def summary_table(runs, skipped=()) -> str:
    """One line per child run (and per variant skipped because the study already had it): variant, status,
    best/final validation accuracy, epochs, minutes."""
    header = (f"{'run':<40} {'status':<9} {'best val acc':>12} {'final val acc':>13} {'test acc':>8} {'epochs':>6} "
              f"{'min':>6}")
    lines = [header, "-" * len(header)]
    skipped_ids = {run.info.run_id for run in skipped}
    for run in [*runs, *skipped]:
        metrics, tags = run.data.metrics, run.data.tags
        minutes = wall_seconds(run.info.start_time, run.info.end_time, run.data.tags) / 60
        best, final, test = (metrics.get(k) for k in ("best_val_accuracy", "val_accuracy", "test_accuracy"))
        lines.append(
            f"{run.info.run_name:<40} "
            f"{('skipped' if run.info.run_id in skipped_ids else _status(run)):<9} "
            f"{'-' if best is None else f'{best:.4f}':>12} {'-' if final is None else f'{final:.4f}':>13} "
            f"{'-' if test is None else f'{test:.4f}':>8} "
            f"{int(metrics.get('epochs_completed', 0)):>6} {minutes:>6.1f}"
        )
    return "\n".join(lines)
