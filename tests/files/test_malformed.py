"""Bad input never stops silently or loses lines (issue 16, item 4): a corpus of
malformed files, in a folder and in S3. Every line is loaded or set aside with its file
and line number, and per file rows in = loaded + quarantined."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta

import pyarrow.parquet as pq
import pytest
from lockgate import lake
from lockgate.quality import QualityError

from tests.files.conftest import clicks, day, files_source, rows, run_interval, tsv

HEADER = "event_id\tuser_id\tpage\tamount\tat\n"
GOOD = "{i}\t1\t/home\t1.50\t2026-03-01T10:00:00Z\n"

#: file → (content, {line: error type expected})
CORPUS = {
    "clicks/fields.tsv.gz": (
        HEADER + GOOD.format(i=1) + "2\t1\t/home\n" + GOOD.format(i=3) + "4\t1\t/x\t2.00\t2026-03-01T10:00:00Z\textra\n",
        {3: "MISSING COLUMNS", 5: "TOO MANY COLUMNS"},
    ),
    "clicks/values.tsv.gz": (
        HEADER + GOOD.format(i=10) + "eleven\t1\t/home\t1.50\t2026-03-01T10:00:00Z\n"
        + "12\t1\t/home\tabc\t2026-03-01T10:00:00Z\n" + "13\t1\t/home\t1.00\tnot-a-time\n" + GOOD.format(i=14),
        {3: "CAST", 4: "CAST", 5: "CAST"},
    ),
    "clicks/encoding.tsv.gz": (
        HEADER + GOOD.format(i=20) + "21\t1\t/caf\udce9\t1.50\t2026-03-01T10:00:00Z\n" + GOOD.format(i=22),
        {3: "INVALID ENCODING"},
    ),
}


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")  # \udce9: a lone 0xE9 byte, not UTF-8


def _truncated() -> bytes:
    whole = gzip.compress(tsv(clicks(100, 2000, day(0))))
    return whole[: len(whole) * 2 // 3]


@pytest.fixture
def corpus(landing):
    landed = datetime.now(UTC) - timedelta(minutes=5) if landing.s3 else day(0) + timedelta(hours=1)
    for key, (text, _) in CORPUS.items():
        landing.drop(key, _bytes(text), landed)
    landing.drop("clicks/cut.tsv.gz", _truncated(), landed, compress=False)
    landing.drop("clicks/good.tsv.gz", tsv(clicks(5000, 100, day(0))), landed)
    return landing


def _interval(landing):
    now = datetime.now(UTC)
    return (now - timedelta(days=1), now + timedelta(minutes=1)) if landing.s3 else (day(0), day(1))


@pytest.mark.parametrize("lake_env", ["local", "s3"], indirect=True)
def test_every_bad_line_is_set_aside_with_its_file_and_line(lake_env, corpus):
    config = files_source(corpus, on_quality_failure="quarantine")
    result = run_interval(config, *_interval(corpus))["clicks"]
    manifest = lake.read_manifest(result["extracted"]["raw_path"])
    rejects = pq.read_table(lake.lake_path(manifest["rejects"]).open("rb")).to_pylist()
    found = {(r["file"], r["line"]): r["error"] for r in rejects}
    for key, (_, expected) in CORPUS.items():
        for line, error in expected.items():
            assert found.get((key, line)) == error, (key, line, found)
    cut = [r for r in rejects if r["file"] == "clicks/cut.tsv.gz"]
    assert len(cut) == 1 and cut[0]["error"] == "TRUNCATED FILE" and "cut short" in cut[0]["message"]
    assert not any(r["file"] == "clicks/good.tsv.gz" for r in rejects)
    # Per file: rows in = loaded + quarantined, and rows in = the file's data lines.
    loaded = dict(rows(lake_env, "SELECT _lockgate_file, count(*) FROM web.clicks GROUP BY 1"))
    ledger = {k: (i, p, r) for k, i, p, r in rows(
        lake_env, "SELECT file_key, rows_in, rows_parsed, rows_rejected FROM lockgate.landed_files")}  # fmt: skip
    for key, (text, expected) in CORPUS.items():
        lines = text.count("\n") - 1
        assert ledger[key] == (lines, lines - len(expected), len(expected)), key
        assert loaded.get(key, 0) + len(expected) == lines, key
    cut_rows = ledger["clicks/cut.tsv.gz"]
    assert cut_rows[1] == 0 and cut_rows[0] == cut_rows[2] > 0 and "clicks/cut.tsv.gz" not in loaded
    assert loaded["clicks/good.tsv.gz"] == 100
    audit = rows(lake_env, "SELECT rows_loaded, rows_quarantined FROM lockgate.runs")
    assert audit == [(sum(loaded.values()), sum(r for _, _, r in ledger.values()))]


def test_under_fail_a_bad_line_stops_the_batch_and_names_it(lake_env, corpus):
    config = files_source(corpus, on_quality_failure="fail")
    with pytest.raises(QualityError, match=r"clicks/fields.tsv.gz line 3: MISSING COLUMNS"):
        run_interval(config, *_interval(corpus))
    assert rows(lake_env, "SELECT count(*) FROM lockgate.runs WHERE status = 'loaded'") == [(0,)]
    assert lake.sealed_runs(lake_env.lake_root, "web", "clicks") == []


def test_a_header_naming_unknown_columns_rejects_the_file(lake_env, landing):
    landed = datetime.now(UTC) - timedelta(minutes=5) if landing.s3 else day(0) + timedelta(hours=1)
    landing.drop("clicks/renamed.tsv.gz", tsv(clicks(1, 5, day(0)), header=("event_id", "user", "page", "amount", "at")),
                 landed)  # fmt: skip
    config = files_source(landing, on_quality_failure="quarantine")
    result = run_interval(config, *_interval(landing))["clicks"]
    assert result["extracted"]["rows"] == 0
    assert rows(lake_env, "SELECT rows_in, rows_rejected FROM lockgate.landed_files") == [(5, 5)]


def test_blank_lines_are_not_rows_and_do_not_stop_the_batch(lake_env, landing):
    landed = datetime.now(UTC) - timedelta(minutes=5) if landing.s3 else day(0) + timedelta(hours=1)
    lf = HEADER + GOOD.format(i=1) + "\n\n\n" + GOOD.format(i=2) + GOOD.format(i=3) + "\n"
    landing.drop("clicks/blank-lf.tsv.gz", lf.encode(), landed)
    crlf = (HEADER + GOOD.format(i=4) + "\n\n" + GOOD.format(i=5)).replace("\n", "\r\n")
    landing.drop("clicks/blank-crlf.tsv.gz", crlf.encode(), landed)
    result = run_interval(files_source(landing), *_interval(landing))["clicks"]
    assert result["loaded"]["rows_loaded"] == 5
    ledger = rows(lake_env, "SELECT file_key, rows_in, rows_rejected FROM lockgate.landed_files ORDER BY 1")
    assert ledger == [("clicks/blank-crlf.tsv.gz", 2, 0), ("clicks/blank-lf.tsv.gz", 3, 0)]
