"""A small source-side harness for the reprocessing scenarios.

``Source`` wraps a real PostgreSQL, MariaDB or SQLite database: it creates the scenario's
tables, changes rows, and runs Lockgate's four stages for an interval exactly as the
DAG's tasks do (one call per task, same run id on a retry). ``assert_converged``
compares the warehouse with the source by row count and a per-table checksum of every
value, normalised across engines, and shows the first differing rows when they differ.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from lockgate import pipeline, warehouse
from lockgate.config import SourceConfig, parse_source
from lockgate.pipeline import RunInfo

DAY0 = datetime(2026, 4, 1, tzinfo=UTC)
SOURCE = "rp"


def day(n: int) -> datetime:
    return DAY0 + timedelta(days=n)


def naive(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None)


TABLE_SQL = {
    "events": (
        "CREATE TABLE events (event_id BIGINT PRIMARY KEY, kind VARCHAR(20) NOT NULL, payload VARCHAR(200), "
        "amount DECIMAL(12,2), created_at {ts} NOT NULL)"
    ),
    "orders": (
        "CREATE TABLE orders (order_id INTEGER PRIMARY KEY, customer VARCHAR(100) NOT NULL, status VARCHAR(20), "
        "amount DECIMAL(12,2), updated_at {ts} NOT NULL)"
    ),
}
TABLE_CONFIG = {
    "events": {"name": "events", "primary_key": ["event_id"], "mode": "append", "cursor": "created_at",
               "partitions": 2, "fetch_size": 500},
    "orders": {"name": "orders", "primary_key": ["order_id"], "mode": "merge", "cursor": "updated_at",
               "partitions": 2, "fetch_size": 500},
}  # fmt: skip


def _sqlite_param(value: Any) -> Any:
    """Python's sqlite3 stores neither Decimal nor (from 3.12) datetime by itself."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    return value


def _norm(value: Any) -> Any:
    if isinstance(value, datetime):
        return naive(value) if value.tzinfo else value
    if isinstance(value, Decimal):
        return str(value.quantize(Decimal("0.01")))
    if isinstance(value, float):
        return str(Decimal(str(value)).quantize(Decimal("0.01")))
    return value


def _sqlite_value(value: Any, declared: str) -> Any:
    """A SQLite text time as the warehouse holds it (naive UTC), other values as they are."""
    if not isinstance(value, str) or not any(t in declared.upper() for t in ("DATE", "TIME")):
        return value
    parsed = datetime.fromisoformat(value.strip())
    if declared.upper() == "DATE":
        return parsed.date()
    return naive(parsed) if parsed.tzinfo else parsed


