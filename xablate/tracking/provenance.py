"""Which code a run ran: the commit, and whether the checkout was clean.

A commit alone attributes a run from an edited checkout to code it did not run. Each run and each sweep parent
therefore records whether the tree was clean (`xablate.source.clean`) and, when it was not, the SHA-256 of its
changes (`xablate.source.diff_sha256`: `git diff HEAD` of tracked files, then each untracked, not ignored file's
path and content hash; outputs, prose and tests left out: NOT_CODE); the run keeps the diff itself as a small artifact (source/changes.diff, cut at
MAX_DIFF_BYTES). A pre-registered claim whose runs came from an edited checkout says so in the verdict
(xablate.analysis.registration).
"""

from __future__ import annotations

import hashlib
import subprocess
from dataclasses import dataclass
from pathlib import Path

from xablate.paths import project_root

CLEAN_TAG = "xablate.source.clean"
DIFF_TAG = "xablate.source.diff_sha256"
DIFF_ARTIFACT = "source/changes.diff"
MAX_DIFF_BYTES = 1_000_000
# what a run's outcome cannot depend on: its outputs (the committed store and figures change with every run into
# them), the prose and the tests; a change there does not make a checkout "edited"
NOT_CODE = ("results", "docs", "tests", "notebooks", "*.md")


@dataclass(frozen=True)
class SourceState:
    commit: str | None        # None outside git
    clean: bool | None        # None outside git
    diff: str = ""            # the changes (empty when clean)
    diff_sha256: str | None = None

    def tags(self) -> dict[str, str]:
        """The run or parent tags: the commit (MLflow's own key), clean or not, the changes' hash."""
        tags = {}
        if self.commit:
            tags["mlflow.source.git.commit"] = self.commit
        if self.clean is not None:
            tags[CLEAN_TAG] = str(self.clean).lower()
        if self.diff_sha256:
            tags[DIFF_TAG] = self.diff_sha256
        return tags


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.decode("utf-8", "replace") if out.returncode == 0 else None


def commit_of(root: Path) -> str | None:
    return (_git(root, "rev-parse", "HEAD") or "").strip() or None


def source_state(root: Path | None = None) -> SourceState:
    """The checkout's commit and changes (tracked edits, staged or not, and untracked files git does not ignore)."""
    root = Path(root or project_root())
    commit = commit_of(root)
    if commit is None:
        return SourceState(None, None)
    outside = [f":(exclude){path}" for path in NOT_CODE]
    tracked = _git(root, "diff", "HEAD", "--binary", "--no-color", "--no-ext-diff", "--", ".", *outside) or ""
    untracked = [p for p in (_git(root, "ls-files", "--others", "--exclude-standard", "-z", "--", ".", *outside)
                             or "").split("\0") if p]
    listing = "".join(f"untracked {path} sha256 {_file_hash(root / path)}\n" for path in sorted(untracked))
    diff = tracked + listing
    if not diff:
        return SourceState(commit, True)
    return SourceState(commit, False, diff, hashlib.sha256(diff.encode()).hexdigest())


def _file_hash(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return "unreadable"


def diff_artifact_text(state: SourceState) -> str:
    """The changes as the run keeps them: whole up to MAX_DIFF_BYTES, else cut, saying so (the hash is of all)."""
    data = state.diff.encode()
    if len(data) <= MAX_DIFF_BYTES:
        return state.diff
    return data[:MAX_DIFF_BYTES].decode("utf-8", "ignore") + (
        f"\n[cut at {MAX_DIFF_BYTES} of {len(data)} bytes; sha256 of all: {state.diff_sha256}]\n")
