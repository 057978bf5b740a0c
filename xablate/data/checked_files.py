"""The digest of data files that were read and checked, remembered per the files' stamps, so that a later
process with the same files skips the read.

Checking Fashion-MNIST's four files decompresses 55 MB (about a quarter of a second here), and `xablate status`
and every job check them before anything else. A file's stamp - its size, its modification and change times and
its inode - changes whenever its content can have (the same rule as the in-process cache before it, kept across
processes); files whose stamps all match a remembered entry have its digest. The cache folder holds it
(xablate.paths.cache_folder); a cache that cannot be read or written only means the files are read again.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterable

from xablate.paths import cache_folder

CACHE_FILE = "checked-data.json"
KEPT = 64  # entries kept (the newest): one per data folder and version of its files
_seen: dict[str, str] = {}  # this process' answers


def stamps(paths: Iterable[Path]) -> list[list]:
    """Each file's resolved path, size, modification time, change time and inode (FileNotFoundError if one is
    missing: the check itself names it)."""
    found = []
    for path in paths:
        info = Path(path).stat()
        found.append([str(Path(path).resolve()), info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino])
    return found


def remembered_digest(kind: str, paths: list[Path], check: Callable[[], str]) -> str:
    """`check()`'s digest of `paths` (it reads and checks them, raising for a bad file), from the cache when every
    file's stamp matches an entry made by an earlier check; a new answer is remembered."""
    key = hashlib.sha256(json.dumps([kind, stamps(paths)]).encode()).hexdigest()[:16]
    if key in _seen:
        return _seen[key]
    store = cache_folder() / CACHE_FILE
    known = _read(store)
    if key not in known:
        known[key] = check()
        _write(store, dict(list(known.items())[-KEPT:]))
    _seen[key] = known[key]
    return known[key]


def _read(store: Path) -> dict[str, str]:
    try:
        known = json.loads(store.read_text())
    except (OSError, ValueError):
        return {}
    return known if isinstance(known, dict) and all(isinstance(v, str) for v in known.values()) else {}


def _write(store: Path, known: dict[str, str]) -> None:
    """Whole or not at all (a concurrent writer's entry may be lost: it is remade on its next check)."""
    try:
        store.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=store.parent, suffix=".tmp", delete=False) as handle:
            json.dump(known, handle)
        os.replace(handle.name, store)
    except OSError:
        pass
