"""Optuna inside the tune stage (groundwork): the search space a study declares, and one Optuna study per variant
kept beside the MLflow store (a SQLite file beside a SQLite store; with a server store, the server's PostgreSQL
database, `tracking.database`), asked and told through Optuna's public ask/tell API.

    hydra:
      sweeper:
        tune:
          space:
            optim.learning_rate: {log_uniform: [1.0e-4, 1.0e-2]}
            optim.weight_decay: {uniform: [0.0, 1.0e-4]}
            model.middle_blocks: {int: [2, 8]}
            optim.optimizer: {choice: [adam, sgd]}
          sampler: tpe            # tpe | random | grid (grid: choice and int keys only)
          startup: 4              # tpe: random trials before the model (Optuna's n_startup_trials)
          trials: 8               # per variant
          seeds: 2                # a trial's objective is the mean over its seeds on the validation split
          pruner: none            # none | median | successive_halving | hyperband (tune stage only)
          parallel: 1             # trials asked per variant at once (each batch: variants x parallel x seeds jobs)
          repeats: 1              # the whole search r times per variant, each with its own sampler seed: final
                                  # replicate j runs at repeat (j mod r)'s choice, so the study's interval carries
                                  # the tuning's own variance (Optuna studies `<study>/<variant>/repeat-<k>`, k >= 1)

With a pruner, each trial's first seed is its scout: it trains first, reporting its per-epoch validation metric
to the trial, and stops where the pruner says (the run ends KILLED with xablate.outcome=pruned, the epoch and the
reason); only the trials it did not prune run their other seeds. The final stage is never pruned: its jobs carry
no trial.

A trial killed with its sweep is re-asked with the same values when the stage is typed again, so the runs it
finished are skipped by identity and no finished trial repeats (`ask`). Bad settings are refused with the key,
the value and what is allowed (`parse_search`), before any run or sweep parent exists.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DISTRIBUTIONS = ("log_uniform", "uniform", "int", "choice")
SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("none", "median", "successive_halving", "hyperband")
SEARCH_SETTINGS = ("space", "sampler", "trials", "startup", "pruner", "parallel", "repeats")
STORAGE_FILE = "optuna.db"
TRIAL_KEY = "tracking.trial"  # on a tuning job: `<its variant's Optuna study>@<trial number>` (non-semantic)
PRUNED = "pruned"             # xablate.outcome of a run its pruner stopped (MLflow status KILLED)
REPEAT_SEED_STRIDE = 1000    # repeat k's sampler seed: seed + 1000 k (+ the trials a resumed study holds)
SIGNIFICANT_DIGITS = 3        # a sampled float is run at 3 significant digits (readable runs, stable identities)


@dataclass(frozen=True)
class SearchSpec:
    space: dict[str, tuple[str, list]]  # key -> (distribution, its arguments)
    sampler: str = "tpe"
    trials: int = 8
    startup: int = 4
    pruner: str = "none"
    parallel: int = 1
    seed: int = 0  # the sampler's own seed: the same study asks the same values
    repeats: int = 1  # independent searches per variant (sampler seeds REPEAT_SEED_STRIDE apart)
    extra: dict = field(default_factory=dict)


def _error(setting: str, value: Any, allowed: str) -> ValueError:
    return ValueError(f"Received hydra.sweeper.tune.{setting}={value!r}; allowed: {allowed}.")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _distribution(key: str, raw: Any) -> tuple[str, list]:
    if not isinstance(raw, dict) or len(raw) != 1 or next(iter(raw)) not in DISTRIBUTIONS:
        raise _error(f"space.{key}", raw, "one of " + ", ".join(f"{{{d}: ...}}" for d in DISTRIBUTIONS))
    kind, args = next(iter(raw.items()))
    if kind == "choice":
        if not isinstance(args, list) or len(args) < 2 or len({repr(a) for a in args}) != len(args):
            raise _error(f"space.{key}.choice", args, "a list of at least two distinct values")
        return kind, list(args)
    if not isinstance(args, list) or len(args) != 2 or not all(_number(a) for a in args):
        raise _error(f"space.{key}.{kind}", args, "[low, high], two numbers")
    low, high = args
    if not low < high:
        raise _error(f"space.{key}.{kind}", args, "low < high (a range that is neither empty nor inverted)")
    if kind == "log_uniform" and low <= 0:
        raise _error(f"space.{key}.log_uniform", args, "0 < low < high (a log range cannot touch zero)")
    if kind == "int" and not all(isinstance(a, int) for a in args):
        raise _error(f"space.{key}.int", args, "[low, high], two integers")
    return kind, [low, high]


def parse_search(block: dict) -> SearchSpec:
    """The Optuna form of hydra.sweeper.tune (a `space` mapping); errors name the setting."""
    space = block.get("space")
    if not isinstance(space, dict) or not space:
        raise _error("space", space, "a mapping of config keys to distributions, e.g. "
                                     "{optim.learning_rate: {log_uniform: [1.0e-4, 1.0e-2]}}")
    parsed = {str(key): _distribution(str(key), raw) for key, raw in space.items()}
    sampler = block.get("sampler", "tpe")
    if sampler not in SAMPLERS:
        raise _error("sampler", sampler, ", ".join(SAMPLERS))
    if sampler == "grid" and any(kind not in ("choice", "int") for kind, _ in parsed.values()):
        raise _error("sampler", sampler, "tpe or random for a continuous range (grid takes choice and int keys)")
    trials = block.get("trials", 8)
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 2:
        raise _error("trials", trials, "an integer >= 2 (trials per variant)")
    startup = block.get("startup", min(4, trials - 1))
    if isinstance(startup, bool) or not isinstance(startup, int) or startup < 1:
        raise _error("startup", startup, "an integer >= 1 (random trials before TPE models the space)")
    if sampler == "tpe" and trials <= startup:
        raise _error("trials", trials, f"more than startup={startup} (with fewer, TPE never leaves its random "
                                       f"start-up: lower startup or use sampler: random)")
    pruner = block.get("pruner", "none")
    if pruner not in PRUNERS:
        raise _error("pruner", pruner, ", ".join(PRUNERS))
    parallel = block.get("parallel", 1)
    if isinstance(parallel, bool) or not isinstance(parallel, int) or not 1 <= parallel <= trials:
        raise _error("parallel", parallel, f"an integer from 1 to trials={trials} (trials asked per variant at once)")
    repeats = block.get("repeats", 1)
    if isinstance(repeats, bool) or not isinstance(repeats, int) or not 1 <= repeats <= 20:
        raise _error("repeats", repeats, "an integer from 1 to 20 (independent searches per variant, each with its "
                                         "own sampler seed)")
    if repeats > 1 and sampler == "grid":
        raise _error("repeats", repeats, "1 with sampler: grid (every repeat would run the same grid and choose the "
                                         "same value), or tpe or random with repeats > 1")
    return SearchSpec(parsed, sampler, trials, startup, pruner, parallel, repeats=repeats)


OPTUNA_SCHEMA = "optuna"  # in a PostgreSQL database shared with the MLflow server: Optuna's tables apart from MLflow's


def storage_url(tracking_uri: str, database: str | None) -> str:
    """Where the Optuna studies of a search live: `tracking.database` (the database a server store keeps the
    study in: PostgreSQL, schema optuna), else a SQLite file beside a SQLite MLflow store (the store folder
    carries both). A server store without a database is refused: each machine would see a file of its own."""
    if database:
        if not database.startswith(("postgresql://", "postgresql+", "mysql://", "mysql+", "sqlite:///")):
            raise ValueError(f"Received tracking.database={database!r}; allowed: a SQLAlchemy database URI "
                             f"(postgresql://user@host:port/name, the one `xablate server` prints; mysql://…; "
                             f"sqlite:///…)")
        return database
    if tracking_uri.startswith("sqlite:///"):
        return f"sqlite:///{Path(tracking_uri[len('sqlite:///'):]).parent / STORAGE_FILE}"
    raise ValueError(f"Received tracking.uri={tracking_uri!r}, a server store, with tracking.database=None and a "
                     f"tuning search; allowed: tracking.database=<the server's database URI> (e.g. "
                     f"postgresql://xablate@dbhost:5432/xablate, the one `xablate server` prints), so that the Optuna "
                     f"studies live where every machine of the study reaches them, or a SQLite store "
                     f"(tracking.uri=sqlite:///…)")


def shown_url(url: str) -> str:
    """A storage URL as printed: without its password."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def require_driver(url: str) -> None:
    """One line naming the [server] extra when a PostgreSQL database has no driver installed."""
    if url.startswith("postgresql"):
        from xablate.extras import require

        require("server", f"tracking.database={shown_url(url)}")


