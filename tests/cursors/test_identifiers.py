"""Identifiers as they are: mixed-case and quoted names, reserved words, non-ASCII
names, a table in another schema or database, views as sources, a space in a column
name. Each is ingested end to end (extract → validate → load → publish), incrementally
on its odd cursor name, run again, and compared value by value with the source; the
lake's Parquet files and the warehouse keep the source's column names exactly.

Real PostgreSQL, MariaDB and SQLite; the config-level rules are checked without a
database."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from lockgate import warehouse
from lockgate.config import parse_source
from lockgate.cursors import canonical, parse_columns
from lockgate.errors import ConfigError
from lockgate.identifiers import split_qualified

from tests.cursors.helpers import run_between
from tests.reprocessing.harness import SOURCE, day, naive

pytestmark = pytest.mark.integration


SALT = "pepper-for-identifiers-0123"


# --- helpers ------------------------------------------------------------------------
def digest(value: str | None) -> str | None:
    return None if value is None else hashlib.sha256((SALT + value).encode("utf-8")).hexdigest()


def _suite(src, table: str, expectations: list[dict[str, Any]]) -> str:
    """Write a GX suite for ``table`` into a fresh expectations folder; its reference."""
    folder = Path(src.settings.lake_root).parent / "expectations"
    (folder / SOURCE).mkdir(parents=True, exist_ok=True)
    (folder / SOURCE / f"{table}.json").write_text(
        json.dumps({"name": f"{SOURCE}.{table}", "expectations": expectations}), encoding="utf-8"
    )
    src.settings = dataclasses.replace(src.settings, expectations_dir=folder)
    return f"{SOURCE}/{table}"


def _rule(kind: str, **kwargs: Any) -> dict[str, Any]:
    return {"type": kind, "kwargs": kwargs, "meta": {"rule": f"{kind} {kwargs}"}}


def _warehouse(src, table: str, columns: list[str], key: str) -> list[tuple]:
    q = warehouse.q
    with warehouse.connect(src.settings, read_only=True) as conn:
        sql = f"SELECT {', '.join(q(c) for c in columns)} FROM {q(SOURCE)}.{q(table)} ORDER BY {q(key)}"
        return conn.execute(sql).fetchall()


def _warehouse_columns(src, table: str) -> list[str]:
    with warehouse.connect(src.settings, read_only=True) as conn:
        return list(warehouse.table_columns(conn, SOURCE, table))


def _source(src, sql: str) -> tuple[list[str], list[tuple]]:
    if src.engine == "sqlite":
        cur = src.conn.execute(sql)
    elif src.engine == "postgres":
        cur = src.conn.execute(sql)
    else:
        cur = src.conn.cursor()
        cur.execute(sql)
    names = [d[0] for d in cur.description]
    return names, [tuple(r) for r in cur.fetchall()]


def _assert_same(src, table: str, sql: str, key: str, convert=None) -> list[str]:
    """Warehouse == source, value by value (``convert`` turns a source row into the
    warehouse's representation); returns the source's column names."""
    names, rows = _source(src, sql)
    expected = [convert(r) if convert else r for r in rows]
    actual = _warehouse(src, table, names, key)
    assert len(actual) == len(expected), f"{table}: warehouse {len(actual)} rows, source {len(expected)}"
    diff = [(e, a) for e, a in zip(expected, actual, strict=True) if e != a][:3]
    assert not diff, f"{table}: first differences (source, warehouse): {diff}"
    return names


def _report(src, table: str) -> dict:
    """The table's newest quality report."""
    reports = sorted((Path(src.settings.lake_root) / "quality" / SOURCE / table).glob("*.json"), key=lambda p: p.stat().st_mtime)
    return json.loads(reports[-1].read_text(encoding="utf-8"))


def _quality(src, table: str) -> tuple[int, int]:
    """(rules evaluated, rules passed) of the table's newest quality report."""
    report = _report(src, table)
    return report["evaluated"], report["passed"]


def _lake_columns(result: dict) -> list[str]:
    files = sorted(Path(result["raw_path"]).glob("part-*.parquet"))
    return pq.read_schema(files[0]).names


# --- PostgreSQL: a quoted mixed-case table, reserved and non-ASCII column names ------
PG_ORDER = '''
CREATE TABLE "Order" (
    "OrderId" integer PRIMARY KEY,
    "LastUpdate" timestamp NOT NULL,
    "group" text,
    "user" text,
    café text,
    "Größe" numeric(10,2) NOT NULL,
    "Say ""hi""" text,
    secret text
)
'''
PG_ORDER_ROWS = """
INSERT INTO "Order" SELECT i, TIMESTAMP '2026-04-01 00:00' + i * INTERVAL '5 seconds', 'g' || (i % 7),
  CASE WHEN i % 3 = 0 THEN NULL ELSE 'u' || i END, 'crème ' || i, i / 100.0, 'quote " ' || i, 's3cr3t'
FROM generate_series(1, 12000) AS i
"""


def _pg_order(src, **overrides: Any) -> None:
    src.sql(PG_ORDER)
    src.sql(PG_ORDER_ROWS)
    src.sql('ANALYZE "Order"')
    expectations = _suite(src, "order", [
        _rule("expect_column_values_to_not_be_null", column="café"),
        _rule("expect_column_values_to_match_regex", column="group", regex="^g[0-6]$"),
        _rule("expect_column_values_to_be_between", column="Größe", min_value=0, max_value=1000),
        _rule("expect_column_values_to_be_unique", column="OrderId"),
    ])  # fmt: skip
    src.tables["order"] = {
        "name": "order", "source_table": "Order", "primary_key": ["OrderId"], "mode": "merge",
        "cursor": "LastUpdate", "partition_column": "OrderId", "partitions": 3, "chunk_rows": 11000,
        "reconcile_sum": "Größe", "exclude_columns": ["secret"], "expectations": expectations,
        "on_quality_failure": "fail", **overrides,
    }  # fmt: skip


@pytest.mark.parametrize("reader", ["arrow", "jdbc"])
def test_postgres_quoted_mixed_case_table_and_columns(pg_source, reader):
    src = pg_source
    _pg_order(src, reader=reader)
    first = run_between(src, "order", day(0), day(1))
    assert first["rows"] == 12000
    assert _lake_columns(first) == ["OrderId", "LastUpdate", "group", "user", "café", "Größe", 'Say "hi"']
    assert _warehouse_columns(src, "order") == _lake_columns(first)
    manifest = json.loads((Path(first["raw_path"]) / "_manifest.json").read_text(encoding="utf-8"))
    assert len(manifest["chunks"]) == 2 and manifest["partitions"] == 3 and manifest["reader"] == reader
    evaluated, passed = _quality(src, "order")
    assert evaluated >= 4 and passed == evaluated  # the suite's four rules and Lockgate's own checks
    src.sql('UPDATE "Order" SET "group" = \'g0\', "LastUpdate" = %s WHERE "OrderId" <= 10', (naive(day(1)),))
    src.sql('INSERT INTO "Order" VALUES (20000, %s, \'g1\', \'new\', \'né\', 1.25, \'x\', \'s\')', (naive(day(1)),))
    second = run_between(src, "order", day(1), day(2))
    assert second["rows"] == 11
    again = run_between(src, "order", day(1), day(2), tag="again")
    assert again["rows"] == 11
    sql = 'SELECT "OrderId", "LastUpdate", "group", "user", café, "Größe", "Say ""hi""" FROM "Order" ORDER BY 1'
    _assert_same(src, "order", sql, "OrderId")


@pytest.mark.parametrize("schema", ["sales", '"Sales Dept"'])  # a plain and a quoted (mixed case, space) schema
def test_postgres_view_in_another_schema(pg_source, schema):
    src = pg_source
    src.sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    src.sql(f"CREATE SCHEMA {schema}")
    src.sql(f'CREATE TABLE {schema}.orders (id integer PRIMARY KEY, "Created At" timestamp NOT NULL, '
            '"LastUpdate" timestamp, "order" text, "Größe" integer)')  # fmt: skip
    rows = [(i, naive(day(0) + timedelta(minutes=i)), None if i % 2 else naive(day(0) + timedelta(minutes=i, seconds=30)),
             f"o{i}", i * 3) for i in range(1, 41)]  # fmt: skip
    src.many(f"INSERT INTO {schema}.orders VALUES (%s, %s, %s, %s, %s)", rows)
    src.sql(f'CREATE VIEW {schema}."Open Orders" AS SELECT id, "Created At", "LastUpdate", "order", "Größe" '
            f"FROM {schema}.orders WHERE id % 10 <> 0")  # fmt: skip
    src.tables["open_orders"] = {
        "name": "open_orders", "source_table": f'{schema}."Open Orders"', "primary_key": ["id"], "mode": "append",
        "cursor": {"coalesce": ["LastUpdate", "Created At"]}, "reconcile_sum": "Größe", "fetch_size": 7,
    }  # fmt: skip
    assert run_between(src, "open_orders", day(0), day(1))["rows"] == 36
    src.sql(f"INSERT INTO {schema}.orders VALUES (41, %s, NULL, 'late', 1)", (naive(day(1) + timedelta(hours=1)),))
    run_between(src, "open_orders", day(1), day(2))
    run_between(src, "open_orders", day(0), day(1), tag="again")
    sql = f'SELECT id, "Created At", "LastUpdate", "order", "Größe" FROM {schema}."Open Orders" ORDER BY id'
    _assert_same(src, "open_orders", sql, "id")


def test_postgres_columns_differing_only_in_case_are_refused_at_the_first_run(pg_source):
    src = pg_source
    src.sql('CREATE TABLE t ("Id" integer PRIMARY KEY, id integer, "LastUpdate" timestamp NOT NULL)')
    src.sql("INSERT INTO t VALUES (1, 1, '2026-04-01 10:00')")
    src.tables["t"] = {"name": "t", "primary_key": ["Id"], "mode": "merge", "cursor": "LastUpdate"}
    with pytest.raises(ConfigError, match=r"columns 'Id' and 'id' .*same warehouse column"):
        run_between(src, "t", day(0), day(1))
    assert not list(Path(src.settings.lake_root).rglob("*.parquet"))
    src.tables["t"]["exclude_columns"] = ["id"]  # the documented way out
    assert run_between(src, "t", day(0), day(1))["rows"] == 1


# --- MariaDB: a reserved-word table in a second database ------------------------------
@pytest.fixture
def other_maria_db(maria_source):
    name = f"lockgate_other_{uuid.uuid4().hex[:8]}"
    maria_source.sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    yield name
    maria_source.sql(f"DROP DATABASE `{name}`")


def test_mariadb_reserved_table_in_another_database(maria_source, other_maria_db):
    src, db = maria_source, other_maria_db
    src.sql(f"CREATE TABLE `{db}`.`order` (`Id` BIGINT PRIMARY KEY, `LastUpdate` DATETIME(6) NOT NULL, "
            "`group` VARCHAR(20), `user` VARCHAR(20), `café` VARCHAR(40), `Größe` DECIMAL(10,2), `back``tick` INT) "
            "CHARACTER SET utf8mb4")  # fmt: skip
    rows = [(i, naive(day(0) + timedelta(minutes=11 * i, microseconds=i)), f"g{i % 3}", None if i % 4 == 0 else f"u{i}",
             f"crème {i} 😀", i / 4, i) for i in range(1, 61)]  # fmt: skip
    src.many(f"INSERT INTO `{db}`.`order` VALUES (%s, %s, %s, %s, %s, %s, %s)", rows)
    expectations = _suite(src, "order", [_rule("expect_column_values_to_not_be_null", column="café"),
                                         _rule("expect_column_values_to_be_unique", column="Id")])  # fmt: skip
    src.tables["order"] = {
        "name": "order", "source_table": f"{db}.order", "primary_key": ["Id"], "mode": "append",
        "cursor": "LastUpdate", "reconcile_sum": "Größe", "partitions": 2, "chunk_rows": 25,
        "expectations": expectations,
    }  # fmt: skip
    first = run_between(src, "order", day(0), day(1))
    assert _lake_columns(first) == ["Id", "LastUpdate", "group", "user", "café", "Größe", "back`tick"]
    src.sql(f"INSERT INTO `{db}`.`order` VALUES (100, %s, 'g9', 'late', 'neu', 2.50, 7)", (naive(day(1)),))
    run_between(src, "order", day(1), day(2))
    run_between(src, "order", day(0), day(1), tag="again")
    run_between(src, "order", day(1), day(2), tag="again")
    sql = f"SELECT `Id`, `LastUpdate`, `group`, `user`, `café`, `Größe`, `back``tick` FROM `{db}`.`order` ORDER BY 1"
    _assert_same(src, "order", sql, "Id")


# --- a dot in column names, validated by both GX engines --------------------------------
@pytest.mark.parametrize("engine", ["pandas", "duckdb", "spark"])
def test_postgres_dotted_column_names_through_every_validation_engine(pg_source, monkeypatch, engine):
    """Spark reads ``a.b`` as a field of a struct unless the name is quoted: a rule on a
    dotted column must check that column on the Spark and DuckDB engines as on the
    pandas one."""
    from dataclasses import replace

    from lockgate import quality

    src = pg_source
    if engine != "pandas":
        monkeypatch.setattr(quality, "IN_PROCESS_ROWS", 0)
    if engine == "spark":
        src.settings = replace(src.settings, validation_engine="spark")
    src.sql('CREATE TABLE "fx.rates" (id integer PRIMARY KEY, "amount.eur" integer, "at.utc" timestamp NOT NULL)')
    src.many('INSERT INTO "fx.rates" VALUES (%s, %s, %s)',
             [(i, None if i == 7 else i * 10, naive(day(0) + timedelta(minutes=i))) for i in range(1, 31)])  # fmt: skip
    expectations = _suite(src, "fx_rates", [_rule("expect_column_values_to_not_be_null", column="amount.eur"),
                                            _rule("expect_column_values_to_be_between", column="amount.eur", max_value=250),
                                            _rule("expect_column_values_to_be_unique", column="id")])  # fmt: skip
    src.tables["fx_rates"] = {
        "name": "fx_rates", "source_table": '"fx.rates"', "primary_key": ["id"], "mode": "append",
        "cursor": '"at.utc"', "expectations": expectations, "on_quality_failure": "quarantine",
    }  # fmt: skip
    first = run_between(src, "fx_rates", day(0), day(1))
    assert _lake_columns(first) == ["id", "amount.eur", "at.utc"]
    assert first["load"]["rows_quarantined"] == 6  # id 7 (NULL) and ids 26..30 (> 250)
    quarantined = next((Path(src.settings.lake_root) / "quarantine").rglob("*.parquet"))
    assert sorted(pq.read_table(quarantined).column("id").to_pylist()) == [7, 26, 27, 28, 29, 30]
    assert _quality(src, "fx_rates") == (4, 2)  # the suite's 3 rules and the row-count check
    assert _report(src, "fx_rates")["engine"] == engine
    sql = 'SELECT id, "amount.eur", "at.utc" FROM "fx.rates" WHERE id <> 7 AND "amount.eur" <= 250 ORDER BY id'
    _assert_same(src, "fx_rates", sql, "id")


# --- SQLite: spaces and a keyword in names ---------------------------------------------
def test_sqlite_space_and_keyword_in_column_names(sqlite_source, monkeypatch):
    src = sqlite_source
    monkeypatch.setenv("AIRFLOW_VAR_LOCKGATE_HASH_SALT", SALT)
    src.sql('CREATE TABLE "line items" ("item id" INTEGER PRIMARY KEY, "Updated At" DATETIME NOT NULL, '
            '"select" TEXT, "Größe" INTEGER, "note ""quoted""" TEXT)')  # fmt: skip
    stamps = [(day(0) + timedelta(minutes=13 * i)).strftime("%Y-%m-%d %H:%M:%S") for i in range(1, 51)]
    src.many('INSERT INTO "line items" VALUES (%s, %s, %s, %s, %s)',
             [(i, stamps[i - 1], f"s{i}", i * 2, f'say "{i}"') for i in range(1, 51)])  # fmt: skip
    expectations = _suite(src, "line_items", [_rule("expect_column_values_to_not_be_null", column="select"),
                                              _rule("expect_column_values_to_be_unique", column="item id"),
                                              _rule("expect_column_values_to_be_between", column="Größe", max_value=90)])  # fmt: skip
    src.tables["line_items"] = {
        "name": "line_items", "source_table": "line items", "primary_key": ["item id"], "mode": "merge",
        "cursor": '"Updated At"', "reconcile_sum": "Größe", "hash_columns": ["note \"quoted\""], "expectations": expectations,
        "on_quality_failure": "quarantine",
    }  # fmt: skip
    first = run_between(src, "line_items", day(0), day(1))
    assert _lake_columns(first) == ["item id", "Updated At", "select", "Größe", 'note "quoted"']
    assert first["load"]["rows_quarantined"] == 5  # "Größe" > 90: items 46..50
    quarantined = next((Path(src.settings.lake_root) / "quarantine").rglob("*.parquet"))
    assert pq.read_table(quarantined).column("item id").to_pylist() == [46, 47, 48, 49, 50]
    evaluated, passed = _quality(src, "line_items")
    assert evaluated >= 3 and passed == evaluated - 1  # only the rule on "Größe" failed
    later = (day(1) + timedelta(hours=2)).strftime("%Y-%m-%d %H:%M:%S")
    src.sql('UPDATE "line items" SET "select" = \'changed\', "Updated At" = %s WHERE "item id" IN (3, 4)', (later,))
    run_between(src, "line_items", day(1), day(2))
    run_between(src, "line_items", day(1), day(2), tag="again")

    def convert(row: tuple) -> tuple:
        return (row[0], datetime.fromisoformat(row[1]), *row[2:4], digest(row[4]))

    sql = ('SELECT "item id", "Updated At", "select", "Größe", "note ""quoted""" FROM "line items" '
           'WHERE "Größe" <= 90 ORDER BY 1')  # fmt: skip
    _assert_same(src, "line_items", sql, "item id", convert)


# --- the config rules (no database) ---------------------------------------------------
def _table(**entry: Any):
    base = {"name": "t", "primary_key": ["Id"], "mode": "full", **entry}
    return parse_source({"source": "ids", "connection": "c", "start_date": "2026-03-01", "tables": [base]}, "ids.yml")


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("orders", ("orders",)),
        ("Order", ("Order",)),
        ("sales.orders", ("sales", "orders")),
        ('sales."Open Orders"', ("sales", "Open Orders")),
        ('"a.b"', ("a.b",)),
        ('"x""y".café', ('x"y', "café")),
        ("line items", ("line items",)),
    ],
)
def test_source_table_names_split_into_schema_and_table(text, parts):
    assert split_qualified(text) == parts
    assert _table(source_table=text).tables[0].source_parts == parts


