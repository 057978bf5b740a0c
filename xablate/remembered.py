"""Answers that are a pure function of a key, remembered in the cache folder across processes.

Only for what can always be remade: a key holds everything the answer depends on (files by their stamps, the
code by its digest), so a stale entry cannot be read, only not found; a cache that cannot be read or written
means the answer is computed again. The newest entries of each file are kept.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from xablate.paths import cache_folder

KEPT = 64  # entries kept per file (the newest)
_seen: dict[tuple[str, str], Any] = {}  # this process' answers


def remembered(file: str, key: Any, compute: Callable[[], Any]) -> Any:
    """compute()'s answer (JSON) for `key` (JSON), from `file` in the cache folder when an earlier process
    remembered it."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
    if (file, digest) in _seen:
        return _seen[(file, digest)]
    store = cache_folder() / file
    known = _read(store)
    if digest not in known:
        known[digest] = compute()
        _write(store, dict(list(known.items())[-KEPT:]))
    _seen[(file, digest)] = known[digest]
    return known[digest]


def stamp(path: Path) -> list | None:
    """A file's resolved path, size, modification time, change time and inode (None when it does not exist):
    what changes whenever its content can have."""
    try:
        info = Path(path).stat()
    except FileNotFoundError:
        return None
    return [str(Path(path).resolve()), info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino]


def code_digest() -> str:
    """The digest of xablate's own source files: an answer computed by other code is another answer."""
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _read(store: Path) -> dict[str, Any]:
    try:
        known = json.loads(store.read_text())
    except (OSError, ValueError):
        return {}
    return known if isinstance(known, dict) else {}


def _write(store: Path, known: dict[str, Any]) -> None:
    """Whole or not at all (a concurrent writer's entry may be lost: it is remade when next asked)."""
    try:
        store.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=store.parent, suffix=".tmp", delete=False) as handle:
            json.dump(known, handle)
        os.replace(handle.name, store)
    except OSError:
        pass
