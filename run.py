"""Hydra entry point: compose conf/ and hand the plain config to xablate's job. Nothing else lives here."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported anywhere

import hydra  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    from xablate.job import run_job

    run_job(OmegaConf.to_container(cfg, resolve=True))


if __name__ == "__main__":
    main()
