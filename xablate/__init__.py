"""xablate: ablation harness for the Xception family (Keras 3 + Hydra + MLflow)."""

__version__ = "0.1.0"
