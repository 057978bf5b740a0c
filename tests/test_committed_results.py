"""The committed CPU reproduction: results/ is what `xablate figures` draws from results/store (nothing stale), and
`xablate status` sees every cell of its studies as done (the store carries identities of today's configs)."""

import os
import subprocess
import sys

import pytest

from helpers import ROOT

XABLATE = os.path.join(os.path.dirname(sys.executable), "xablate")
STORE = f"sqlite:///{ROOT / 'results' / 'store' / 'mlflow.db'}"


def test_committed_figures_and_tables_are_not_stale():
    check = subprocess.run([XABLATE, "figures", "--check", "--out", str(ROOT / "results")], capture_output=True,
                           text=True, timeout=600, cwd=ROOT)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "0 stale output(s)" in check.stdout
    for study in ("fig9_residual", "fig10_intermediate_act"):
        for name in (f"{study}.png", "capacity.png", "table.csv", "table.md", "table.json"):
            assert (ROOT / "results" / study / name).exists(), name


@pytest.mark.parametrize("study", ["fig9_residual", "fig10_intermediate_act"])
def test_status_sees_the_committed_reproduction_as_done(study):
    status = subprocess.run([XABLATE, "status", "--study", study, "design=cpu_repro", "train.save_model=false",
                             f"tracking.uri={STORE}"], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert status.returncode == 0, status.stdout + status.stderr
    assert "missing: 0" in status.stdout and "nothing left to run" in status.stdout
