"""A bad setting fails before data loads or any MLflow run starts, naming the setting, value and allowed."""

import time
from pathlib import Path

import pytest
from hydra.errors import HydraException
from mlflow import MlflowClient

from helpers import run_py, sqlite_uri
from xablate.config import compose_job
from xablate.training.trainer import RunContext, train

CASES = [
    ("intermediate_act=swishy", "Received intermediate_act='swishy'; allowed: none"),
    ("segments=0", 'Received segments=0; allowed: an integer >= 1 or "depthwise"'),
    ("segments=2.5", "Received segments=2.5 (float)"),
    ("segments=-4", "Received segments=-4; allowed"),
    ("+model.preset_size=3", "Received an unknown key model.preset_size=3; did you mean model.preset?"),
    ("model.preset=huge", "Received model.preset='huge'; allowed: xception, mini, debug"),
    ("data.source=mnist", "Received data.source='mnist'; allowed: digits, cifar10, cifar100, fashion_mnist, folder, tfds"),
    ("optim.optimizer=lamb", "Received optim.optimizer='lamb'; allowed: sgd, adam, rmsprop"),
    ("optim.learning_rate=0", "Received optim.learning_rate=0; allowed: a number > 0"),
    ("optim.learning_rate=fast", "Received optim.learning_rate='fast'; allowed: a number > 0"),
    ("train.epochs=0", "Received train.epochs=0; allowed: an integer >= 1"),
    ("train.batch_size=-8", "Received train.batch_size=-8; allowed: an integer >= 1"),
    ("data=folder data.path=/no/such/folder", "Received data.path='/no/such/folder'; allowed: a folder holding"),
    ("model=xception", "Received input_shape=(16, 16, 3); stem='imagenet' needs height and width >= 71"),
    ("seed=-1", "Received seed=-1; allowed: an integer from 0 to 4294967295"),
    ("optim.dropout=1.5", "Received optim.dropout=1.5; allowed: 0 <= optim.dropout < 1."),
    ("optim=paper_imagenet optim.schedule.every_epochs=null",
     "allowed: an exponential schedule needs every_epochs > 0 or every_samples > 0"),
    ("optim=seed optim.schedule.at_fractions=[0.7,0.3]", "Received optim.schedule.at_fractions=[0.7, 0.3]"),
    ("data.validation_fraction=0", "Received data.validation_fraction=0; allowed: 0.0 < data.validation_fraction"),
    ("data.test_fraction=1.5", "Received data.test_fraction=1.5; allowed: 0.0 < data.test_fraction"),
    ("data.test_fraction=0.85 data.validation_fraction=0.5", "allowed: fractions that leave at least 10 % of the images for training"),
    ("data.split_seed=-3", "Received data.split_seed=-3; allowed: an integer from 0 to 4294967295"),
    ("data.limit_test=0", "Received data.limit_test=0; allowed: an integer >= 1"),
    ("train.precise_bn_batches=-1", "Received train.precise_bn_batches=-1; allowed: an integer >= 0"),
    ("tracking.stage=warmup", "Received tracking.stage='warmup'; allowed: pilot, tune, final"),
    ("analysis={metric:f1}", "Received analysis.metric='f1' in study 'default'; allowed: test_accuracy"),
    ("train.verbose=loud", "Received train.verbose='loud'; allowed: auto, 0, 1, 2"),
    ("+model.segments=4", "Received model.segments=4; allowed: not set here — segments comes from the top-level key"),
    ("model.bn_momentum=fast", "Received a model setting of the wrong type"),
    ("segments=many", "Received segments='many'; allowed: an integer >= 1 or \"depthwise\""),
    ("segments=4096", "Received segments=4096; allowed: 1 to 96 (the widest separable layer's input channels"),
    ("segments=3 model.segment_rounding=exact", "Received segments=3, which does not divide the 8 input channels of layer block2_sepconv1"),
    ("train.diverge_factor=0.5", "Received train.diverge_factor=0.5; allowed: a number > 1, or null"),
    ("model.weights=/nowhere/xception.h5", "Received model.weights='/nowhere/xception.h5'; the file does not exist"),
    ("model.weights=notes.txt", "Received model.weights='notes.txt'; allowed: null, imagenet, or a Keras weights file"),
    ("model.head=max", "Received head='max'; allowed: avg, flatten"),
    ("train.freeze_base_epochs=2", "Received train.freeze_base_epochs=2; allowed: an integer from 0 (no frozen "
                                   "warm-up) to train.epochs - 1 = 1"),
    ("train.run_eagerly=true train.jit_compile=true", "Received train.run_eagerly=true with train.jit_compile=true"),
    ("model.match=bytes", "Received model.match='bytes'; allowed: null, params, flops"),
    ("model.match_residual=maybe", "Received model.match_residual='maybe'; allowed: null, true or false"),
    ("data.augment.brightness_mode=sideways", "Received data.augment.brightness_mode='sideways'; allowed: additive, "
                                              "multiplicative"),
    ("data.augment.shear_degrees=90", "Received data.augment.shear_degrees=90"),
    ("tracking.heartbeat_seconds=0", "Received tracking.heartbeat_seconds=0; allowed: 0 < tracking.heartbeat_seconds"),
    ("train.checkpoint_dir=/etc/hostname/checkpoints",
     "Received train.checkpoint_dir='/etc/hostname/checkpoints'; allowed: null (beside the store), or a folder"),
    ("tracking.uri=ftp://example.org/store", "Received tracking.uri='ftp://example.org/store'; allowed: http(s)://"),
    ("train.onednn=fast", "Received train.onednn='fast'; allowed: auto, on, avx2, off"),
    ("+train.epoch=3", "Received an unknown key train.epoch=3; did you mean train.epochs?"),
    ("+tracking.stage_name=pilot", "Received an unknown key tracking.stage_name='pilot'; did you mean tracking.stage?"),
    # values that cannot be right, whatever key holds them
    ("optim.learning_rate=nan", "Received optim.learning_rate=nan; allowed: a finite number"),
    ("optim.learning_rate=inf", "Received optim.learning_rate=inf; allowed: a finite number"),
    ("train.diverge_factor=nan", "Received train.diverge_factor=nan; allowed: a finite number"),
    ("data.augment.zoom=nan", "Received data.augment.zoom=nan; allowed: a finite number"),
    ("data.augment.brightness=[0.7,inf]", "Received data.augment.brightness=[0.7, inf]; allowed: a finite number"),
    ("data.augment.zoom=1.5", "Received data.augment.zoom=1.5; allowed: 0.0 <= data.augment.zoom < 1.0"),
    ("data.augment.rotation_degrees=-5", "Received data.augment.rotation_degrees=-5; allowed: 0.0 <="),
    ("data.augment.brightness=[1.3,0.7]", "Received data.augment.brightness=[1.3, 0.7]; allowed: [low, high]"),
    # names that would leave the store's folders
    ("study=../../trav", "Received study='../../trav'; allowed: a name of letters, digits, _, . and -"),
    ("study=a/b", "Received study='a/b'; allowed: a name of letters"),
    ("study='a|b'", "Received study='a|b'; allowed: a name of letters"),
]

