"""Committed results are written only on purpose: a project whose results/ was drawn from results/store, a user's
debug sweep into the default store, then `xablate figures --check` and a bare `xablate figures` — the results and
the documents quoting them are unchanged; the user's store is drawn into a scratch folder that is said aloud."""

import hashlib
import os
import subprocess
import sys

import pandas as pd
import pytest

from helpers import ROOT, clean_env
from made_up_store import log_study

pytestmark = pytest.mark.slow  # trains a debug sweep through run.py

XABLATE = os.path.join(os.path.dirname(sys.executable), "xablate")


def tree_digest(*folders) -> dict:
    return {p.relative_to(folder.parent).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for folder in folders for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_bare_figures_after_a_users_sweep_leaves_the_committed_results_unchanged(tmp_path):
    home = tmp_path / "project"  # a checkout: the real conf/ and experiments/, its own results/ and store
    home.mkdir()
    for name in ("conf", "experiments"):
        (home / name).symlink_to(ROOT / name)
    committed = f"sqlite:///{home / 'results' / 'store' / 'mlflow.db'}"
    (home / "results" / "store").mkdir(parents=True)
    log_study(committed, "fig9_residual", {True: [0.80, 0.82, 0.81], False: [0.78, 0.79, 0.77]}, axis="residual")
    (home / "README.md").write_text("# x\n\n<!-- xablate:quote results/verdict.md -->\n<!-- xablate:end -->\n")
    env = clean_env(XABLATE_HOME=str(home))

    def xablate(*arguments):
        return subprocess.run([XABLATE, *arguments], capture_output=True, text=True, timeout=600, cwd=tmp_path,
                              env=env)

    first = xablate("figures", "--uri", committed)  # the results as committed: drawn from results/store
    assert first.returncode == 0, first.stderr[-3000:]
    assert "requoted" in first.stdout and "| fig9_residual |" in (home / "README.md").read_text()
    assert list(pd.read_csv(home / "results" / "fig9_residual" / "table.csv")["seeds"]) == [3, 3]
    before = tree_digest(home / "results")
    before_readme = (home / "README.md").read_text()

    sweep = subprocess.run([sys.executable, str(ROOT / "run.py"), "-m", "experiment=fig9_residual", "debug=default",
                            "seed=0"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    assert (home / "mlflow.db").exists()  # the default store: the user's two debug runs

    check = xablate("figures", "--check")
    assert check.returncode == 0 and "0 stale output(s)" in check.stdout, check.stdout + check.stderr
    assert f"against sqlite:///{home / 'results' / 'store' / 'mlflow.db'}" in check.stdout
    bare = xablate("figures")
    assert bare.returncode == 0, bare.stderr[-3000:]
    assert "up to date" in bare.stdout and "wrote" not in bare.stdout
    assert tree_digest(home / "results") == before and (home / "README.md").read_text() == before_readme

    # the user's store, typed: drawn into a scratch folder, said aloud; the committed results untouched
    default = f"sqlite:///{home / 'mlflow.db'}"
    mine = xablate("figures", "--uri", default)
    scratch = home / "outputs" / "figures" / "mlflow.db"
    assert mine.returncode == 0, mine.stderr[-3000:]
    assert f"drawing {default} into {scratch} instead" in mine.stdout
    assert list(pd.read_csv(scratch / "fig9_residual" / "table.csv")["seeds"]) == [1, 1]  # the debug sweep's
    assert tree_digest(home / "results") == before and (home / "README.md").read_text() == before_readme
    # the same through the environment, and an explicit --out that holds other results: refused
    mine_env = subprocess.run([XABLATE, "figures", "--check"], capture_output=True, text=True, timeout=600,
                              cwd=tmp_path, env={**env, "MLFLOW_TRACKING_URI": default})
    assert mine_env.returncode == 0 and f"in {scratch} against {default}" in mine_env.stdout, mine_env.stdout
    refused = xablate("figures", "--uri", default, "--out", str(home / "results"))
    assert refused.returncode == 2 and "holds results drawn from" in refused.stderr and "--replace" in refused.stderr
    assert tree_digest(home / "results") == before

    # on purpose: --replace draws the user's store over them
    replaced = xablate("figures", "--uri", default, "--out", str(home / "results"), "--replace", "--redraw")
    assert replaced.returncode == 0, replaced.stderr[-3000:]
    assert list(pd.read_csv(home / "results" / "fig9_residual" / "table.csv")["seeds"]) == [1, 1]