@pytest.mark.parametrize("text", ["a.b.c", "", "a.", '"open', 'a"b', "a\nb"])
def test_bad_source_table_names_are_refused(text):
    with pytest.raises(ConfigError, match="source_table"):
        _table(source_table=text)


@pytest.mark.parametrize(
    "value",
    ["LastUpdate", "Last Update", "café", "order", '"COALESCE(x)"', {"coalesce": ["Updated At", "a,b", 'q"t']},
     'COALESCE("Updated At", created_at)'],
)  # fmt: skip
def test_cursor_names_round_trip(value):
    columns = parse_columns(value)
    assert parse_columns(canonical(columns)) == columns
    assert _table(mode="merge", cursor=value).tables[0].cursor_columns == columns


def test_quoted_names_in_config_mean_the_name_inside():
    table = _table(primary_key=['"Id"'], cursor='"LastUpdate"', mode="merge", columns=["Id", '"LastUpdate"']).tables[0]
    assert table.primary_key == ["Id"] and table.cursor_columns == ("LastUpdate",) and table.columns == ["Id", "LastUpdate"]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"columns": ["Id", "id"]}, "columns 'Id' and 'id' map to the same warehouse column"),
        ({"primary_key": ["Id", "ID"]}, "columns 'Id' and 'ID' map to the same warehouse column"),
        ({"hash_columns": ["email", "Email"]}, "columns 'email' and 'Email' map to the same warehouse column"),
        ({"exclude_columns": ["a\tb"]}, "control character"),
        ({"primary_key": [""]}, "empty"),
        ({"mode": "merge", "cursor": {"coalesce": ["Last Update", "created"]}, "exclude_columns": ["created"]},
         "column 'created' is the table's cursor; it may not be excluded"),
        ({"mode": "merge", "cursor": '"COALESCE(x)"', "hash_columns": ["COALESCE(x)"]},
         r"column 'COALESCE\(x\)' is the table's cursor; it may not be hashed"),
    ],
)
def test_colliding_or_bad_column_names_are_refused_at_config_load(entry, message):
    with pytest.raises(ConfigError, match=message):
        _table(**entry)


def test_warehouse_table_names_differing_only_in_case_are_refused():
    with pytest.raises(ConfigError, match="tables 'Orders' and 'orders' map to the same warehouse table"):
        parse_source({"source": "ids", "connection": "c", "start_date": "2026-03-01", "tables": [
            {"name": "Orders", "mode": "full"}, {"name": "orders", "mode": "full"}]}, "ids.yml")  # fmt: skip
