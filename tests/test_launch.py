"""One GPU per parallel job: job n gets GPU n mod count under joblib, before any framework starts."""

import json
import os
import subprocess
import sys

from helpers import ROOT

PROBE = """
import json, os, sys
sys.path.insert(0, sys.argv[1])
from xablate.launch import assign_gpu
results = []
for job, launcher in [(0, "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"),
                      (3, "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"),
                      (3, "hydra._internal.core_plugins.basic_launcher.BasicLauncher")]:
    os.environ["CUDA_VISIBLE_DEVICES"] = sys.argv[2]
    results.append([assign_gpu(job, launcher), os.environ["CUDA_VISIBLE_DEVICES"]])
print(json.dumps(results))
"""


def probe(visible: str):
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    out = subprocess.run([sys.executable, "-c", PROBE, str(ROOT), visible], capture_output=True, text=True,
                         timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_joblib_jobs_are_spread_over_the_visible_gpus():
    assert probe("4,5,6") == [["4", "4"], ["4", "4"], [None, "4,5,6"]]  # job 3 -> 3 mod 3 = 0 -> GPU 4


def test_one_or_no_gpu_is_left_alone():
    assert probe("7") == [[None, "7"], [None, "7"], [None, "7"]]
    assert probe("") == [[None, ""], [None, ""], [None, ""]]