def rdb_storage(url: str):
    """Optuna's RDB storage at `url`; on PostgreSQL in its own schema (created when missing), beside MLflow's
    tables in the same database."""
    import optuna

    if not url.startswith("postgresql"):
        if url.startswith("sqlite:///"):
            Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.RDBStorage(url)
    import sqlalchemy

    require_driver(url)
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(sqlalchemy.text(f"CREATE SCHEMA IF NOT EXISTS {OPTUNA_SCHEMA}"))
    finally:
        engine.dispose()
    return optuna.storages.RDBStorage(url, engine_kwargs={
        "connect_args": {"options": f"-csearch_path={OPTUNA_SCHEMA}"}, "pool_pre_ping": True})


def study_name(study: str, variant: str) -> str:
    """The Optuna study of one variant of a study, e.g. `fig9_tuned/residual:false` (no `=`, `,` or `@`, so it
    travels in a command-line override)."""
    return f"{study}/{variant}".replace("=", ":").replace(",", "+").replace("@", "_")


def repeat_study_name(study: str, variant: str, repeat: int) -> str:
    """The Optuna study of one repeat of a variant's search: the first keeps study_name (so studies tuned before
    repeats existed resume as they were), repeat k >= 1 adds `/repeat-<k>`."""
    return study_name(study, variant) + (f"/repeat-{repeat}" if repeat else "")


