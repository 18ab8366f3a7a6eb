"""Suites are checked when loaded; a failing batch gets a message naming table and rules."""

from __future__ import annotations

import json

import pytest
from lockgate import quality
from lockgate.config import load_source
from lockgate.errors import ConfigError
from lockgate.settings import PROJECT_ROOT

EXPECTATIONS = PROJECT_ROOT / "expectations"


def _write(tmp_path, name, payload):
    path = tmp_path / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(payload if isinstance(payload, str) else json.dumps(payload), encoding="utf-8")
    return path


def test_every_demo_table_has_a_loadable_suite():
    config = load_source(PROJECT_ROOT / "dags" / "sources", "shop")
    for table in config.tables:
        suite = quality.load_suite(EXPECTATIONS, table.expectations)
        kinds = {e["type"] for e in suite["expectations"]}
        assert "expect_table_columns_to_match_set" in kinds, table.name
        keys = {e["kwargs"].get("column") for e in suite["expectations"] if e["type"].endswith("to_be_unique")}
        assert set(table.primary_key) <= keys, f"{table.name}: primary key not checked for uniqueness"


def test_missing_suite_names_the_path(tmp_path):
    with pytest.raises(ConfigError, match=r"suite 'shop/nope' not found: .*shop/nope\.json"):
        quality.load_suite(tmp_path, "shop/nope")


def test_invalid_json_names_file_and_line(tmp_path):
    _write(tmp_path, "s/t", '{"expectations": [\n  {"type": }\n]}')
    with pytest.raises(ConfigError, match=r"t\.json: not valid JSON \(line 2"):
        quality.load_suite(tmp_path, "s/t")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"type": "expect_values_to_be_magic", "kwargs": {}}, "unknown expectation type 'expect_values_to_be_magic'"),
        (
            {"type": "expect_column_values_to_be_between", "kwargs": {"colum": "x", "min_value": 1}},
            "expectation #2, expectation 'expect_column_values_to_be_between': missing argument 'column'; "
            "unknown argument 'colum'",
        ),
        ({"kwargs": {"column": "x"}}, "each expectation needs a 'type'"),
    ],
)
def test_bad_expectation_names_file_entry_and_argument(tmp_path, entry, message):
    good = {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}}
    path = _write(tmp_path, "s/t", {"expectations": [good, entry]})
    with pytest.raises(ConfigError) as info:
        quality.load_suite(tmp_path, "s/t")
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_failing_batch_report_names_table_rules_counts_and_examples(spark, tmp_path):
    df = spark.createDataFrame(
        [(1, "a@example.com", 3), (2, None, 5), (2, "c@example.com", -4)], "id bigint, email string, qty int"
    )
    suite = {
        "name": "t.orders",
        "expectations": [
            {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "id"},
             "meta": {"rule": "id is the primary key"}},
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "email"}},
            {"type": "expect_column_values_to_be_between", "kwargs": {"column": "qty", "min_value": 0}},
            {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "gone", "value_set": [1]}},
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}},
        ],
    }
    report = quality.validate_dataframe(df, suite, table="t.orders", row_count=3)
    assert not report.success
    assert (report.evaluated, report.passed, report.failed) == (5, 1, 4)
    message = report.failure_message()
    assert message.startswith("t.orders: 4 of 5 rules failed on 3 rows (suite 't.orders')")
    assert "expect_column_values_to_be_unique on id (id is the primary key): 2 of 3 rows broke it; e.g. 2, 2" in message
    assert "expect_column_values_to_not_be_null on email: 1 of 3 rows broke it" in message
    assert "expect_column_values_to_be_between on qty: 1 of 3 rows broke it; e.g. -4" in message
    assert "expect_column_values_to_be_in_set on gone: could not be evaluated" in message and '"gone"' in message
    assert "on id:" not in message.split("unique")[1]  # the passing not-null rule is not listed

    path = quality.write_report(report, tmp_path / "q" / "run.json")
    stored = json.loads(path.read_text(encoding="utf-8"))
    assert stored["table"] == "t.orders" and stored["failed"] == 4 and len(stored["results"]) == 5
    assert not list(path.parent.glob(".*.tmp"))


def test_passing_batch(spark):
    df = spark.createDataFrame([(1,), (2,)], "id bigint")
    suite = {"name": "t", "expectations": [{"type": "expect_column_values_to_be_unique", "kwargs": {"column": "id"}}]}
    report = quality.validate_dataframe(df, suite, table="t.t", row_count=2)
    assert report.success and report.evaluated == report.passed == 1 and report.failed == 0


