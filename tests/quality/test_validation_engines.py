"""A large batch is validated by GX's SQL engine on DuckDB when its rules mean the same
there as on Spark (lockgate.gx_duckdb): the same batch, the same suite, on both engines,
gives the same verdict and the same counts for every rule the gate lets through; the
rules it does not let through go to Spark.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from lockgate import gx_duckdb, quality
from lockgate.settings import load_settings

pytestmark = pytest.mark.integration


def _rows() -> list[dict]:
    rows = []
    for i in range(60):
        rows.append(
            {
                "id": i,
                "k1": i % 30,
                "k2": "ab" if i < 30 else "cd",
                "amount": Decimal(i * 2) + Decimal("0.25"),
                "qty": i % 7,
                "status": ["new", "paid", "shipped"][i % 3],
                "flag": True,
                "note": "abc",
                "legacy": None,
                "score": i / 100,
                "at": datetime(2026, 1, 1, i % 24),
            }
        )
    # What breaks the rules: a NULL and a repeated id, a repeated (k1, k2) pair and one
    # with a NULL part, a negative and a too large amount, an unknown status, a NULL
    # status, a false flag, multi-byte text (code points, not bytes or graphemes), a
    # longer k2, a legacy value, a status equal to k2.
    rows[1]["id"] = None
    rows[2]["id"] = 3
    rows[4]["k1"], rows[4]["k2"] = 5, "ab"
    rows[6]["k2"] = None
    rows[7]["amount"] = Decimal("-0.01")
    rows[8]["amount"] = Decimal("200.00")
    rows[9]["amount"] = None
    rows[10]["status"] = "cancelled"
    rows[11]["status"] = None
    rows[12]["flag"] = False
    rows[13]["note"] = "é😀ü"  # 3 characters, 9 bytes
    rows[14]["note"] = "e\u0301e\u0301e\u0301"  # 3 graphemes, 6 code points
    rows[15]["note"] = "😀😀😀😀"
    rows[16]["k2"] = "abc"
    rows[17]["legacy"] = "x"
    rows[18]["k2"], rows[18]["status"] = "new", "new"
    return rows


SCHEMA = pa.schema(
    [
        ("id", pa.int64()), ("k1", pa.int32()), ("k2", pa.string()), ("amount", pa.decimal128(12, 2)),
        ("qty", pa.int64()), ("status", pa.string()), ("flag", pa.bool_()), ("note", pa.string()),
        ("legacy", pa.string()), ("score", pa.float64()), ("at", pa.timestamp("us", tz="UTC")),
    ]
)  # fmt: skip
MANIFEST_SCHEMA = [
    {"name": "id", "type": "bigint"}, {"name": "k1", "type": "int"}, {"name": "k2", "type": "string"},
    {"name": "amount", "type": "decimal(12,2)"}, {"name": "qty", "type": "bigint"}, {"name": "status", "type": "string"},
    {"name": "flag", "type": "boolean"}, {"name": "note", "type": "string"}, {"name": "legacy", "type": "string"},
    {"name": "score", "type": "double"}, {"name": "at", "type": "timestamp"},
]  # fmt: skip


def _rule(kind: str, **kwargs) -> dict:
    return {"type": kind, "kwargs": kwargs}


#: Every kind of rule the DuckDB gate lets through, most of them broken by some rows.
SUITE = {
    "name": "engines.batch",
    "expectations": [
        _rule("expect_table_columns_to_match_set", column_set=[f.name for f in SCHEMA]),
        _rule("expect_table_columns_to_match_ordered_list", column_list=[f.name for f in SCHEMA]),
        _rule("expect_table_column_count_to_equal", value=11),
        _rule("expect_table_row_count_to_be_between", min_value=10, max_value=59),
        _rule("expect_table_row_count_to_equal", value=60),
        _rule("expect_column_to_exist", column="qty"),
        _rule("expect_column_values_to_not_be_null", column="id"),
        _rule("expect_column_values_to_be_null", column="legacy"),
        _rule("expect_column_values_to_be_unique", column="id"),
        _rule("expect_compound_columns_to_be_unique", column_list=["k1", "k2"]),
        _rule("expect_column_values_to_be_between", column="amount", min_value=0, max_value=100),
        _rule("expect_column_values_to_be_between", column="qty", min_value=0, max_value=5, strict_min=True),
        _rule("expect_column_values_to_be_in_set", column="status", value_set=["new", "paid", "shipped"]),
        _rule("expect_column_values_to_not_be_in_set", column="status", value_set=["cancelled"]),
        _rule("expect_column_values_to_be_in_set", column="flag", value_set=[True]),
        _rule("expect_column_values_to_be_in_set", column="qty", value_set=[0, 1, 2, 3]),
        _rule("expect_column_value_lengths_to_be_between", column="note", min_value=1, max_value=3),
        _rule("expect_column_value_lengths_to_equal", column="k2", value=2),
        _rule("expect_select_column_values_to_be_unique_within_record", column_list=["k2", "status"]),
    ],
}


@pytest.fixture
def batch(tmp_path, monkeypatch):
    monkeypatch.setenv("LOCKGATE_LAKE_ROOT", str(tmp_path / "lake"))
    path = tmp_path / "batch.parquet"
    pq.write_table(pa.Table.from_pylist(_rows(), schema=SCHEMA), path)
    return str(path), load_settings()


def _outcome(report: quality.ValidationReport) -> list[tuple]:
    return sorted(
        (r.expectation, str(r.kwargs.get("column") or r.kwargs.get("column_list")), r.success, r.unexpected_count,
         r.exception)
        for r in report.results
    )  # fmt: skip


def test_duckdb_and_spark_give_the_same_verdicts_and_counts(batch, spark):
    path, settings = batch
    assert quality.choose_engine(SUITE, MANIFEST_SCHEMA, 1_000_000)[0] == "duckdb"
    on_duckdb = quality.validate_dataframe(
        gx_duckdb.batch([path], quality.columns_read(SUITE), settings), SUITE, table="engines.batch"
    )
    on_spark = quality.validate_dataframe(
        quality.prune_for_rules(spark.read.parquet(path), SUITE), SUITE, table="engines.batch"
    )
    assert (on_duckdb.engine, on_spark.engine) == ("duckdb", "spark")
    assert _outcome(on_duckdb) == _outcome(on_spark)
    outcome = {(kind, column): (ok, count) for kind, column, ok, count, _ in _outcome(on_duckdb)}
    # The batch really breaks what it should (a gate that lets everything pass would not).
    assert outcome[("expect_column_values_to_not_be_null", "id")] == (False, 1)
    assert outcome[("expect_column_values_to_be_unique", "id")] == (False, 2)
    assert outcome[("expect_compound_columns_to_be_unique", "['k1', 'k2']")] == (False, 2)
    assert outcome[("expect_column_values_to_be_between", "amount")] == (False, 12)  # -0.01, 200.00 and i*2 > 100
    assert outcome[("expect_column_value_lengths_to_be_between", "note")] == (False, 2)
    assert outcome[("expect_table_row_count_to_be_between", "None")][0] is False
    assert sum(not ok for ok, _ in outcome.values()) == 14  # all but the five schema and count rules
    assert all(r.exception is None for r in on_duckdb.results)


def test_the_quarantine_predicates_find_the_rows_duckdb_counted(batch):
    """Quarantine sets rows aside with Lockgate's own DuckDB predicates: they find as
    many rows as GX on DuckDB counted, rule by rule."""
    import duckdb

    path, settings = batch
    report = quality.validate_dataframe(
        gx_duckdb.batch([path], quality.columns_read(SUITE), settings), SUITE, table="engines.batch"
    )
    conn = duckdb.connect()
    conn.execute(f"CREATE VIEW lockgate_stage AS SELECT * FROM read_parquet('{path}')")
    for r in report.results:
        if r.row_predicate and r.unexpected_count is not None:
            found = conn.execute(f"SELECT count(*) FROM lockgate_stage WHERE {r.row_predicate}").fetchone()[0]
            assert found == r.unexpected_count, r.describe()


@pytest.mark.parametrize(
    ("rule", "why"),
    [
        (_rule("expect_column_values_to_match_regex", column="k2", regex="^[a-z]+$"), "regex"),
        (_rule("expect_column_values_to_be_between", column="score", min_value=0, max_value=1), "floating-point"),
        (_rule("expect_column_values_to_be_between", column="at", min_value="2026-01-01"), "evaluated by Spark"),
        (_rule("expect_column_values_to_not_be_null", column="id", row_condition='qty>1'), "row_condition"),
        (_rule("expect_column_pair_values_a_to_be_greater_than_b", column_A="qty", column_B="k1"), "evaluated by Spark"),
    ],
)
def test_rules_that_may_mean_otherwise_in_duckdb_go_to_spark(rule, why):
    suite = {"expectations": [*SUITE["expectations"], rule]}
    engine, reason = quality.choose_engine(suite, MANIFEST_SCHEMA, 1_000_000)
    assert engine == "spark" and (why in reason or rule["type"] in reason), reason


def test_the_engine_for_each_batch_size_and_setting():
    portable = {"expectations": [*SUITE["expectations"], _rule("expect_column_values_to_match_regex", column="k2", regex="^[a-z]+$")]}
    assert quality.choose_engine(SUITE, MANIFEST_SCHEMA, 100)[0] == "pandas"
    assert quality.choose_engine(portable, MANIFEST_SCHEMA, 100)[0] == "pandas"  # Python's re reads it as Java does
    assert quality.choose_engine(portable, MANIFEST_SCHEMA, 1_000_000)[0] == "spark"
    assert quality.choose_engine(SUITE, MANIFEST_SCHEMA, 1_000_000, "spark") == ("spark", "1,000,000 rows; LOCKGATE_VALIDATION_ENGINE=spark")
    score = {"expectations": [_rule("expect_column_values_to_be_between", column="score", min_value=0)]}
    assert quality.choose_engine(score, MANIFEST_SCHEMA, 100)[0] == "spark"


def test_a_bad_validation_engine_setting_is_named(monkeypatch):
    from lockgate.errors import ConfigError

    monkeypatch.setenv("LOCKGATE_VALIDATION_ENGINE", "pandas")
    with pytest.raises(ConfigError, match="LOCKGATE_VALIDATION_ENGINE must be one of auto, spark, not 'pandas'"):
        load_settings()
