"""Each run's accuracy and loss curves (training and validation against epoch, the seed project's two plots),
logged as the artifact `curves.png` so the MLflow UI shows them on the run's page."""

from __future__ import annotations

from pathlib import Path


def curves_figure(history: list[dict]):
    """A matplotlib Figure (no pyplot: nothing is shown or kept open) with accuracy and loss panels."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    epochs = list(range(1, len(history) + 1))
    figure = Figure(figsize=(10, 4), layout="constrained")
    for axis, key, title in zip(figure.subplots(1, 2), ("accuracy", "loss"), ("Accuracy", "Loss")):
        for prefix, label in (("", "training"), ("val_", "validation")):
            values = [h.get(prefix + key) for h in history]
            if any(v is not None for v in values):
                axis.plot(epochs, values, marker="o", markersize=3, label=label)
        axis.set_title(title)
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.legend()
    return figure


def log_curves(client, run_id: str, path: Path, history: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    curves_figure(history).savefig(path, dpi=100)
    client.log_artifact(run_id, str(path))
