"""The front page stays a front page, and every relative link in README.md and docs/ leads to a file."""

import re

import pytest

from helpers import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)#\s]+)(#[^)]*)?\)")


def test_the_readme_is_a_front_page_with_the_two_quickstart_commands():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    quickstart = text.split("## Quickstart", 1)[1].split("```bash", 1)[1].split("```", 1)[0].strip().splitlines()
    assert quickstart == ["python3.11 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/python run.py",
                          '.venv/bin/pip install -e ".[dev]" && .venv/bin/python -m pytest -q']
    ci = (ROOT / ".ci" / "run").read_text()
    assert quickstart[1] in ci and ".venv/bin/pip install -e .   #" in ci  # CI runs what a newcomer types


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves_and_no_line_is_dated(page):
    text = page.read_text()
    for target, _ in LINK.findall(text):
        if "://" not in target:
            assert (page.parent / target).exists(), f"{page.name}: broken link {target}"
    from xablate.analysis.quotes import QUOTE

    # the author's lines carry no dates (timings belong beside their CSVs); a quoted generated file may (when a
    # claim was registered is provenance, written by the code that checks it)
    prose = QUOTE.sub("", text)
    assert not re.search(r"\b20\d\d-\d\d-\d\d\b", prose), f"{page.name}: a dated line (timings belong beside their CSVs)"


def test_documents_quote_the_generated_results_as_they_are(tmp_path):
    from xablate.analysis.quotes import requote, stale_quotes

    for document in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        assert stale_quotes(document, ROOT) == [], f"{document.name}: run xablate figures --out results"
    assert "<!-- xablate:quote results/verdict.md -->" in (ROOT / "docs" / "results.md").read_text()
    assert "<!-- xablate:quote results/headline.md -->" in (ROOT / "README.md").read_text()  # the headline
    # the mechanism: a block is replaced by the file it names, text around it kept
    (tmp_path / "out.md").write_text("| a |\n")
    doc = tmp_path / "doc.md"
    doc.write_text("reading\n<!-- xablate:quote out.md -->\nold copy\n<!-- xablate:end -->\nmore\n")
    assert stale_quotes(doc, tmp_path) == ["out.md"]
    assert requote(doc, tmp_path) and doc.read_text() == (
        "reading\n<!-- xablate:quote out.md -->\n| a |\n<!-- xablate:end -->\nmore\n")
    assert stale_quotes(doc, tmp_path) == [] and not requote(doc, tmp_path)