def repeat_spec(spec: SearchSpec, repeat: int) -> SearchSpec:
    """The search of one repeat: the same space and budget, its own sampler seed."""
    return dataclasses.replace(spec, seed=spec.seed + REPEAT_SEED_STRIDE * repeat)


def trial_ref(study, trial) -> str:
    return f"{study.study_name}@{trial.number}"


def make_pruner(name: str, startup: int, epochs: int):
    """The Optuna pruner `name` for a stage of `epochs` epochs (reported as steps 1..epochs): median waits for
    `startup` trials and the first epoch; successive halving and Hyperband keep a third at each rung."""
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=startup, n_warmup_steps=1)
    if name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(epochs, 1), reduction_factor=3)
    return optuna.pruners.NopPruner()


def check_band(url: str, names: list[str], seeds_from: int | None) -> None:
    """Refuses to go on with a tuning study (of `names`, in the storage at `url`) whose trials trained with another
    `tune.seeds_from` (recorded on it by open_study; none recorded: the study's own first seeds): its trials would
    mix two seed bands. Opens nothing that is not there."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = rdb_storage(url)
    for name in names:
        try:
            study = optuna.load_study(study_name=name, storage=storage)
        except KeyError:
            continue
        recorded = study.user_attrs.get("seeds_from")
        if study.trials and recorded != seeds_from:
            shown = lambda v: "null (the study's own first seeds)" if v is None else str(v)  # noqa: E731
            raise ValueError(
                f"Received hydra.sweeper.tune.seeds_from={shown(seeds_from)}, but the tuning study {name!r} holds "
                f"{len(study.trials)} trial(s) trained with seeds_from={shown(recorded)}; allowed: that value (a "
                f"tuning's trials share one seed band), or the search begun afresh (optuna.delete_study("
                f"study_name={name!r}, storage={shown_url(url)!r}))")


def open_study(url: str, name: str, spec: SearchSpec, epochs: int = 1, metric: str = "final_val_accuracy",
               seeds_from: int | None = None):
    """The variant's Optuna study in the storage at `url` (storage_url; created, or loaded as a killed stage left
    it). Its pruner's settings are stored with it (user attributes), so a job reporting to one of its trials
    prunes by the same rule; so is the tuning's seed band (`seeds_from`, staging.tuning_replicates): a study whose
    trials trained on other seeds is refused, not continued on a mix."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = rdb_storage(url)
    try:  # a resumed study seeds its sampler past the trials it holds, so it does not replay their draws
        seed = spec.seed + len(optuna.load_study(study_name=name, storage=storage).trials)
    except KeyError:
        seed = spec.seed
    if spec.sampler == "tpe":
        sampler = optuna.samplers.TPESampler(n_startup_trials=spec.startup, seed=seed)
    elif spec.sampler == "random":
        sampler = optuna.samplers.RandomSampler(seed=seed)
    else:
        grid = {k: (args if kind == "choice" else list(range(args[0], args[1] + 1)))
                for k, (kind, args) in spec.space.items()}
        sampler = optuna.samplers.GridSampler(grid, seed=seed)
    check_band(url, [name], seeds_from)
    study = optuna.create_study(storage=storage, study_name=name, direction="maximize", sampler=sampler,
                                pruner=make_pruner(spec.pruner, spec.startup, epochs), load_if_exists=True)
    study.set_user_attr("seeds_from", seeds_from)
    study.set_user_attr("pruner", {"name": spec.pruner, "startup": spec.startup, "epochs": epochs,
                                   "metric": metric})
    return study