@pytest.mark.parametrize(
    ("kind", "kwargs", "broken", "fine"),
    [
        ("expect_column_values_to_not_be_null", {"column": "v"}, [None], [1]),
        ("expect_column_values_to_be_in_set", {"column": "v", "value_set": ["a", "b"]}, ["c"], ["a", None]),
        ("expect_column_values_to_be_between", {"column": "v", "min_value": 0, "max_value": 1},
         [-1.0, 2.0, float("nan"), float("inf")], [0.0, 1.0, None]),
        ("expect_column_values_to_be_between", {"column": "v", "min_value": 0, "strict_min": True}, [0.0], [0.5]),
        ("expect_column_values_to_match_regex", {"column": "v", "regex": "^[a-z]+$"}, ["A1", "x\x01"], ["abc", None]),
        ("expect_column_value_lengths_to_be_between", {"column": "v", "max_value": 3}, ["abcd"], ["abc", None]),
        ("expect_column_values_to_be_unique", {"column": "v"}, [7, 7], [8]),
    ],
)  # fmt: skip
def test_row_predicates_find_exactly_the_breaking_rows(kind, kwargs, broken, fine):
    import duckdb

    sql = quality.row_predicate(kind, kwargs)
    values = [*broken, *fine]
    conn = duckdb.connect()
    kind_sql = "DOUBLE" if any(isinstance(v, float) for v in values) else (
        "BIGINT" if any(isinstance(v, int) for v in values) else "VARCHAR")  # fmt: skip
    conn.execute(f"CREATE TEMP TABLE lockgate_stage (i INTEGER, v {kind_sql})")
    conn.executemany("INSERT INTO lockgate_stage VALUES (?, ?)", list(enumerate(values)))
    hits = [r[0] for r in conn.execute(f"SELECT i FROM lockgate_stage WHERE coalesce(({sql}), FALSE) ORDER BY i").fetchall()]
    assert hits == list(range(len(broken)))


def test_table_level_rules_have_no_row_predicate():
    assert quality.row_predicate("expect_table_row_count_to_be_between", {"max_value": 3}) is None
    assert quality.row_predicate("expect_column_mean_to_be_between", {"column": "v"}) is None


def test_columns_read_by_a_suite():
    suite = {"expectations": [
        {"type": "expect_table_columns_to_match_set", "kwargs": {"column_set": ["a", "b", "c", "d"]}},
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a"}},
        {"type": "expect_compound_columns_to_be_unique", "kwargs": {"column_list": ["a", "b"]}},
    ]}  # fmt: skip
    assert quality.columns_read(suite) == {"a", "b"}
    conditional = {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a", "row_condition": "d>1"}}
    assert quality.columns_read({"expectations": [conditional]}) is None
    assert quality.columns_read({"expectations": [{"type": "expect_something_new", "kwargs": {}}]}) is None


def test_pruned_batch_keeps_the_schema_and_the_verdicts(spark):
    """Columns no rule reads become typed NULLs: schema rules still pass, value rules see
    the real values, and a rule on a pruned column is impossible by construction."""
    df = spark.createDataFrame(
        [(1, "x" * 50, 3, None), (1, "y", -1, "n")], "id bigint, comment string, qty int, note string"
    )
    suite = {"name": "t", "expectations": [
        {"type": "expect_table_columns_to_match_ordered_list", "kwargs": {"column_list": ["id", "comment", "qty", "note"]}},
        {"type": "expect_column_values_to_be_of_type", "kwargs": {"column": "qty", "type_": "IntegerType"}},
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "id"}},
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "qty", "min_value": 0}},
    ]}  # fmt: skip
    pruned = quality.prune_for_rules(df, suite)
    assert pruned.schema.simpleString() == df.schema.simpleString()
    assert pruned.select("comment", "note").distinct().collect() == [(None, None)]
    full, fast = (quality.validate_dataframe(d, suite, table="t.t", row_count=2) for d in (df, pruned))
    assert [r.success for r in fast.results] == [r.success for r in full.results] == [True, True, False, False]
    assert [r.unexpected_count for r in fast.results] == [r.unexpected_count for r in full.results]


