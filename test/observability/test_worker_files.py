"""Multiprocess metrics: a worker's half-created or just-removed file never breaks a read."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.mmap_dict import MmapedDict, mmap_key

from app.observability import metrics
from app.observability.metrics import WorkerFilesCollector


def _counter_file(directory: Path, pid: int, value: float) -> None:
    values = MmapedDict(str(directory / f"counter_{pid}.db"))
    key = mmap_key("vektor_test", "vektor_test_total", ["route"], ["/x"], "test")
    values.write_value(key, value, 0.0)
    values.close()


def _total(directory: Path) -> float:
    families = WorkerFilesCollector(None, path=str(directory)).collect()
    return sum(s.value for f in families for s in f.samples if s.name == "vektor_test_total")


def test_a_worker_creating_its_file_is_skipped(tmp_path: Path) -> None:
    _counter_file(tmp_path, 101, 2)
    _counter_file(tmp_path, 102, 3)
    (tmp_path / "counter_103.db").write_bytes(b"")  # a worker that is starting right now
    assert _total(tmp_path) == 5


def test_a_file_removed_while_reading_is_listed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _counter_file(tmp_path, 101, 2)
    _counter_file(tmp_path, 102, 3)
    original, calls = WorkerFilesCollector.merge, []

    def merge(files, accumulate=True):  # type: ignore[no-untyped-def]
        calls.append(len(files))
        if len(calls) == 1:  # the first listing raced with a worker's exit
            (tmp_path / "counter_102.db").unlink()
            raise FileNotFoundError(2, "gone", str(tmp_path / "counter_102.db"))
        return original(files, accumulate=accumulate)

    monkeypatch.setattr(WorkerFilesCollector, "merge", staticmethod(merge))
    assert _total(tmp_path) == 2
    assert calls == [2, 1]


def test_the_metrics_page_uses_the_tolerant_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    (tmp_path / "counter_7.db").write_bytes(b"")
    assert metrics.render_metrics()[0] is not None  # no struct.error from the empty file