def rounded(value: Any) -> Any:
    """A sampled float at SIGNIFICANT_DIGITS significant digits; other values as they are."""
    if isinstance(value, float) and value != 0 and math.isfinite(value):
        return float(f"{value:.{SIGNIFICANT_DIGITS}g}")
    return value


def _suggest(trial, key: str, kind: str, args: list):
    if kind == "log_uniform":
        return trial.suggest_float(key, args[0], args[1], log=True)
    if kind == "uniform":
        return trial.suggest_float(key, args[0], args[1])
    if kind == "int":
        return trial.suggest_int(key, args[0], args[1])
    return trial.suggest_categorical(key, args)


def ask(study, spec: SearchSpec, n: int) -> list[tuple[Any, dict]]:
    """Up to `n` trials to run now, each with its values: first the trials a killed stage left RUNNING (failed and
    re-asked with the same values, so their finished runs are skipped by identity), then new ones, never more than
    the study's `trials` in all."""
    import optuna

    for stale in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study.tell(stale.number, state=optuna.trial.TrialState.FAIL)
        study.enqueue_trial(stale.params, skip_if_exists=False)
    done = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,
                                                        optuna.trial.TrialState.PRUNED)))
    asked = []
    for _ in range(max(0, min(n, spec.trials - done))):
        trial = study.ask()
        asked.append((trial, {k: rounded(_suggest(trial, k, kind, args)) for k, (kind, args) in spec.space.items()}))
    return asked


def tell(study, trial, scores: list[float]) -> float:
    """Records a trial's objective, the mean of its seeds' finite scores (higher is better); a trial with none
    (every seed diverged) fails and never wins. Returns the mean (NaN when failed)."""
    import optuna

    finite = [s for s in scores if not math.isnan(s)]
    if not finite:
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        return math.nan
    mean = sum(finite) / len(finite)
    study.tell(trial, mean)
    return mean


def prune(study, trial) -> None:
    """Records a trial its scout's pruner stopped (Optuna keeps its last reported value)."""
    import optuna

    study.tell(trial, state=optuna.trial.TrialState.PRUNED)


class TrialReporter:
    """Inside a tuning job: reports each epoch's validation value to the job's trial and asks its pruner, through
    Optuna's storage API (`tracking.trial` names the study and trial; the study carries its pruner's settings)."""

    def __init__(self, ref: str, url: str):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        name, number = ref.rsplit("@", 1)
        storage = rdb_storage(url)
        settings = optuna.load_study(study_name=name, storage=storage).user_attrs.get("pruner", {})
        self.pruner_name = settings.get("name", "none")
        self.metric = settings.get("metric", "final_val_accuracy")
        self.study = optuna.load_study(study_name=name, storage=storage, pruner=make_pruner(
            self.pruner_name, int(settings.get("startup", 1)), int(settings.get("epochs", 1))))
        trial_id = storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(name), int(number))
        self.trial = optuna.trial.Trial(self.study, trial_id)

    def should_stop(self, value: float, epoch: int) -> bool:
        """Reports `value` (higher is better) after `epoch` epochs; True when the pruner stops the trial here."""
        if not math.isfinite(value):
            return False  # the divergence guard's business
        self.trial.report(value, epoch)
        return self.pruner_name != "none" and self.trial.should_prune()
