"""The config is read as a whole in five places only; everything below the gate reads typed sections.

A job's composed config enters through run.py, passes one gate (xablate.schema.parse_job) and reaches the
identity and the recorded params as a whole; every other function takes the section it uses. A new function
that takes the whole config (`cfg`) fails here, as does a default restated in code (`.get("key", default)` on a
config section) where the schema already holds it.
"""

import ast
import re
from pathlib import Path

from helpers import ROOT

WHOLE_CONFIG = {  # where the whole config is read, and why there
    ("run.py", "main"),  # Hydra's entry: the composed config, once turned into plain Python
    ("xablate/training/trainer.py", "train"),  # the trainer's entry: tests, benchmarks and notebooks call it
    ("xablate/gate.py", "parse_job"),  # the gate: every key known, every section valid, the canonical form
    ("xablate/tracking/identity.py", "run_identity"),  # everything that can change a result, hashed
    ("xablate/tracking/identity.py", "recorded_config"),  # everything the run records (config.yaml, params)
}
SOURCES = [ROOT / "run.py", *(ROOT / "xablate").rglob("*.py"), *(ROOT / "hydra_plugins").rglob("*.py")]


def whole_config_functions(paths, root: Path = ROOT) -> set[tuple[str, str]]:
    """(file, function) for every function with a parameter named cfg (the whole composed config)."""
    found = set()
    for path in paths:
        for node in ast.walk(ast.parse(Path(path).read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names = [a.arg for a in (*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs)]
                if "cfg" in names:
                    found.add((Path(path).relative_to(root).as_posix(), node.name))
    return found


def test_the_whole_config_is_taken_by_five_functions_only():
    assert whole_config_functions(SOURCES) == WHOLE_CONFIG


def test_the_finder_sees_a_method_or_keyword_that_takes_the_whole_config(tmp_path):
    (tmp_path / "made_up.py").write_text("class A:\n    def of(cls, cfg):\n        return cfg['train']\n"
                                         "def sections(train, data):\n    return train\n"
                                         "def later(*, cfg=None):\n    return cfg\n")
    assert whole_config_functions([tmp_path / "made_up.py"], tmp_path) == {("made_up.py", "of"),
                                                                            ("made_up.py", "later")}


def test_no_default_is_restated_where_the_schema_holds_it():
    """`.get("key", default)` on a config section in training/, data/, models/, tracking/: the schema's typed
    sections carry every default (what remains are reads of Keras' model config, HDF5 attributes and metrics)."""
    allowed = {"xablate/models/pretrained.py": 3, "xablate/tracking/hydra_callback.py": 2}
    counts: dict[str, int] = {}
    for folder in ("training", "data", "models", "tracking"):
        for path in (ROOT / "xablate" / folder).rglob("*.py"):
            hits = len(re.findall(r'\.get\("[a-z_]+", ', path.read_text()))
            if hits:
                counts[path.relative_to(ROOT).as_posix()] = hits
    assert counts == allowed
