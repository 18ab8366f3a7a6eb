"""Exactly once per file (issue 16, items 1-3): a landing zone in a folder and in S3."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from lockgate.errors import LakeError

from tests.files.conftest import clicks, day, files_source, rows, run_interval, tsv


def later(landing, n: int):
    """A landing time inside day ``n`` — S3 stamps uploads with the present, so the
    S3 variant's intervals run up to now."""
    return datetime.now(UTC) - timedelta(minutes=10) if landing.s3 else day(n) + timedelta(hours=3)


def interval(landing, n: int):
    if landing.s3:
        now = datetime.now(UTC)
        return now - timedelta(days=1) + timedelta(seconds=n), now + timedelta(seconds=n + 1)
    return day(n), day(n + 1)


def test_each_file_is_taken_once_and_an_interval_rerun_reads_its_own(lake_env, landing):
    config = files_source(landing)
    day0 = interval(landing, 0)
    landing.drop("clicks/a.tsv.gz", tsv(clicks(1, 50, day(0))), later(landing, 0))
    landing.drop("clicks/b.tsv.gz", tsv(clicks(51, 30, day(0))), later(landing, 0))
    first = run_interval(config, *day0)
    assert first["clicks"]["loaded"]["rows_loaded"] == 80
    landing.drop("clicks/c.tsv.gz", tsv(clicks(81, 20, day(1))), later(landing, 1))
    second = run_interval(config, *interval(landing, 1))
    assert second["clicks"]["extracted"]["rows"] == 20  # a and b are not taken again
    assert rows(lake_env, "SELECT count(*), count(DISTINCT event_id) FROM web.clicks") == [(100, 100)]
    # Re-running the first interval (a clear: version 1) reads exactly a and b again.
    again = run_interval(config, *day0, version=1)
    assert again["clicks"]["extracted"]["rows"] == 80
    assert rows(lake_env, "SELECT count(*), count(DISTINCT event_id) FROM web.clicks") == [(100, 100)]
    ledger = rows(lake_env, "SELECT file_key, rows_in, rows_parsed, rows_rejected, status FROM lockgate.landed_files "
                            "ORDER BY file_key")  # fmt: skip
    assert ledger == [("clicks/a.tsv.gz", 50, 50, 0, "taken"), ("clicks/b.tsv.gz", 30, 30, 0, "taken"),
                      ("clicks/c.tsv.gz", 20, 20, 0, "taken")]  # fmt: skip


def test_a_reuploaded_file_replaces_its_rows(lake_env, landing):
    config = files_source(landing)
    day0 = interval(landing, 0)
    landing.drop("clicks/a.tsv.gz", tsv(clicks(1, 50, day(0))), later(landing, 0))
    run_interval(config, *day0)
    # The application uploads a corrected a.tsv.gz: 40 rows instead of 50.
    landing.drop("clicks/a.tsv.gz", tsv(clicks(1, 40, day(0))), later(landing, 1) + timedelta(seconds=1))
    second = run_interval(config, *interval(landing, 1))
    assert second["clicks"]["extracted"]["rows"] == 40
    assert rows(lake_env, "SELECT count(*), max(event_id) FROM web.clicks") == [(40, 40)]
    versions = rows(lake_env, "SELECT count(*), count(DISTINCT sha256) FROM lockgate.landed_files")
    assert versions == [(2, 2)]
    # The first interval took the first upload: re-running it cannot read that file any more.
    with pytest.raises(LakeError, match=r"clicks/a.tsv.gz .*uploaded again since the interval took them"):
        run_interval(config, *day0, version=1)
    assert rows(lake_env, "SELECT count(*), max(event_id) FROM web.clicks") == [(40, 40)]


def test_files_still_being_written_are_not_taken(lake_env, landing):
    marked = files_source(landing, files={"pattern": "clicks/*/*.tsv.gz", "ready_marker": "_SUCCESS"})
    landing.drop("clicks/d0/a.tsv.gz", tsv(clicks(1, 10, day(0))), later(landing, 0))
    assert run_interval(marked, *interval(landing, 0))["clicks"]["extracted"]["rows"] == 0
    landing.drop("clicks/d0/_SUCCESS", b"", later(landing, 0), compress=False)
    assert run_interval(marked, *interval(landing, 1))["clicks"]["extracted"]["rows"] == 10
    quiet = files_source(landing, name="clicks", files={"quiet_period": "1h", "pattern": "late/*.tsv.gz"})
    landing.drop("late/b.tsv.gz", tsv(clicks(100, 5, day(0))), datetime.now(UTC))
    now = datetime.now(UTC)
    assert run_interval(quiet, now - timedelta(hours=1), now + timedelta(hours=1))["clicks"]["extracted"]["rows"] == 0
