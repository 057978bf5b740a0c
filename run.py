"""Hydra entry point: compose conf/, turn the config into plain Python once, and call xablate's trainer."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported anywhere

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from hydra.types import RunMode  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    from xablate.training.trainer import RunContext, train

    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    context = RunContext(
        output_dir=hydra_cfg.runtime.output_dir,
        sweep_dir=hydra_cfg.sweep.dir if multirun else None,
        overrides=list(hydra_cfg.overrides.task),
        job_num=hydra_cfg.job.num if multirun else None,
    )
    train(OmegaConf.to_container(cfg, resolve=True), context)


if __name__ == "__main__":
    main()