# refused by the typed schema while Hydra composes (xablate.schema.job_node): (override, key, value, type)
TYPE_CASES = [
    ("residual=maybe", "residual", "maybe", "bool"),
    ("force=maybe", "force", "maybe", "bool"),
    ("train.checkpoint=sometimes", "train.checkpoint", "sometimes", "bool"),
    ("tracking.system_metrics=often", "tracking.system_metrics", "often", "bool"),
    ("train.reuse_compiled=maybe", "train.reuse_compiled", "maybe", "bool"),
    ("train.epochs=three", "train.epochs", "three", "Integer"),
    ("data.limit_train=1.5", "data.limit_train", "1.5", "Integer"),
    ("seed=first", "seed", "first", "Integer"),
    ("data.augment.brightness=[dim,bright]", "data.augment.brightness[0]", "dim", "Float"),
]

# a folder source: (how the folder is broken, the message)
FOLDER_CASES = [
    ("empty", "test/<class>/ folders hold images"),
    ("text file", "allowed: only images (.jpg, .jpeg, .png, .bmp, .gif) under train/<class>/, found "),
    ("corrupt image", "allowed: readable images, but "),
    ("one class", "allowed: at least two classes under train/ (it holds images of 1: a)"),
    ("test class not in train", "allowed: the same classes in train/ and test/ (only in train/: none; only in "
                                "test/: c)"),
]


