"""The veracity gate on a bad-data corpus from a real PostgreSQL source.

NULL keys, duplicate keys, out-of-range numbers, NaN and Infinity, impossible dates,
control characters (emoji are fine), very long text: each policy handles every case
with a clear message, and rows in = rows loaded + rows quarantined.
"""

from __future__ import annotations

import json
import math
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from lockgate import lake, pipeline, warehouse
from lockgate.config import parse_source
from lockgate.pipeline import RunInfo
from lockgate.quality import QualityError

#: Every case runs against a local lake and an S3 lake (moto's server), both with the
#: DuckDB warehouse, and against the PostgreSQL warehouse (with a local lake).
pytestmark = [
    pytest.mark.integration,
    pytest.mark.parametrize("lake_env", ["local", "s3", "pg_warehouse"], indirect=True),
]

D0 = datetime(2026, 5, 1, tzinfo=UTC)
D1 = D0 + timedelta(days=1)
T = datetime(2026, 5, 1, 6)

# (id, name, amount, score, day, note, updated_at), and the rules each row breaks.
CORPUS = [
    ((1, "Ada Lovelace", Decimal("10.00"), 0.5, date(1990, 1, 1), "fine", T), []),
    ((2, "Zoë 😀 Ünïcode", Decimal("20.00"), 0.25, date(1985, 6, 30), "emoji are valid text", T), []),
    ((None, "no key", Decimal("1.00"), 0.1, date(2000, 1, 1), None, T), ["id is required"]),
    ((10, "twin a", Decimal("1.00"), 0.1, date(2000, 1, 1), None, T), ["id is unique"]),
    ((10, "twin b", Decimal("1.00"), 0.1, date(2000, 1, 1), None, T), ["id is unique"]),
    ((11, "negative", Decimal("-5.00"), 0.1, date(2000, 1, 1), None, T), ["amount is between 0 and 1000"]),
    ((12, "not a number", Decimal("1.00"), float("nan"), date(2000, 1, 1), None, T), ["score is a probability"]),
    ((13, "infinite", Decimal("1.00"), float("inf"), date(2000, 1, 1), None, T), ["score is a probability"]),
    ((14, "from the future", Decimal("1.00"), 0.1, date(2999, 1, 1), None, T), ["day is a plausible date"]),
    ((15, "bell\x07and\x01ctrl", Decimal("1.00"), 0.1, date(2000, 1, 1), None, T), ["name has no control characters"]),
    ((16, "long", Decimal("1.00"), 0.1, date(2000, 1, 1), "x" * 100_000, T), ["note is at most 10,000 characters"]),
]
GOOD = [row for row, rules in CORPUS if not rules]
SUITE = {
    "name": "qc.corpus",
    "expectations": [
        {"type": "expect_table_columns_to_match_set",
         "kwargs": {"column_set": ["id", "name", "amount", "score", "day", "note", "updated_at"]}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}, "meta": {"rule": "id is required"}},
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "id"}, "meta": {"rule": "id is unique"}},
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "amount", "min_value": 0, "max_value": 1000},
         "meta": {"rule": "amount is between 0 and 1000"}},
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "score", "min_value": 0, "max_value": 1},
         "meta": {"rule": "score is a probability"}},
        {"type": "expect_column_values_to_be_between",
         "kwargs": {"column": "day", "min_value": "1900-01-01", "max_value": "2100-12-31"},
         "meta": {"rule": "day is a plausible date"}},
        {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "name", "regex": "^[^\\x00-\\x1F\\x7F]*$"},
         "meta": {"rule": "name has no control characters"}},
        {"type": "expect_column_value_lengths_to_be_between", "kwargs": {"column": "note", "max_value": 10000},
         "meta": {"rule": "note is at most 10,000 characters"}},
    ],
}  # fmt: skip


@pytest.fixture
def corpus(pg_conn, pg_database, lake_env, spark, monkeypatch, tmp_path):
    pg_conn.execute(
        "CREATE TABLE corpus (id integer, name text, amount numeric(12,2), score double precision, day date, "
        "note text, updated_at timestamp NOT NULL)"
    )
    with pg_conn.cursor() as cur:
        cur.executemany("INSERT INTO corpus VALUES (%s, %s, %s, %s, %s, %s, %s)", [row for row, _ in CORPUS])
    monkeypatch.setenv("AIRFLOW_CONN_QC_PG", f"postgres://postgres@127.0.0.1:5432/{pg_database}")
    expectations = tmp_path / "expectations"
    (expectations / "qc").mkdir(parents=True)
    (expectations / "qc" / "corpus.json").write_text(json.dumps(SUITE), encoding="utf-8")
    monkeypatch.setenv("LOCKGATE_EXPECTATIONS_DIR", str(expectations))
    from lockgate.settings import load_settings

    return load_settings(), spark


def _config(policy: str, **table):
    return parse_source(
        {
            "source": "qc",
            "connection": "qc_pg",
            "start_date": "2026-05-01",
            "tables": [{"name": "corpus", "mode": "append", "cursor": "updated_at", "expectations": "qc/corpus",
                        "on_quality_failure": policy, **table}],
        },
        "qc.yml",
    )  # fmt: skip


