"""Documents that quote generated outputs instead of copying them by hand.

A Markdown file marks a quote as

    <!-- xablate:quote results/verdict.md -->
    ...(the file's contents, written by `xablate figures`)...
    <!-- xablate:end -->

`requote` replaces every such block with the current contents of the file it names (a path relative to the
project), so the conclusions a reader sees are the generated rows; `stale_quotes` lists blocks that differ
(tests/test_docs.py keeps docs/results.md current). Text outside the blocks is the author's reading, and says so.
"""

from __future__ import annotations

import re
from pathlib import Path

QUOTE = re.compile(r"(<!-- xablate:quote (?P<path>\S+) -->\n)(?P<body>.*?)(<!-- xablate:end -->)", re.S)


def _body(root: Path, relative: str) -> str:
    text = (root / relative).read_text()
    return text if text.endswith("\n") else text + "\n"


def requote(document: Path, root: Path) -> bool:
    """Refreshes the quotes of `document`; True when anything changed."""
    text = document.read_text()
    new = QUOTE.sub(lambda m: m.group(1) + _body(root, m.group("path")) + m.group(4), text)
    if new != text:
        document.write_text(new)
    return new != text


def stale_quotes(document: Path, root: Path) -> list[str]:
    """The paths whose quote in `document` differs from the file (or names a file that does not exist)."""
    stale = []
    for match in QUOTE.finditer(document.read_text()):
        path = root / match.group("path")
        if not path.exists() or match.group("body") != _body(root, match.group("path")):
            stale.append(match.group("path"))
    return stale
