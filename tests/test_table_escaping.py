"""Names reach tables as text, never as markup: a variant whose value holds Markdown's or LaTeX's active characters
keeps the table's shape, and every table.tex (a made-up one and the committed ones) compiles with a TeX engine."""

import shutil
import subprocess

import pytest

from helpers import ROOT
from made_up_store import log_study
from xablate.analysis.report import selected_runs
from xablate.analysis.tables import markdown_cell, to_latex, to_markdown, variant_table

HOSTILE = "a|b`*<x>_100%$#&~^\\input{/etc/passwd}"
DOCUMENT = "\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n%s\n\\end{document}\n"


def hostile_table(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    log_study(uri, "esc", {"none": [0.80, 0.81, 0.82], HOSTILE: [0.70, 0.72, 0.71]})
    return variant_table(selected_runs(uri, "esc"))


def compiles(tex: str, folder) -> subprocess.CompletedProcess:
    assert shutil.which("pdflatex"), "pdflatex is missing: apt-get install texlive-latex-base texlive-latex-recommended"
    (folder / "table.tex").write_text(DOCUMENT % tex)
    return subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape", "table.tex"],
                          cwd=folder, capture_output=True, text=True, timeout=120)


def test_markdown_cells_are_escaped_so_a_row_keeps_its_columns(tmp_path):
    table = hostile_table(tmp_path)
    rows = [line for line in to_markdown(table).splitlines() if line.startswith("| intermediate_act=")]
    header = to_markdown(table).splitlines()[0]
    cells = lambda line: len(line.replace("\\|", "").split("|"))  # noqa: E731  (unescaped separators)
    assert len(rows) == 2 and all(cells(r) == cells(header) for r in rows)
    assert markdown_cell(HOSTILE) == "a\\|b\\`\\*\\<x\\>_100%$#&~^\\\\input{/etc/passwd}"
    assert markdown_cell("[x](javascript:y)") == "[x]\\(javascript:y)"  # not a link


def test_latex_cells_are_escaped_and_the_table_compiles(tmp_path):
    tex = to_latex(hostile_table(tmp_path))
    assert "\\input{" not in tex and "a|b" in tex and "\\_100\\%\\$\\#\\&" in tex
    assert "$\\Delta$ vs intermediate\\_act=none" in tex and tex.isascii()
    result = compiles(tex, tmp_path)
    assert result.returncode == 0, result.stdout[-3000:]
    assert (tmp_path / "table.pdf").stat().st_size > 1000


@pytest.mark.parametrize("study", sorted(p.parent.name for p in (ROOT / "results").glob("*/table.tex")))
def test_every_committed_table_compiles(study, tmp_path):
    tex = (ROOT / "results" / study / "table.tex").read_text()
    result = compiles(tex, tmp_path)
    assert result.returncode == 0, result.stdout[-3000:]


def test_figures_never_write_outside_out_for_a_study_name_that_would_leave_it(tmp_path, capsys):
    """An experiment made outside xablate (or before study names were checked) named `../trav` or `a/b`."""
    from xablate.cli import main as xablate_main

    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    (tmp_path / "store").mkdir()
    for name in ("../trav", "a/b", "fine"):
        log_study(uri, name, {"none": [0.80, 0.81], "relu": [0.70, 0.72]})
    out = tmp_path / "deep" / "out"
    assert xablate_main(["figures", "--uri", uri, "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "not drawn, their names would leave" in err and "'../trav'" in err and "'a/b'" in err
    assert (out / "fine" / "table.csv").exists() and not (tmp_path / "deep" / "trav").exists()
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["fine"]
    assert xablate_main(["figures", "--uri", uri, "--out", str(out), "--study", "../trav"]) == 2
    assert "Received --study='../trav'" in capsys.readouterr().err
