"""The GPU check's table: steady-state images/s of every run in the store, and each phase's wall time.

    python scripts/gpu_report.py sqlite:////tmp/xablate-gpu/mlflow.db /tmp/xablate-gpu/phases.csv
"""

import csv
import statistics
import sys

from mlflow import MlflowClient


def run_rows(uri: str) -> list[dict]:
    client = MlflowClient(uri)
    rows = []
    for experiment in client.search_experiments():
        for run in client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"]):
            if run.data.tags.get("xablate.role") == "sweep":
                continue
            speeds = [m.value for m in client.get_metric_history(run.info.run_id, "images_per_second")]
            steady = speeds[1:] or speeds  # the first epoch includes compilation
            params = run.data.params
            rows.append({
                "study": experiment.name, "model": params.get("model.preset", "?"),
                "precision": params.get("train.precision", "?"), "seed": params.get("seed", "?"),
                "status": run.info.status, "images/s": round(statistics.median(steady), 1) if steady else None,
                "first epoch s": round(client.get_metric_history(run.info.run_id, "epoch_seconds")[0].value, 1)
                if speeds else None,
                "val acc": round(run.data.metrics.get("val_accuracy", float("nan")), 4),
            })
    return rows


def markdown(rows: list[dict]) -> str:
    if not rows:
        return "(no rows)"
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(row[k]) for k in keys) + " |" for row in rows]
    return "\n".join(lines)


def main(uri: str, phases_csv: str) -> None:
    print(markdown(run_rows(uri)))
    with open(phases_csv) as f:
        phases = [{"phase": name, "wall s": round(float(seconds), 1)} for name, seconds in csv.reader(f)]
    print()
    print(markdown(phases))


if __name__ == "__main__":
    main(*sys.argv[1:3])
