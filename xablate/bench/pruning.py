"""What pruning saves in the tune stage, and whether it changes the choice: the same search run once unpruned and
once per pruner, each in its own store.

The search samples at random with a fixed seed, so every configuration asks the same trials; only the pruner
differs. Each configuration is a real staged sweep (`python run.py -m`, the debug study of two optimizers whose
best learning rates differ by construction), so the numbers include everything a user's sweep does. A row: the
tune stage's runs, pruned runs, epochs and training seconds, their ratio to the unpruned search, and each
variant's chosen value with whether it matches the unpruned choice.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from mlflow import MlflowClient

from xablate.bench.report import write_csv
from xablate.paths import project_root

COLUMNS = ["pruner", "trials", "seeds", "stage_epochs", "tune_runs", "pruned_runs", "tune_epochs", "epochs_ratio",
           "tune_train_seconds", "seconds_ratio", "choices", "same_choices"]
STUDY = "bench_pruning"


def experiment(pruner: str, trials: int, seeds: int, startup: int) -> str:
    return textwrap.dedent(f"""\
        # @package _global_
        defaults:
          - override /hydra/sweeper: staged
        study: {STUDY}
        hydra:
          sweeper:
            params:
              optim.optimizer: adam,sgd
              seed: range({seeds})
            tune:
              space:
                optim.learning_rate: {{log_uniform: [1.0e-3, 0.3]}}
              sampler: random
              startup: {startup}
              trials: {trials}
              seeds: {seeds}
              pruner: {pruner}
        """)


def run_search(folder: Path, pruner: str, *, trials: int, seeds: int, startup: int, epochs: int,
               overrides: list[str]) -> dict:
    """One configuration's sweep in its own store under `folder`; its tune stage measured."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "extra" / "experiment").mkdir(parents=True, exist_ok=True)
    (folder / "extra" / "experiment" / f"{STUDY}.yaml").write_text(experiment(pruner, trials, seeds, startup))
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    command = [sys.executable, str(project_root() / "run.py"), "-m", f"--config-dir={folder / 'extra'}",
               f"experiment={STUDY}", *overrides, f"train.epochs={epochs}", "train.save_model=false",
               f"tracking.uri={uri}"]
    done = subprocess.run(command, cwd=folder, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the {pruner} search failed:\n{done.stderr[-3000:]}")
    client = MlflowClient(uri)
    experiment_id = client.get_experiment_by_name(STUDY).experiment_id
    # every run the tuning stage trained (a tuning run is never a final replicate: xablate.staging.may_serve)
    runs = client.search_runs([experiment_id], filter_string="tags.`xablate.stage` LIKE '%tune%'",
                              max_results=10_000)
    parent = client.search_runs([experiment_id], filter_string="tags.`xablate.tune.choices` != ''", max_results=1)
    return {"pruner": pruner, "trials": trials, "seeds": seeds, "stage_epochs": epochs, "tune_runs": len(runs),
            "pruned_runs": sum(r.data.tags.get("xablate.outcome") == "pruned" for r in runs),
            "tune_epochs": int(sum(r.data.metrics.get("epochs_completed", 0) for r in runs)),
            "tune_train_seconds": round(sum(r.data.metrics.get("train_seconds", 0.0) for r in runs), 2),
            "choices": json.loads(parent[0].data.tags["xablate.tune.choices"])}


def measure(folder: Path, pruners: list[str], *, trials: int = 8, seeds: int = 2, startup: int = 2, epochs: int = 4,
            overrides: list[str] | None = None) -> list[dict]:
    overrides = overrides or ["debug=default"]
    rows = [run_search(folder / name, name, trials=trials, seeds=seeds, startup=startup, epochs=epochs,
                       overrides=overrides) for name in ["none", *pruners]]
    return compared(rows)


def compared(rows: list[dict]) -> list[dict]:
    """Each row's ratios to the first (unpruned) row and whether its choices are the same."""
    base = dict(rows[0])
    out = []
    for row in rows:
        out.append({**row, "epochs_ratio": round(row["tune_epochs"] / base["tune_epochs"], 3),
                    "seconds_ratio": round(row["tune_train_seconds"] / base["tune_train_seconds"], 3),
                    "same_choices": row["choices"] == base["choices"],
                    "choices": json.dumps(row["choices"], sort_keys=True)})
    return out


def write(rows: list[dict], out: Path) -> Path:
    return write_csv(rows, out, COLUMNS)