def test_only_rules_that_mean_the_same_on_pandas_are_validated_in_process():
    schema = [{"name": n, "type": t} for n, t in [
        ("id", "bigint"), ("amount", "decimal(12,2)"), ("big", "decimal(38,2)"), ("score", "double"),
        ("name", "string"), ("day", "date"), ("at", "timestamp"), ("due", "timestamp"), ("ok", "boolean")]]  # fmt: skip

    def reason(kind, **kwargs):
        return quality.in_process_reason({"expectations": [{"type": kind, "kwargs": kwargs}]}, schema)

    same = [
        reason("expect_column_values_to_be_unique", column="id"),
        reason("expect_column_values_to_not_be_null", column="day"),
        reason("expect_compound_columns_to_be_unique", column_list=["id", "name"]),
        reason("expect_table_columns_to_match_set", column_set=["id"]),
        reason("expect_column_values_to_be_between", column="amount", min_value=0, max_value=10.5),
        reason("expect_column_values_to_be_in_set", column="name", value_set=["a", "b"]),
        reason("expect_column_values_to_be_in_set", column="id", value_set=[1, 2]),
        reason("expect_column_values_to_match_regex", column="name", regex="^[a-z]+$"),
        reason("expect_column_values_to_not_match_regex", column="name", regex=r"[\x00-\x1F]|\.$"),
    ]
    assert same == [None] * len(same)
    spark_only = {
        "float": reason("expect_column_values_to_not_be_null", column="score"),
        "wide": reason("expect_column_values_to_be_between", column="big", min_value=0),
        "date range": reason("expect_column_values_to_be_between", column="day", min_value="2020-01-01"),
        "text bound": reason("expect_column_values_to_be_between", column="amount", min_value="0"),
        "mixed set": reason("expect_column_values_to_be_in_set", column="id", value_set=[1, "2"]),
        "regex on number": reason("expect_column_values_to_match_regex", column="id", regex="1"),
        "type": reason("expect_column_values_to_be_of_type", column="id", type_="LongType"),
        # \d and \w are Unicode-aware in Python, ASCII in Java; \p{..} is Java only.
        "digit class": reason("expect_column_values_to_match_regex", column="name", regex=r"^\d+$"),
        "unicode class": reason("expect_column_values_to_match_regex", column="name", regex=r"^\p{L}+$"),
        "possessive": reason("expect_column_values_to_match_regex", column="name", regex="^a++$"),
        "condition": reason("expect_column_values_to_be_unique", column="id", row_condition='name=="a"'),
        # With one value missing, GX's pandas engine counts the row, Spark does not.
        "pair": reason("expect_column_pair_values_a_to_be_greater_than_b", column_A="due", column_B="at"),
    }
    assert all(spark_only.values()), {k: v for k, v in spark_only.items() if not v}
    assert "floating-point" in spark_only["float"] and "row_condition" in spark_only["condition"]


def test_a_small_batch_gets_the_same_verdicts_in_process_as_on_spark(spark, tmp_path):
    """The same Parquet batch, with rows breaking each in-process rule, validated by GX's
    Spark engine and by its pandas engine: same verdicts, same counts of bad rows."""
    from decimal import Decimal

    rows = [
        (1, Decimal("5.00"), "ada", True, "2026-01-01 10:00:00", "2026-01-02 10:00:00"),
        (2, Decimal("-1.00"), "bob", False, "2026-01-01 10:00:00", "2026-01-01 09:00:00"),
        (2, None, "Carl9", None, "2026-01-01 10:00:00", None),
        (None, Decimal("99999.99"), "x" * 30, True, "2026-01-01 10:00:00", "2026-01-03 00:00:00"),
        (9007199254740993, Decimal("1.10"), None, False, None, "2026-01-01 00:00:00"),
        (9007199254740992, Decimal("0.10"), "dee", True, "2026-01-01 10:00:00", "2026-01-05 00:00:00"),
    ]
    df = spark.createDataFrame(
        rows, "id bigint, amount decimal(12,2), name string, ok boolean, at string, due string"
    ).selectExpr("id", "amount", "name", "ok", "CAST(at AS timestamp) AS at", "CAST(due AS timestamp) AS due")
    folder = tmp_path / "batch"
    df.coalesce(1).write.parquet(str(folder))
    files = sorted(str(p) for p in folder.glob("*.parquet"))
    suite = {"name": "t", "expectations": [
        {"type": "expect_table_columns_to_match_set", "kwargs": {"column_set": ["id", "amount", "name", "ok", "at", "due"]}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}},
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "id"}},
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "amount", "min_value": 0, "max_value": 1000}},
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "amount", "value_set": [5, 1.1, 0.1, -1]}},
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "ok", "value_set": [True]}},
        {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "name", "regex": "^[a-z]+$"}},
        {"type": "expect_column_value_lengths_to_be_between", "kwargs": {"column": "name", "max_value": 10}},
        {"type": "expect_compound_columns_to_be_unique", "kwargs": {"column_list": ["id", "amount"]}},
    ]}  # fmt: skip
    schema = [{"name": f.name, "type": f.dataType.simpleString()} for f in df.schema.fields]
    assert quality.in_process_reason(suite, schema) is None
    on_spark = quality.validate_dataframe(spark.read.parquet(*files), suite, table="t.t", row_count=len(rows))
    in_process = quality.validate_dataframe(quality.read_batch_pandas(files), suite, table="t.t", row_count=len(rows))
    verdicts = [(r.expectation, r.success, r.unexpected_count) for r in on_spark.results]
    assert [(r.expectation, r.success, r.unexpected_count) for r in in_process.results] == verdicts
    # Every rule but the schema and compound-key ones has bad rows here; the two ids past
    # 2**53 stay distinct (a float64 column would make them duplicates).
    assert dict((kind, ok) for kind, ok, _ in verdicts if not kind.endswith("in_set")) == {
        "expect_table_columns_to_match_set": True, "expect_compound_columns_to_be_unique": True,
        "expect_column_values_to_not_be_null": False, "expect_column_values_to_be_unique": False,
        "expect_column_values_to_be_between": False, "expect_column_values_to_match_regex": False,
        "expect_column_value_lengths_to_be_between": False,
    }  # fmt: skip
    assert sorted(ok for kind, ok, _ in verdicts if kind.endswith("in_set")) == [False, False]
    assert [r.exception for r in in_process.results] == [None] * len(verdicts)