def _run(config, settings, spark, run_id="scheduled__qc"):
    table = config.tables[0]
    run = RunInfo(run_id=run_id, interval_start=D0, interval_end=D1)
    extracted = pipeline.extract_stage(config, table, run, settings=settings, spark=spark)
    validated = pipeline.validate_stage(config, table, run, extracted["raw_path"], settings=settings, spark=spark)
    loaded = pipeline.load_stage(config, table, run, extracted["raw_path"], settings=settings)
    pipeline.publish_stage(config, table, run, extracted["raw_path"], settings=settings)
    return extracted, validated, loaded


def _quarantined(settings) -> list[tuple[str, list[str]]]:
    """(name, broken rules) of every quarantined row; asserts there is one quarantine file."""
    import pyarrow.parquet as pq

    files = list((settings.lake_root / "quarantine" / "qc" / "corpus").rglob("rows.parquet"))
    assert len(files) == 1, files
    with files[0].open("rb") as handle:
        rows = pq.read_table(handle, columns=["name", "_lockgate_failed_rules"]).to_pylist()
    return sorted((r["name"], list(r["_lockgate_failed_rules"])) for r in rows)


def _audit(settings, run_id="scheduled__qc"):
    with warehouse.connect(settings, read_only=True) as conn:
        return warehouse.run_status(conn, "qc", "corpus", run_id)


def test_fail_stops_the_load_and_names_table_and_every_broken_rule(corpus):
    settings, spark = corpus
    config = _config("fail")
    with pytest.raises(QualityError) as info:
        _run(config, settings, spark)
    message = str(info.value)
    assert message.startswith("qc.corpus: 7 of 9 rules failed on 11 rows (suite 'qc.corpus')")
    assert "e.g. 'xxxxx" in message and "(100000 characters)" in message and len(message) < 3000
    for rule, count in [("id is required", 1), ("id is unique", 2), ("amount is between 0 and 1000", 1),
                        ("score is a probability", 2), ("day is a plausible date", 1),
                        ("name has no control characters", 1), ("note is at most 10,000 characters", 1)]:  # fmt: skip
        assert f"({rule}): {count} of 11 rows broke it" in message, rule
    assert message.rstrip().endswith("the batch was not loaded")
    audit = _audit(settings)
    assert (audit["validation_status"], audit["status"], audit["rules_failed"], audit["rules_passed"]) == (
        "failed", "failed", 7, 2)  # fmt: skip
    assert audit["rows_loaded"] is None and "id is unique" in audit["error"]
    with warehouse.connect(settings, read_only=True) as conn:
        assert warehouse.table_columns(conn, "qc", "corpus") == {}  # nothing was loaded
    # The load refuses a batch that failed validation, even if called directly.
    table = config.tables[0]
    run = RunInfo(run_id="scheduled__qc", interval_start=D0, interval_end=D1)
    raw = audit["raw_path"]
    with pytest.raises(Exception, match="failed validation"):
        pipeline.load_stage(config, table, run, raw, settings=settings)


def test_quarantine_sets_bad_rows_aside_with_their_rules_and_loads_the_rest(corpus):
    settings, spark = corpus
    extracted, validated, loaded = _run(_config("quarantine", reconcile_sum="amount"), settings, spark)
    assert validated["status"] == "quarantine"
    bad = [(row, rules) for row, rules in CORPUS if rules]
    assert loaded["rows_loaded"] == len(GOOD) and loaded["rows_quarantined"] == len(bad)
    assert loaded["rows_loaded"] + loaded["rows_quarantined"] == extracted["rows"] == len(CORPUS)
    with warehouse.connect(settings, read_only=True) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM qc.corpus ORDER BY id").fetchall()]
    assert names == ["Ada Lovelace", "Zoë 😀 Ünïcode"]  # emoji pass, byte for byte
    assert _quarantined(settings) == sorted((row[1], rules) for row, rules in bad)
    audit = _audit(settings)
    assert (audit["rows_loaded"], audit["rows_quarantined"], audit["status"]) == (2, 9, "published")
    report = json.loads(lake.lake_path(audit["quality_report"]).read_text(encoding="utf-8"))
    assert report["status"] == "quarantine" and report["failed"] == 7
    assert report["docs_page"] and lake.lake_path(report["docs_page"]).read_text(encoding="utf-8").lstrip().startswith("<")
    assert report["docs_page"].startswith(settings.lake_location), "Data Docs live in the lake"


