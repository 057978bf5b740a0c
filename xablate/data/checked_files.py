"""The digest of data files that were read and checked, remembered per the files' stamps, so that a later
process with the same files skips the read.

Checking Fashion-MNIST's four files decompresses 55 MB (about a quarter of a second here), and `xablate status`
and every job check them before anything else. A file's stamp - its size, its modification and change times and
its inode - changes whenever its content can have (the same rule as the in-process cache before it, kept across
processes); files whose stamps all match a remembered entry have its digest (xablate.remembered).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from xablate.remembered import remembered, stamp

CACHE_FILE = "checked-data.json"


def remembered_digest(kind: str, paths: list[Path], check: Callable[[], str]) -> str:
    """`check()`'s digest of `paths` (it reads and checks them, raising for a bad or missing file), from the cache
    when every file's stamp matches an entry made by an earlier check; a new answer is remembered."""
    found = [stamp(path) for path in paths]
    return check() if None in found else remembered(CACHE_FILE, [kind, found], check)
