"""`xablate status` composes a study once per set of group overrides and sets the values on it as Hydra does: what
it reads must be what Hydra composes for the same command line."""

import os

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from helpers import ROOT
from xablate.analysis import status

STUDY = ["experiment=fashion_fig10", "train.save_model=false", "optim.learning_rate=0.01", "seed=range(3)"]


def hydra_composes(overrides: list[str], hydra: bool = True) -> dict:
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=overrides, return_hydra_config=hydra)
        return OmegaConf.to_container(cfg, resolve=False)


def test_the_shared_composition_with_values_set_is_hydras():
    base, cfg = status._composed(STUDY)
    assert base == STUDY[:3]  # the sweep (seed=range) is the grid's, not the composition's
    ours, hydras = OmegaConf.to_container(cfg, resolve=False), hydra_composes(base)
    assert ours["hydra"]["sweeper"] == hydras["hydra"]["sweeper"]
    assert {k: v for k, v in ours.items() if k != "hydra"} == {k: v for k, v in hydras.items() if k != "hydra"}
    assert (ours["train"]["save_model"], ours["optim"]["learning_rate"]) == (False, 0.01)


def test_a_value_set_for_one_command_does_not_leak_into_the_next():
    status._composed(STUDY)
    _, cfg = status._composed(STUDY[:1])
    assert (cfg.train.save_model, cfg.optim.learning_rate) == tuple(
        hydra_composes(STUDY[:1])[section][key] for section, key in (("train", "save_model"),
                                                                     ("optim", "learning_rate")))


def test_an_edited_config_file_is_composed_anew():
    status._composed(STUDY[:1])
    first = next(iter(status._WITH_HYDRA.values()))
    status._composed(STUDY[:1])
    assert next(iter(status._WITH_HYDRA.values())) is first  # the same files: reused
    study_file = ROOT / "conf" / "experiment" / "fashion_fig10.yaml"
    stamp = study_file.stat()
    try:
        os.utime(study_file, ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 1_000_000))
        status._composed(STUDY[:1])
        assert next(iter(status._WITH_HYDRA.values())) is not first
    finally:
        os.utime(study_file, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))


def test_a_cell_is_what_hydra_composes_for_it():
    cell = ["experiment=fashion_fig10", "train.save_model=false", "intermediate_act=elu", "seed=4"]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cache: dict = {}
        ours = status.composed_cell(cache, cell)
        again = status.composed_cell(cache, [*cell[:2], "intermediate_act=relu", "seed=1"])
        assert len(cache) == 1  # one composition for both cells
    assert ours == OmegaConf.to_container(OmegaConf.create(hydra_composes(cell, hydra=False)), resolve=True)
    assert (ours["intermediate_act"], ours["seed"], again["intermediate_act"], again["seed"]) == ("elu", 4, "relu", 1)
