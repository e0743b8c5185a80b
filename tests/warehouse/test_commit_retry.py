"""A real DuckLake transaction under the shared retry policy: a commit conflict runs it again whole, a full disk
or any other error surfaces from the first attempt, and nothing an abandoned attempt wrote remains."""

from __future__ import annotations

from dataclasses import replace

import duckdb
import pytest
from loguru import logger

import warehouse.lake as lake_module
from warehouse.lake import COMMIT_RETRIES, StorageError


def raise_in_duckdb(cur, message: str) -> None:
    """Make DuckDB itself raise `message` as a duckdb.Error (its error() function), as a failing commit would."""
    cur.execute("SELECT error(?)", [message])


@pytest.fixture
def probe(lake):
    warehouse = lake.warehouse
    warehouse.transaction(lambda cur: cur.execute("CREATE TABLE lake.retry_probe (attempt INTEGER)"), "create probe")
    return warehouse


def attempts_failing_with(message: str, failures: int):
    calls: list[int] = []

    def work(cur):
        calls.append(len(calls) + 1)
        cur.execute("INSERT INTO lake.retry_probe VALUES (?)", [len(calls)])
        if len(calls) <= failures:
            raise_in_duckdb(cur, message)
        return len(calls)

    return work, calls


def written(warehouse) -> list[int]:
    return warehouse.query("SELECT attempt FROM lake.retry_probe ORDER BY attempt")["attempt"].to_list()


def test_a_commit_conflict_reruns_the_whole_transaction(probe):
    work, calls = attempts_failing_with("Failed to commit DuckLake transaction: conflict on table retry_probe", 2)
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(message.record["message"]), level="DEBUG")
    try:
        assert probe.transaction(work, "probe write") == 3
    finally:
        logger.remove(sink)
    assert calls == [1, 2, 3] and written(probe) == [3]
    retried = [line for line in lines if line.startswith("probe write conflicted")]
    assert [line.split("(attempt ")[1][0] for line in retried] == ["1", "2"]


def test_conflicts_past_the_attempts_surface_as_the_conflict(probe, monkeypatch):
    monkeypatch.setattr(lake_module, "COMMIT_RETRY", replace(lake_module.COMMIT_RETRY, first_wait_s=0.0))
    work, calls = attempts_failing_with("Failed to commit DuckLake transaction: conflict on table retry_probe",
                                        COMMIT_RETRIES)
    with pytest.raises(duckdb.Error, match="conflict on table retry_probe"):
        probe.transaction(work, "probe write")
    assert len(calls) == COMMIT_RETRIES and written(probe) == []


def test_a_full_disk_is_never_retried(probe):
    work, calls = attempts_failing_with("Failed to commit DuckLake transaction: database or disk is full", 1)
    with pytest.raises(StorageError, match="is full") as raised:
        probe.transaction(work, "probe write")
    assert raised.value.kind == "disk-full" and calls == [1] and written(probe) == []


def test_any_other_error_surfaces_from_the_first_attempt(probe):
    work, calls = attempts_failing_with("Binder Error: column not found", 1)
    with pytest.raises(duckdb.Error, match="column not found"):
        probe.transaction(work, "probe write")
    assert calls == [1] and written(probe) == []
    probe.transaction(lambda cur: cur.execute("INSERT INTO lake.retry_probe VALUES (9)"), "after")
    assert written(probe) == [9]  # the thread's next transaction starts clean