def broken_folder(root, how):
    from PIL import Image

    for split in ("train", "test"):
        for label in ("a", "b"):
            folder = root / split / label
            folder.mkdir(parents=True)
            if not (how == "empty" and split == "test"):
                Image.new("RGB", (8, 8), (10, 20, 30)).save(folder / "ok.png")
    if how == "one class":
        for split in ("train", "test"):
            (root / split / "b" / "ok.png").unlink()
        return root
    if how == "test class not in train":
        (root / "test" / "c").mkdir()
        Image.new("RGB", (8, 8), (10, 20, 30)).save(root / "test" / "c" / "ok.png")
        return root
    if how == "text file":
        (root / "train" / "b" / "notes.txt").write_text("not an image")
        return root / "train" / "b" / "notes.txt"
    if how == "corrupt image":
        (root / "train" / "a" / "broken.jpg").write_bytes(b"\xff\xd8 truncated, not a JPEG")
        return root / "train" / "a" / "broken.jpg"
    return root / "test"


def no_runs(uri) -> bool:
    """No run in the store; a store never created holds none (opening one would create it, ~2 s)."""
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).exists():
        return True
    client = MlflowClient(uri)
    return all(not client.search_runs([e.experiment_id]) for e in client.search_experiments())


@pytest.mark.parametrize("override, message", CASES)
def test_bad_setting_fails_before_any_run(tmp_path, override, message):
    uri = sqlite_uri(tmp_path)
    cfg = compose_job(["debug=default", f"tracking.uri={uri}", *override.split()])
    with pytest.raises(ValueError) as error:
        train(cfg, RunContext(output_dir=tmp_path / "out"))
    assert message in str(error.value)
    assert no_runs(uri)


@pytest.mark.parametrize("override, key, value, kind", TYPE_CASES)
def test_a_value_of_the_wrong_type_is_refused_while_composing(override, key, value, kind):
    with pytest.raises(HydraException) as error:
        compose_job(["debug=default", override])
    message = str(error.value) + str(error.value.__cause__)
    assert f"Error merging override {override}" in message
    assert f"full_key: {key}" in message
    assert value in message and kind in message


def train_composed(tmp_path, overrides):
    cfg = compose_job(["debug=default", *overrides])
    return train(cfg, RunContext(output_dir=tmp_path / "out"))


@pytest.mark.parametrize("how, message", FOLDER_CASES)
def test_a_broken_image_folder_is_named_before_any_run(tmp_path, how, message):
    uri = sqlite_uri(tmp_path)
    culprit = broken_folder(tmp_path / "images", how)
    with pytest.raises(ValueError) as error:
        train_composed(tmp_path, [f"tracking.uri={uri}", "data=folder", f"data.path={tmp_path / 'images'}"])
    assert message in str(error.value)
    assert str(culprit) in str(error.value)
    assert not (tmp_path / "mlflow.db").exists() or no_runs(uri)


def test_an_unreachable_tracking_server_fails_fast(tmp_path):
    start = time.perf_counter()
    with pytest.raises(ValueError) as error:
        train_composed(tmp_path, ["tracking.uri=http://127.0.0.1:9"])
    assert "Received tracking.uri='http://127.0.0.1:9'; allowed: a reachable MLflow server" in str(error.value)
    assert time.perf_counter() - start < 15  # not MLflow's minutes of HTTP retries


@pytest.mark.parametrize("group, name", [("model", "huge"), ("experiment", "fig11_nothing"), ("optim", "lion"),
                                         ("data", "imagenet22k"), ("design", "gpu_huge")])
def test_unknown_group_option_is_refused_by_hydra(group, name):
    with pytest.raises(HydraException, match=f"Could not find '{group}/{name}'"):
        compose_job([f"{group}={name}"])


@pytest.mark.slow
@pytest.mark.parametrize("override, message", [CASES[1], CASES[10]])
def test_the_command_exits_non_zero_with_the_message(tmp_path, override, message):
    uri = sqlite_uri(tmp_path)
    proc = run_py("debug=default", f"tracking.uri={uri}", override, cwd=tmp_path, timeout=300)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert no_runs(uri)


# a command line that cannot compose, or a sweep value its job would refuse: one line before anything starts
COMMAND_LINES = [
    (["experiment=fig99"], "Received experiment=fig99; allowed: a study of experiments/: fashion_fig10, "),
    (["-m", "model=mini,huge"], "Received model=huge; allowed: an option of conf/model/: debug, mini, xception."),
    (["train.epochs=three"], "Received train.epochs=three; allowed: a value of train.epochs's type (Value 'three' "
                             "of type 'str' could not be converted to Integer)."),
    (["-m", "seed=0,1", "train.epochs=x,2"], "Received train.epochs=x; allowed: a value of train.epochs's type"),
    (["a=[1"], "Received 'a=[1', which is not an override; no viable alternative at input '[1'"),
]


