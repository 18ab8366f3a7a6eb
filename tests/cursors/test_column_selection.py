"""Column selection: ``columns``/``exclude_columns`` and ``hash_columns`` are applied in
the SELECT sent to the source, so excluded and hashed values appear nowhere — not in
the raw Parquet or the manifests, the quarantine, the quality reports and Data Docs,
nor the warehouse. Real PostgreSQL, MariaDB and SQLite."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sqlite3
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from lockgate.config import parse_source
from lockgate.errors import ConfigError

from tests.cursors.typecase import config, ingest, warehouse_table

pytestmark = pytest.mark.integration

SALT = "pepper-for-tests-0123456789"
ROWS = [
    (1, "ada@example.com", "123-45-6789", "Ada", "VIP — call first", "2026-03-01 10:00:00"),
    (2, "bob+1@example.org", "987-65-4321", None, "secret note ünïcödé", "2026-03-01 11:00:00"),
    (3, None, "555-00-1111", "Cy", "owes money", "2026-03-01 12:00:00"),
]
SECRETS = ["ada@example.com", "bob+1@example.org", "123-45-6789", "987-65-4321", "555-00-1111",
           "VIP — call first", "secret note", "owes money"]  # fmt: skip


def _digest(value: str | None) -> str | None:
    return None if value is None else hashlib.sha256((SALT + value).encode("utf-8")).hexdigest()


def _create(engine: str, pg_conn=None, maria=None, db: Path | None = None) -> None:
    ddl = ("CREATE TABLE t (id INTEGER PRIMARY KEY, email VARCHAR(100), ssn VARCHAR(20), name VARCHAR(50), "
           "notes VARCHAR(100), updated_at {ts} NOT NULL)")  # fmt: skip
    if engine == "postgres":
        pg_conn.execute(ddl.format(ts="TIMESTAMP"))
        with pg_conn.cursor() as cur:
            cur.executemany("INSERT INTO t VALUES (%s, %s, %s, %s, %s, %s)", ROWS)
    elif engine == "mariadb":
        with maria.cursor() as cur:
            cur.execute(ddl.format(ts="DATETIME(6)") + " CHARACTER SET utf8mb4")
            cur.executemany("INSERT INTO t VALUES (%s, %s, %s, %s, %s, %s)", ROWS)
    else:
        with sqlite3.connect(db) as conn:
            conn.execute(ddl.format(ts="TIMESTAMP"))
            conn.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?, ?)", ROWS)


def _suite(folder: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "t.json").write_text(json.dumps({"name": "cs.t", "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "name"}, "meta": {"rule": "named"}},
        {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "email", "regex": "^[0-9a-f]{64}$"},
         "meta": {"rule": "email is a SHA-256 hex digest"}},
    ]}), encoding="utf-8")  # fmt: skip


def _leaks(root: Path) -> list[str]:
    """Every secret found in any file under ``root``: Parquet is decoded (it is
    compressed), every other file is searched as bytes."""
    found = []
    for path in (p for p in root.rglob("*") if p.is_file()):
        if path.suffix == ".parquet":
            text = json.dumps(pq.read_table(path).to_pylist(), default=str, ensure_ascii=False)
        else:
            text = path.read_bytes().decode("utf-8", errors="replace")
        found += [f"{s!r} in {path}" for s in SECRETS if s in text or json.dumps(s)[1:-1] in text]
    return found


@pytest.mark.parametrize("engine", ["postgres", "mariadb", "sqlite"])
def test_excluded_and_hashed_values_appear_nowhere(
    engine, request, lake_env, spark, monkeypatch, tmp_path
):  # fmt: skip
    if engine == "postgres":
        database = request.getfixturevalue("pg_database")
        _create(engine, pg_conn=request.getfixturevalue("pg_conn"))
        uri = f"postgres://postgres@127.0.0.1:5432/{database}"
    elif engine == "mariadb":
        database = request.getfixturevalue("mariadb_database")
        _create(engine, maria=request.getfixturevalue("mariadb_conn"))
        uri = f"mysql://root@127.0.0.1:3306/{database}"
    else:
        _create(engine, db=tmp_path / "src.db")
        uri = f"sqlite:///{tmp_path / 'src.db'}"
    monkeypatch.setenv("AIRFLOW_CONN_CS_SRC", uri)
    monkeypatch.setenv("AIRFLOW_VAR_LOCKGATE_HASH_SALT", SALT)
    lake_env = dataclasses.replace(lake_env, expectations_dir=tmp_path / "expectations")
    _suite(tmp_path / "expectations" / "cs")
    cfg = config("cs", "cs_src", mode="merge", cursor="updated_at", exclude_columns=["notes"],
                 hash_columns=["email", "ssn"], expectations="cs/t", on_quality_failure="quarantine")  # fmt: skip
    ingest(cfg, lake_env, spark)
    types, rows = warehouse_table(lake_env, "cs")
    assert list(types) == ["id", "email", "ssn", "name", "updated_at"]
    assert [(r["id"], r["email"], r["ssn"], r["name"]) for r in rows] == [
        (1, _digest("ada@example.com"), _digest("123-45-6789"), "Ada"),
        (3, None, _digest("555-00-1111"), "Cy"),
    ]
    quarantined = list((lake_env.lake_root / "quarantine").rglob("*.parquet"))
    assert quarantined and pq.read_table(quarantined[0]).column("ssn").to_pylist() == [_digest("987-65-4321")]
    assert list((lake_env.lake_root / "quality").rglob("*.html")), "Data Docs were built"
    assert _leaks(lake_env.lake_root) == []
    with __import__("duckdb").connect(str(lake_env.warehouse), read_only=True) as conn:
        dump = json.dumps(conn.execute("SELECT * FROM cs.t").fetchall(), default=str, ensure_ascii=False)
        dump += json.dumps(conn.execute("FROM lockgate.runs").fetchall(), default=str, ensure_ascii=False)
    assert [s for s in SECRETS if s in dump] == []
    assert SALT not in dump


def test_an_include_list_reads_only_those_columns(pg_conn, pg_database, lake_env, spark, monkeypatch):
    _create("postgres", pg_conn=pg_conn)
    monkeypatch.setenv("AIRFLOW_CONN_CS_INC", f"postgres://postgres@127.0.0.1:5432/{pg_database}")
    ingest(config("cs_inc", "cs_inc", columns=["id", "name"]), lake_env, spark)
    types, rows = warehouse_table(lake_env, "cs_inc")
    assert list(types) == ["id", "name"]
    assert [r["name"] for r in rows] == ["Ada", None, "Cy"]
    assert _leaks(lake_env.lake_root) == []


def test_hashing_without_a_salt_fails_before_reading(pg_conn, pg_database, lake_env, spark, monkeypatch):
    _create("postgres", pg_conn=pg_conn)
    monkeypatch.setenv("AIRFLOW_CONN_CS_NOSALT", f"postgres://postgres@127.0.0.1:5432/{pg_database}")
    monkeypatch.delenv("AIRFLOW_VAR_LOCKGATE_HASH_SALT", raising=False)
    with pytest.raises(ConfigError, match="lockgate_hash_salt"):
        ingest(config("cs_nosalt", "cs_nosalt", hash_columns=["email"]), lake_env, spark)
    assert not list(lake_env.lake_root.rglob("*.parquet"))


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"exclude_columns": ["id"]}, "column 'id' is the table's primary key; it may not be excluded"),
        ({"mode": "merge", "cursor": "updated_at", "exclude_columns": ["updated_at"]},
         "column 'updated_at' is the table's cursor; it may not be excluded"),
        ({"columns": ["email"]}, "column 'id' is the table's primary key; 'columns' must include it"),
        ({"hash_columns": ["id"]}, "column 'id' is the table's primary key; it may not be hashed"),
        ({"reconcile_sum": "amount", "hash_columns": ["amount"]}, "reconcile_sum; it may not be hashed"),
        ({"columns": ["id"], "exclude_columns": ["email"]}, "either 'columns'"),
        ({"exclude_columns": ["email"], "hash_columns": ["email"]}, "'email' is in 'hash_columns' but is not read"),
    ],
)  # fmt: skip
def test_selection_that_drops_what_lockgate_needs_is_a_config_error(table, message):
    entry = {"name": "t", "primary_key": ["id"], "mode": "full", **table}
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")) as info:
        parse_source({"source": "cs", "connection": "c", "start_date": "2026-03-01", "tables": [entry]}, "cs.yml")
    assert "cs.yml: table 't'" in str(info.value)