def test_warn_loads_everything_and_records_why(corpus):
    settings, spark = corpus
    extracted, validated, loaded = _run(_config("warn"), settings, spark)
    assert validated["status"] == "warned"
    assert loaded["rows_loaded"] == len(CORPUS) and loaded["rows_quarantined"] == 0
    audit = _audit(settings)
    assert audit["validation_status"] == "warned" and "loaded anyway (policy warn)" in audit["error"]
    with warehouse.connect(settings, read_only=True) as conn:
        scores = [r[0] for r in conn.execute("SELECT score FROM qc.corpus").fetchall()]
        columns = warehouse.table_columns(conn, "qc", "corpus")
    assert len(scores) == 11 and sum(math.isnan(s) for s in scores) == 1 and float("inf") in scores
    # Both warehouses report the columns in one (DuckDB's) vocabulary.
    assert columns == {"id": "INTEGER", "name": "VARCHAR", "amount": "DECIMAL(12,2)", "score": "DOUBLE",
                       "day": "DATE", "note": "VARCHAR", "updated_at": "TIMESTAMP"}  # fmt: skip


def test_a_table_level_failure_cannot_be_quarantined(corpus):
    settings, spark = corpus
    config = _config("quarantine", freshness="2h")  # newest row is 18 h before the interval end
    with pytest.raises(QualityError) as info:
        _run(config, settings, spark)
    message = str(info.value)
    assert "lockgate_cursor_is_fresh on updated_at (the newest updated_at is at most 2:00:00 older" in message
    assert "a table-level rule failed: rows cannot be set aside" in message
    assert not list((settings.lake_root / "quarantine").rglob("*.parquet"))


def test_sum_that_does_not_reconcile_stops_the_load(corpus):
    settings, spark = corpus
    config = _config("quarantine", reconcile_sum="amount")
    table = config.tables[0]
    run = RunInfo(run_id="scheduled__qc", interval_start=D0, interval_end=D1)
    extracted = pipeline.extract_stage(config, table, run, settings=settings, spark=spark)
    manifest = lake.read_manifest(extracted["raw_path"])
    assert Decimal(manifest["source_sum"]) == sum((row[2] for row, _ in CORPUS), Decimal(0))
    pipeline.validate_stage(config, table, run, extracted["raw_path"], settings=settings, spark=spark)
    # The source's figure no longer matches what was extracted (e.g. a lossy type).
    lake.write_json_atomic(lake.lake_path(extracted["raw_path"]) / lake.MANIFEST, {**manifest, "source_sum": "999.99"})
    with pytest.raises(QualityError, match=r"sum of amount does not reconcile: the source counted 999.99"):
        pipeline.load_stage(config, table, run, extracted["raw_path"], settings=settings)
    with warehouse.connect(settings, read_only=True) as conn:
        assert warehouse.table_columns(conn, "qc", "corpus") == {}
    assert not list((settings.lake_root / "quarantine").rglob("*.parquet"))


@pytest.mark.parametrize("engine", ["pandas", "duckdb", "spark"])
def test_quarantine_is_the_same_whether_the_batch_is_validated_in_process_on_duckdb_or_on_spark(
    corpus, engine, monkeypatch
):
    """The suite's rules that mean the same on GX's pandas engine (and, but for the
    regex, in DuckDB's SQL), on the same corpus: validated in process (a small batch),
    as a large batch on DuckDB, or forced onto Spark, the same rows are set aside with
    the same rules, and the report counts the same failures."""
    from dataclasses import replace

    from lockgate import quality

    settings, spark = corpus
    eligible = {"id is required", "id is unique", "amount is between 0 and 1000", "note is at most 10,000 characters"}
    if engine != "duckdb":
        eligible.add("name has no control characters")
    suite = {**SUITE, "expectations": [e for e in SUITE["expectations"]
                                       if e.get("meta", {}).get("rule", "schema") in eligible | {"schema"}]}  # fmt: skip
    (settings.expectations_dir / "qc" / "corpus.json").write_text(json.dumps(suite), encoding="utf-8")
    if engine != "pandas":
        monkeypatch.setattr(quality, "IN_PROCESS_ROWS", 0)
    if engine == "spark":
        settings = replace(settings, validation_engine="spark")
    config = _config("quarantine")
    table = config.tables[0]
    run = RunInfo(run_id="scheduled__qc", interval_start=D0, interval_end=D1)
    extracted = pipeline.extract_stage(config, table, run, settings=settings, spark=spark)
    sc, group = spark.sparkContext, f"corpus-validate-{uuid.uuid4().hex}"
    sc.setJobGroup(group, "validate")
    try:
        validated = pipeline.validate_stage(config, table, run, extracted["raw_path"], settings=settings, spark=spark)
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)
    spark_jobs = sc.statusTracker().getJobIdsForGroup(group)
    assert (len(spark_jobs) == 0) == (engine != "spark")
    assert json.loads(lake.lake_path(validated["report"]).read_text())["engine"] == engine
    loaded = pipeline.load_stage(config, table, run, extracted["raw_path"], settings=settings)
    assert validated["status"] == "quarantine" and validated["rules_failed"] == len(eligible)
    bad = [(row, [r for r in rules if r in eligible]) for row, rules in CORPUS]
    bad = [(row, rules) for row, rules in bad if rules]
    assert (loaded["rows_loaded"], loaded["rows_quarantined"]) == (len(CORPUS) - len(bad), len(bad))
    assert _quarantined(settings) == sorted((row[1], rules) for row, rules in bad)
