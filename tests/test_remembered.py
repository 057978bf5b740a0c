"""Answers remembered across processes (xablate.remembered): read back only for the same key, remade otherwise,
and a broken cache is only a slower answer."""

import gzip
import os

import pytest

from xablate import remembered as cache
from xablate.data.checked_files import remembered_digest


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(cache, "_seen", {})


def counting(answer):
    calls = []

    def compute():
        calls.append(1)
        return answer
    return compute, calls


def test_an_answer_is_computed_once_and_read_back_by_a_later_process(monkeypatch):
    compute, calls = counting([10, "decided"])
    assert cache.remembered("x.json", ["k", 1], compute) == [10, "decided"]
    monkeypatch.setattr(cache, "_seen", {})  # another process: only the file remains
    assert cache.remembered("x.json", ["k", 1], compute) == [10, "decided"]
    assert len(calls) == 1
    other, other_calls = counting("other")
    assert cache.remembered("x.json", ["k", 2], other) == "other" and len(other_calls) == 1  # another key


def test_a_broken_or_unwritable_cache_only_means_computing_again(tmp_path, monkeypatch):
    (tmp_path / "cache" / "xablate").mkdir(parents=True)
    (tmp_path / "cache" / "xablate" / "x.json").write_text("{not json")
    compute, calls = counting(3)
    assert cache.remembered("x.json", "k", compute) == 3
    monkeypatch.setenv("XDG_CACHE_HOME", "/proc/no-such-folder")
    monkeypatch.setattr(cache, "_seen", {})
    assert cache.remembered("x.json", "k", compute) == 3 and len(calls) == 2


def test_only_the_newest_entries_are_kept(monkeypatch):
    monkeypatch.setattr(cache, "KEPT", 3)
    for k in range(5):
        cache.remembered("x.json", k, lambda k=k: k)
    monkeypatch.setattr(cache, "_seen", {})
    compute, calls = counting("again")
    assert cache.remembered("x.json", 0, compute) == "again" and calls  # the oldest was dropped
    assert cache.remembered("x.json", 4, compute) == 4


def test_checked_files_are_read_again_when_one_changes(tmp_path, monkeypatch):
    files = [tmp_path / name for name in ("a.gz", "b.gz")]
    for f in files:
        with gzip.open(f, "wb") as handle:
            handle.write(b"x" * 100)
    compute, calls = counting("digest-1")
    assert remembered_digest("kind", files, compute) == "digest-1"
    monkeypatch.setattr(cache, "_seen", {})
    assert remembered_digest("kind", files, compute) == "digest-1" and len(calls) == 1
    info = files[1].stat()
    os.utime(files[1], ns=(info.st_atime_ns, info.st_mtime_ns + 1))  # rewritten, same size
    changed, changed_calls = counting("digest-2")
    assert remembered_digest("kind", files, changed) == "digest-2" and len(changed_calls) == 1
    files[0].unlink()
    missing, missing_calls = counting("the check names the missing file")
    assert remembered_digest("kind", files, missing) == "the check names the missing file" and missing_calls


def test_a_sequential_studys_looks_are_decided_again_when_its_store_changes(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from xablate.analysis import status

    study_a, study_b = SimpleNamespace(name="A", sequential=None), SimpleNamespace(name="B", sequential=None)
    decided = []
    monkeypatch.setattr(status, "_sequential_progress", lambda uri, study: decided.append(uri) or (3, "decided"))
    database = tmp_path / "mlflow.db"
    database.write_bytes(b"store")
    uri = f"sqlite:///{database}"
    assert status.sequential_progress(uri, study_a) == (3, "decided")
    monkeypatch.setattr(cache, "_seen", {})
    assert status.sequential_progress(uri, study_a) == (3, "decided") and len(decided) == 1
    status.sequential_progress(uri, study_b)  # another study block
    (tmp_path / "mlflow.db-wal").write_bytes(b"a new run, not yet in the database file")
    status.sequential_progress(uri, study_a)
    assert len(decided) == 3
    status.sequential_progress("http://127.0.0.1:5000", study_a)  # a server: nothing to stamp, always decided
    status.sequential_progress("http://127.0.0.1:5000", study_a)
    assert len(decided) == 5
