"""The composed config: every group and experiment composes; the contract keys are at the top level."""

import pytest
from omegaconf import OmegaConf

from helpers import run_py
from xablate.config import compose_job
from xablate.schema import Optim, typed
from xablate.training.recipes import build_optimizer, current_learning_rate, learning_rate
from xablate.gate import parse_job

GROUPS = {"model": ["mini", "xception", "debug"], "data": ["digits", "cifar10", "cifar100", "folder", "tfds"],
          "optim": ["adam", "seed", "paper_imagenet", "paper_jft"],
          "experiment": ["fig9_residual", "fig10_intermediate_act", "spectrum"]}


def composed(*overrides):
    return compose_job(overrides)


def test_default_config_holds_the_contract():
    cfg = composed()
    assert {k: cfg[k] for k in ("residual", "intermediate_act", "segments", "seed")} == {
        "residual": True, "intermediate_act": "none", "segments": "depthwise", "seed": 0}
    set_model = {k: v for k, v in cfg["model"].items() if v != "preset"}  # builder arguments left at the preset's
    assert set_model == {"preset": "mini", "weights": None, "head": "avg", "match": None, "match_residual": None}
    assert cfg["data"]["source"] == "digits"
    assert cfg["tracking"] == {"uri": None, "experiment": "default", "heartbeat_seconds": 60,
                               "stale_after_seconds": 600, "system_metrics": True,
                               "system_metrics_seconds": 10, "stage": "final", "tuned_key": None,
                               "trial": None, "database": None}
    assert (cfg["backend"], cfg["force"]) == ("tensorflow", False)
    assert {k: cfg["train"][k] for k in ("diverge_factor", "checkpoint", "oom_retry", "precision", "jit_compile",
                                         "data_parallel")} == {
        "diverge_factor": 10.0, "checkpoint": True, "oom_retry": True, "precision": "fp32", "jit_compile": "auto",
        "data_parallel": False}
    parse_job(cfg)


@pytest.mark.parametrize("group, option", [(g, o) for g, options in GROUPS.items() for o in options])
def test_every_group_option_composes_and_validates(group, option, tmp_path):
    size = ["data.image_size=71"] if option == "xception" else []  # the stock stem needs >= 71x71
    cfg = composed(f"{group}={option}", "debug=default", f"++data.path={tmp_path}", *size)
    if cfg["data"]["source"] == "folder":
        from PIL import Image

        for split in ("train", "test"):
            for label in ("cat", "dog"):  # at least two classes, the same in both splits
                (tmp_path / split / label).mkdir(parents=True)
                Image.new("RGB", (4, 4)).save(tmp_path / split / label / "0.png")
    parse_job(cfg)
    assert cfg["train"]["epochs"] == 2
    assert cfg["model"]["preset"] == (option if group == "model" else "debug")  # the command line wins
    if group == "experiment":
        assert cfg["study"] == option


@pytest.mark.slow
def test_cfg_job_prints_the_composed_config(tmp_path):
    proc = run_py("--cfg", "job", "optim=paper_imagenet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    printed = OmegaConf.create(proc.stdout)
    assert printed.optim.learning_rate == 0.045 and printed.intermediate_act == "none"


def test_paper_imagenet_recipe_schedule_and_ema():
    optim = typed(Optim, composed("optim=paper_imagenet")["optim"])
    lr = learning_rate(optim, steps_per_epoch=10, epochs=8, batch_size=32)
    assert [round(float(lr(step)), 6) for step in (0, 19, 20, 40)] == [0.045, 0.045, 0.0423, 0.039762]
    optimizer = build_optimizer(optim, steps_per_epoch=10, epochs=8, batch_size=32)
    assert optimizer.use_ema and optimizer.ema_momentum == 0.9999 and optimizer.momentum == 0.9
    assert current_learning_rate(optimizer) == pytest.approx(0.045)
    assert (optim.weight_decay, optim.dropout) == (1e-5, 0.5)


def test_paper_jft_decays_every_three_million_samples():
    optim = typed(Optim, composed("optim=paper_jft")["optim"])
    lr = learning_rate(optim, steps_per_epoch=10, epochs=8, batch_size=100)
    assert lr.decay_steps == 30_000 and lr.decay_rate == 0.9
    assert type(build_optimizer(optim, steps_per_epoch=10, epochs=8, batch_size=100)).__name__ == "RMSprop"


def test_seed_recipe_steps_down_at_30_and_70_percent():
    optim = typed(Optim, composed("optim=seed")["optim"])
    lr = learning_rate(optim, steps_per_epoch=10, epochs=10, batch_size=32)  # 100 steps
    assert [float(lr(s)) for s in (0, 30, 31, 70, 71)] == pytest.approx([1e-4, 1e-4, 1e-5, 1e-5, 1e-6])
