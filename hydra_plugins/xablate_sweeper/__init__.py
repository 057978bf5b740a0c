"""Hydra's sweeper `staged` (hydra/sweeper=staged): Hydra's basic sweeper with xablate's pilot and tuning stages
before the study's own jobs (xablate/staging.py). Hydra finds plugins in the hydra_plugins namespace only."""

from hydra_plugins.xablate_sweeper.staged_sweeper import StagedSweeper, StagedSweeperConf  # noqa: F401