@pytest.mark.parametrize("argv, message", COMMAND_LINES)
def test_a_command_line_that_cannot_compose_is_one_line(argv, message):
    from xablate.command_line import check_command_line

    with pytest.raises(ValueError) as error:
        check_command_line(argv)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_good_command_line_and_hydras_own_flags_pass_the_check():
    from xablate.command_line import check_command_line, overrides_of

    check_command_line(["-m", "intermediate_act=relu,elu,none", "experiment=fig10_intermediate_act"])
    check_command_line(["--cfg", "job", "debug=default"])
    assert overrides_of(["--cfg", "job", "-m", "a=1", "--info", "b=2"]) == ["a=1", "b=2"]
    assert overrides_of(["--config-dir", "/x", "a=1"]) is None  # another config place: Hydra's own check


def test_every_value_of_a_sweep_is_validated_once_before_its_jobs(tmp_path):
    from xablate.command_line import check_sweep_values, value_jobs

    jobs = [[f"act={a}", f"seed={s}"] for a in ("none", "elu", "relu") for s in range(10)]
    assert len(value_jobs(jobs)) == 12 and value_jobs(jobs)[-1] == ["act=relu", "seed=0"]
    uri = sqlite_uri(tmp_path)
    with pytest.raises(ValueError) as error:
        check_sweep_values({"intermediate_act": "relu,gleu"}, ["debug=default", f"tracking.uri={uri}"])
    assert str(error.value).startswith("Received intermediate_act='gleu'; allowed: none, celu")
    assert str(error.value).endswith("(the sweep's job intermediate_act=gleu)")
    with pytest.raises(ValueError, match=r"Received optim.learning_rate=nan; allowed: a finite number"):
        check_sweep_values({}, ["debug=default", "optim.learning_rate=0.001,nan", f"tracking.uri={uri}"])
    check_sweep_values({}, ["debug=default", "intermediate_act=relu,elu", f"tracking.uri={uri}"])
    assert no_runs(uri)


def test_a_study_block_is_parsed_once_per_sweep_and_by_no_job(tmp_path, monkeypatch):
    """The study's blocks are the sweep's to parse (once per distinct block, before its parent run): a job's own
    validation reads its sections only, and a sweep over three values parses the study once, not three times."""
    import xablate.studies as studies
    from xablate.command_line import check_sweep_values
    from xablate.gate import parse_job

    parsed = []
    real = studies.parse_study
    monkeypatch.setattr(studies, "parse_study", lambda *a, **k: parsed.append(a[0]) or real(*a, **k))
    parse_job(compose_job(["debug=default", "analysis={metric:f1}"]))  # not the job's to refuse
    assert parsed == []
    uri = sqlite_uri(tmp_path)
    check_sweep_values({}, ["debug=default", "experiment=fig10_intermediate_act", "intermediate_act=none,elu,relu",
                            f"tracking.uri={uri}"])
    assert parsed == ["fig10_intermediate_act"]
    parsed.clear()
    check_sweep_values({}, ["debug=default", "experiment=fig10_intermediate_act", "intermediate_act=none,elu,relu",
                            f"tracking.uri={uri}"], parsed=("fig10_intermediate_act", compose_job(
                                ["experiment=fig10_intermediate_act"])["analysis"]))
    assert parsed == []  # the caller (the sweep's callback) parsed that block already
    with pytest.raises(ValueError, match=r"Received analysis.metric='f1' in study 'default'"):
        check_sweep_values({}, ["debug=default", "analysis={metric:f1}", "seed=0,1", f"tracking.uri={uri}"])
    assert no_runs(uri)


@pytest.mark.slow
def test_a_sweep_with_a_bad_value_trains_nothing_and_creates_no_parent(tmp_path):
    uri = sqlite_uri(tmp_path)
    proc = run_py("-m", "intermediate_act=relu,gleu", "debug=default", f"tracking.uri={uri}", cwd=tmp_path,
                  timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "xablate: Received intermediate_act='gleu'" in proc.stderr and "Traceback" not in proc.stderr
    assert no_runs(uri)
