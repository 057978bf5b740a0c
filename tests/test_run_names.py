"""A single run is named by the settings its command line changed, not `baseline`."""

from xablate.config import compose_job
from xablate.gate import parse_job
from xablate.training.job import Job
from xablate.training.trainer import RunContext


def prepared(tmp_path, overrides):
    cfg = compose_job(["debug=default", *overrides])
    context = RunContext(output_dir=tmp_path / "out", overrides=list(overrides))
    return Job.prepare(parse_job(cfg), context, backend="tensorflow")


def test_a_single_run_is_named_by_what_its_command_line_changed(tmp_path):
    uri = f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}"
    job = prepared(tmp_path, ["intermediate_act=gelu", "seed=3", uri, "train.verbose=0"])
    assert job.label == "intermediate_act=gelu" and job.name == "act=gelu · seed 3"
    assert job.axes == {"intermediate_act": "gelu"}
    assert prepared(tmp_path, [uri]).label == "baseline"  # the default config itself
    assert prepared(tmp_path, ["model=debug", "optim.learning_rate=0.01", uri]).label == "optim.learning_rate=0.01"
