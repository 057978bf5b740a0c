"""Hydra entry point: compose conf/, turn the config into plain Python once, and call xablate's trainer."""

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported anywhere
# several jobs may share one GPU (joblib workers, small variants): take memory as needed, not all of it
os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
# MLflow 3.17's client telemetry, when its service is out of reach (a cluster without internet), removes an
# environment variable from a background thread while a logging call reads the environment: that call is lost
# (KeyError '_MLFLOW_TELEMETRY_SESSION_ID', seen by `xablate bench store` with 16 writers on a server)
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import hydra  # noqa: E402
import xablate.schema  # noqa: E402,F401  (registers model/_builder with Hydra's ConfigStore before composing)
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from hydra.types import RunMode  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> dict:
    from xablate.backend import start_like_a_job
    from xablate.launch import assign_gpu
    from xablate import stop_request

    stop_request.install()  # SIGINT/SIGTERM end the run KILLED, even where their first KeyboardInterrupt is lost
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    if multirun and "BasicLauncher" not in str(hydra_cfg.launcher.get("_target_", "")):
        stop_request.forget()  # a worker process that outlives its jobs (joblib, Ray): an earlier job's signal
    if multirun:  # before TensorFlow looks for GPUs
        assign_gpu(hydra_cfg.job.num, str(hydra_cfg.launcher.get("_target_", "")))
    # the backend, oneDNN's state (xablate/onednn.py: a native crash on AVX-512 CPUs), TensorFlow started quietly
    start_like_a_job(str(cfg.backend), cfg.train.onednn, str(cfg.train.precision))

    from xablate.training.trainer import RunContext, train
    from xablate.training.validation import ConfigError

    context = RunContext(
        output_dir=Path(hydra_cfg.runtime.output_dir),
        sweep_dir=Path(hydra_cfg.runtime.cwd, hydra_cfg.sweep.dir) if multirun else None,
        overrides=list(hydra_cfg.overrides.task),
        job_num=hydra_cfg.job.num if multirun else None,
    )
    try:
        result = train(OmegaConf.to_container(cfg, resolve=True), context)
    except ConfigError as error:
        if multirun:
            raise  # a sweep's job raises to its launcher
        print(f"xablate: {error}", file=sys.stderr, flush=True)  # a single run's bad setting: one line
        sys.exit(2)
    except OSError as error:  # a full disk, a read-only file: the machine's, not the code's (the run is FAILED)
        if multirun:
            raise
        print(f"xablate: the run stopped: {type(error).__name__}: {error} (recorded in the store as FAILED with "
              f"this reason where the store could still be written)", file=sys.stderr, flush=True)
        sys.exit(1)
    return {"run_id": result.run_id, "status": result.status}  # Hydra's job return: the staged sweeper reads it


if __name__ == "__main__":
    from xablate.command_line import check_command_line
    from xablate.extras import MissingExtra

    try:  # an unknown experiment or option, a value of the wrong type, a missing extra: one line, before Hydra
        check_command_line(sys.argv[1:])
    except (ValueError, MissingExtra) as error:
        print(f"xablate: {error}", file=sys.stderr, flush=True)
        sys.exit(2)
    main()