@dataclass
class Source:
    engine: str  # "postgres" | "mariadb" | "sqlite"
    conn: Any  # an autocommit DB-API connection to the source database
    database: str
    settings: Any
    spark: Any
    tables: dict[str, dict] = field(default_factory=dict)
    runs: int = 0

    @property
    def ts_type(self) -> str:
        return {"postgres": "TIMESTAMP", "sqlite": "DATETIME"}.get(self.engine, "DATETIME(6)")

    @property
    def connection_uri(self) -> str:
        if self.engine == "postgres":
            return f"postgres://postgres@127.0.0.1:5432/{self.database}"
        if self.engine == "sqlite":
            return f"sqlite:///{self.database}"  # database: the file's absolute path
        return f"mysql://root@127.0.0.1:3306/{self.database}"

    # --- source side -------------------------------------------------------------
    def sql(self, statement: str, params: tuple | list | None = None) -> list[tuple]:
        if self.engine == "sqlite":
            cur = self.conn.execute(statement.replace("%s", "?"), params or ())
            return cur.fetchall() if cur.description else []
        if self.engine == "postgres":
            cur = self.conn.execute(statement, params)
            return cur.fetchall() if cur.description else []
        with self.conn.cursor() as cur:
            cur.execute(statement, params)
            return list(cur.fetchall()) if cur.description else []

    def many(self, statement: str, rows: list[tuple]) -> None:
        if self.engine == "sqlite":
            self.conn.executemany(statement.replace("%s", "?"), [tuple(_sqlite_param(v) for v in r) for r in rows])
        elif self.engine == "postgres":
            with self.conn.cursor() as cur:
                cur.executemany(statement, rows)
        else:
            with self.conn.cursor() as cur:
                cur.executemany(statement, rows)

    def create(self, name: str, **overrides: Any) -> None:
        self.sql(TABLE_SQL[name].format(ts=self.ts_type))
        self.tables[name] = {**TABLE_CONFIG[name], **overrides}

    def insert_events(self, first_id: int, count: int, start: datetime, step: timedelta, kind: str = "click"):
        rows = [
            (first_id + i, kind, f"payload {first_id + i} — ünïcödé", Decimal(first_id + i) / 100, naive(start + i * step))
            for i in range(count)
        ]
        self.many("INSERT INTO events (event_id, kind, payload, amount, created_at) VALUES (%s, %s, %s, %s, %s)", rows)

    def insert_orders(self, first_id: int, count: int, start: datetime, step: timedelta, status: str = "placed"):
        rows = [
            (first_id + i, f"customer {i % 17} Ø", status, Decimal(10 * (first_id + i)) / 100, naive(start + i * step))
            for i in range(count)
        ]
        self.many("INSERT INTO orders (order_id, customer, status, amount, updated_at) VALUES (%s, %s, %s, %s, %s)", rows)

    # --- Lockgate side -----------------------------------------------------------
    def config(self) -> SourceConfig:
        return parse_source(
            {
                "source": SOURCE,
                "connection": "rp_src",
                "start_date": DAY0.date().isoformat(),
                "tables": list(self.tables.values()),
            },
            f"{SOURCE}.yml",
        )

    def run_info(self, n: int | None, run_id: str | None = None, **extra: Any) -> RunInfo:
        self.runs += 1
        if n is None:
            return RunInfo(run_id=run_id or f"manual__{self.runs}", run_created=extra.pop("run_created", None), **extra)
        return RunInfo(
            run_id=run_id or f"scheduled__{day(n).date()}__{self.runs}",
            interval_start=day(n),
            interval_end=day(n + 1),
            **extra,
        )

    def stage(self, name: str, table: str, run: RunInfo, raw_path: str | None = None) -> dict[str, Any]:
        config = self.config()
        tbl = config.table(table)
        if name == "extract":
            return pipeline.extract_stage(config, tbl, run, settings=self.settings, spark=self.spark)
        if name == "validate":
            return pipeline.validate_stage(config, tbl, run, raw_path, settings=self.settings, spark=self.spark)
        if name == "load":
            return pipeline.load_stage(config, tbl, run, raw_path, settings=self.settings)
        return pipeline.publish_stage(config, tbl, run, raw_path, settings=self.settings)

    def run(self, table: str, run: RunInfo) -> dict[str, Any]:
        """All four stages of one table, as the task group runs them."""
        extracted = self.stage("extract", table, run)
        self.stage("validate", table, run, extracted["raw_path"])
        loaded = self.stage("load", table, run, extracted["raw_path"])
        self.stage("publish", table, run, extracted["raw_path"])
        return {"rows": extracted["rows"], "raw_path": extracted["raw_path"], "extract": extracted, "load": loaded}

    def run_interval(self, table: str, n: int, **extra: Any) -> dict[str, Any]:
        return self.run(table, self.run_info(n, **extra))

    # --- comparison --------------------------------------------------------------
    def source_rows(self, table: str) -> tuple[list[str], list[tuple]]:
        key = self.tables[table]["primary_key"][0]
        if self.engine == "sqlite":
            declared = [t for _, t in self.sql(f"SELECT name, type FROM pragma_table_info('{table}')")]
            cur = self.conn.execute(f"SELECT * FROM {table} ORDER BY {key}")
            columns = [d[0] for d in cur.description]
            rows = cur.fetchall()
            return columns, [tuple(_norm(_sqlite_value(v, t)) for v, t in zip(r, declared, strict=True)) for r in rows]
        if self.engine == "postgres":
            cur = self.conn.execute(f"SELECT * FROM {table} ORDER BY {key}")
            columns = [d.name for d in cur.description]
            return columns, [tuple(_norm(v) for v in r) for r in cur.fetchall()]
        with self.conn.cursor() as cur:
            cur.execute(f"SELECT * FROM {table} ORDER BY {key}")
            columns = [d[0] for d in cur.description]
            return columns, [tuple(_norm(v) for v in r) for r in cur.fetchall()]

    def warehouse_rows(self, table: str, columns: list[str], where: str = "true") -> list[tuple]:
        key = self.tables[table]["primary_key"][0]
        with warehouse.connect(self.settings, read_only=True) as conn:
            rows = conn.execute(
                f"SELECT {', '.join(warehouse.q(c) for c in columns)} FROM {SOURCE}.{table} WHERE {where} ORDER BY {key}"
            ).fetchall()
        return [tuple(_norm(v) for v in r) for r in rows]

    def fingerprint(self, table: str) -> tuple[int, str]:
        with warehouse.connect(self.settings, read_only=True) as conn:
            return warehouse.table_fingerprint(conn, SOURCE, table)

    def assert_converged(self, table: str, where: str = "true") -> None:
        """Warehouse == source: same row count and checksum over every value."""
        columns, expected = self.source_rows(table)
        actual = self.warehouse_rows(table, columns, where)

        def digest(rows: list[tuple]) -> str:
            return hashlib.sha256(repr(rows).encode()).hexdigest()

        if (len(actual), digest(actual)) != (len(expected), digest(expected)):
            missing = [r for r in expected if r not in actual][:5]
            extra = [r for r in actual if r not in expected][:5]
            raise AssertionError(
                f"{table}: warehouse has {len(actual)} rows, source {len(expected)}; "
                f"missing from the warehouse {missing}; not in the source {extra}"
            )
