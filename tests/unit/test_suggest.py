"""``lockgate suggest-suite`` proposes rules a data engineer would keep: NOT NULL from the
source's catalog, keys unique, value sets only where the whole table shows a small
domain, and ranges only where they cannot fail the next batch (no keys, ids, times or
anything that grows; a sign bound, an upper bound only for a ceiling reached again and
again). Real databases: PostgreSQL, MariaDB and the demo's SQLite, through the command
as users run it."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from lockgate import cli, quality

from tests.conftest import MARIA_HOST, MARIA_PORT, MARIA_USER, PG_HOST, PG_PORT, PG_USER, _fresh_pg_database
from tests.leaks import find

pytestmark = pytest.mark.integration

#: A DVD-rental-like table: 50,000 rentals, then (in the test) 1,000 new ones.
RENTAL_DDL = """
CREATE TYPE mpaa_rating AS ENUM ('G', 'PG', 'PG-13', 'R', 'NC-17');
CREATE TABLE rental (
    rental_id    serial PRIMARY KEY,
    rental_date  timestamp NOT NULL,
    inventory_id integer NOT NULL,
    customer_id  smallint NOT NULL,
    return_date  timestamp,
    staff_id     smallint NOT NULL,
    last_update  timestamp NOT NULL,
    uuid         uuid NOT NULL,
    status       text NOT NULL,
    amount       numeric(5,2) NOT NULL,
    quantity     smallint,
    rating       mpaa_rating NOT NULL
);
"""


def _rental_rows(first: int, count: int, customers: int, staff: int) -> str:
    """``count`` rentals from id ``first`` on, five minutes apart; amounts 0.99 + k with
    k exponential (a long tail that rarely passes 8.99), quantities 1..5."""
    return f"""
    SELECT setseed({first / 1e6});
    INSERT INTO rental (rental_id, rental_date, inventory_id, customer_id, return_date, staff_id, last_update,
                        uuid, status, amount, quantity, rating)
    SELECT g, t.at, 1 + floor(random() * 4581)::int, 1 + floor(random() * {customers})::int,
           CASE WHEN random() < 0.05 THEN NULL ELSE t.at + (1 + floor(random() * 9)) * interval '1 day' END,
           1 + floor(random() * {staff})::int, t.at + interval '1 hour', gen_random_uuid(),
           (ARRAY['rented', 'returned', 'late', 'lost_and_paid'])[1 + floor(random() * 4)::int],
           0.99 + least(floor(-ln(1 - random())), 11), 1 + floor(random() * 5)::int,
           (ARRAY['G', 'PG', 'PG-13', 'R'])[1 + floor(random() * 4)::int]::mpaa_rating
    FROM generate_series({first}, {first + count - 1}) g,
         LATERAL (SELECT timestamp '2005-05-24 22:00' + g * interval '5 minutes' AS at) t;
    SELECT setval('rental_rental_id_seq', {first + count - 1});
    """


@pytest.fixture(scope="module")
def rental_db():
    """A fresh PostgreSQL database with 50,000 analysed rentals; yields its name."""
    import psycopg

    with _fresh_pg_database("lockgate_suggest") as name:
        with psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=name, autocommit=True) as conn:
            conn.execute(RENTAL_DDL)
            conn.execute(_rental_rows(1, 50_000, customers=599, staff=2))
            # The insert's statistics reach pg_stat_all_tables before ANALYZE, as on a
            # table loaded long ago (else n_mod_since_analyze says the stats are stale).
            conn.execute("SELECT pg_stat_force_next_flush()")
            conn.execute("ANALYZE rental")
        yield name


def _pg(database: str):
    import psycopg

    return psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=database, autocommit=True)


def _project(tmp_path: Path, monkeypatch, source: str, connection_uri: str, table: str, **settings) -> Path:
    """A source file for ``source`` (one table) in a fresh sources folder, its connection
    in ``AIRFLOW_CONN_<SOURCE>_DB``; returns the expectations folder."""
    lines = [f"source: {source}", f"connection: {source}_db", "start_date: 2026-01-01", "tables:",
             f"  - name: {table}"] + [f"    {key}: {value}" for key, value in settings.items()]  # fmt: skip
    (tmp_path / "sources").mkdir(exist_ok=True)
    (tmp_path / "sources" / f"{source}.yml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    monkeypatch.setenv(f"AIRFLOW_CONN_{source.upper()}_DB", connection_uri)
    monkeypatch.setenv("LOCKGATE_SOURCES_DIR", str(tmp_path / "sources"))
    monkeypatch.setenv("LOCKGATE_EXPECTATIONS_DIR", str(tmp_path / "expectations"))
    return tmp_path / "expectations"


def _suggest(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(["suggest-suite", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _rules(suite: dict) -> dict[tuple[str, str], list[dict]]:
    """The suite's rules by (type, column or "a, b")."""
    found: dict[tuple[str, str], list[dict]] = {}
    for rule in suite["expectations"]:
        kwargs = rule["kwargs"]
        target = kwargs.get("column") or ", ".join(kwargs.get("column_list") or [])
        found.setdefault((rule["type"], target), []).append(rule)
    return found


def _bounds(rules: dict, column: str) -> tuple[object, object]:
    """(min_value, max_value) of a column's range rules (None where there is none)."""
    low = high = None
    for rule in rules.get(("expect_column_values_to_be_between", column), []):
        low = rule["kwargs"].get("min_value", low)
        high = rule["kwargs"].get("max_value", high)
    return low, high


def _batch(tmp_path: Path, columns: list[str], rows: list[tuple]):
    """Rows as the in-process validation reads a batch: Parquet through
    :func:`quality.read_batch_pandas` (exact integers, decimals as float64)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    plain = [{c: (str(v) if type(v).__name__ == "UUID" else v) for c, v in zip(columns, row, strict=True)} for row in rows]
    path = tmp_path / f"batch-{len(list(tmp_path.glob('batch-*')))}.parquet"
    pq.write_table(pa.Table.from_pylist(plain), path)
    return quality.read_batch_pandas([str(path)])


def _select(database: str, sql: str) -> tuple[list[str], list[tuple]]:
    with _pg(database) as conn:
        cursor = conn.execute(sql)
        return [d.name for d in cursor.description], cursor.fetchall()


def _failed(report) -> set[tuple[str, str]]:
    return {(r.expectation, r.kwargs.get("column") or "") for r in report.results if not r.success}


def test_growth_and_ceilings_from_the_halves_of_a_sample():
    """A random long tail neither grows nor has a ceiling, whatever the draw; a
    sequence, a falling count and a noisy rising price move; a cap is reached again."""
    import random

    from lockgate.source_profile import Halves

    rng = random.Random(7)
    for _ in range(300):
        tail = [round(rng.expovariate(0.5), 2) for _ in range(rng.choice([40, 400, 4000]))]
        assert Halves.split(tail).moves() is None and not Halves.split(tail).repeated(max(tail)), tail
    assert Halves.split(list(range(1000))).moves() == "grows"
    assert Halves.split([1000 - i for i in range(1000)]).moves() == "falls"
    assert Halves.split([100 + i * 0.05 + rng.uniform(-10, 10) for i in range(1000)]).moves() == "grows"
    capped = Halves.split([min(100, rng.randint(0, 130)) for _ in range(1000)])
    assert capped.moves() is None and capped.repeated(100)


def test_integer_columns_named_like_identifiers():
    from lockgate.source_profile import ColumnProfile

    ids = ["id", "ID", "customer_id", "STAFF_ID", "sort_key", "CustomerId", "storeID", "ParentKey"]
    others = ["paid", "valid", "monkey", "hockey", "quantity", "idle", "key_count", "Paid"]
    assert [n for n in ids if not ColumnProfile(n, "integer", "integer").id_like] == []
    assert [n for n in others if ColumnProfile(n, "integer", "integer").id_like] == []
    assert not ColumnProfile("customer_id", "text", "text").id_like  # a text code may still get a set


# --- PostgreSQL: the DVD-rental table of the issue -------------------------------------
def test_rental_suite_passes_the_next_batch_and_the_whole_table(rental_db, tmp_path, monkeypatch, capsys):
    expectations = _project(tmp_path, monkeypatch, "dvd", f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{rental_db}",
                            "rental", primary_key="[rental_id]", mode="merge", cursor="last_update")  # fmt: skip
    code, out, err = _suggest(capsys, "dvd", "rental")
    assert code == 0, err
    suite = quality.load_suite(expectations, "dvd/rental")
    rules = _rules(suite)

    declared_not_null = ["rental_id", "rental_date", "inventory_id", "customer_id", "staff_id", "last_update",
                         "uuid", "status", "amount", "rating"]  # fmt: skip
    not_null = {c for kind, c in rules if kind == "expect_column_values_to_not_be_null"}
    assert not_null == set(declared_not_null)  # return_date and quantity are nullable
    assert ("expect_column_values_to_be_unique", "rental_id") in rules
    for column in ["rental_id", "customer_id", "inventory_id", "staff_id", "rental_date", "return_date", "last_update"]:
        assert _bounds(rules, column) == (None, None), column
        assert ("expect_column_values_to_be_in_set", column) not in rules, column
    status = rules[("expect_column_values_to_be_in_set", "status")][0]
    assert status["kwargs"]["value_set"] == sorted(["rented", "returned", "late", "lost_and_paid"])
    assert status["meta"]["evidence"] == {"from": "pg_stats", "n_distinct": 4, "rows": 50_000}
    rating = rules[("expect_column_values_to_be_in_set", "rating")][0]
    assert rating["kwargs"]["value_set"] == ["G", "PG", "PG-13", "R", "NC-17"]  # declared, NC-17 never used
    assert _bounds(rules, "amount") == (0, None)
    low, high = _bounds(rules, "quantity")
    assert low == 0 and 5 < high <= 6
    assert ("expect_column_values_to_be_in_set", "uuid") not in rules
    for rule in suite["expectations"]:
        assert rule["meta"]["rule"] and rule["meta"]["evidence"]["from"], rule
    assert suite["meta"]["profiled"]["rows"] == 50_000 and suite["meta"]["profiled"]["engine"] == "postgres"
    assert 9_000 < suite["meta"]["profiled"]["sample_rows"] < 11_000  # --sample's default, spread over the table
    # The review: what was proposed for each column and why, and what not and why.
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    assert "unique (primary key)" in lines["rental_id"] and "no range: a key" in lines["rental_id"]
    assert "no range: an id" in lines["customer_id"] and "no range: a time grows" in lines["rental_date"]
    assert ">= 0 (no negative value in 50,000 rows)" in lines["amount"] and "long tail" in lines["amount"]
    assert "nothing: nullable" in lines["return_date"] and "one of 4 values (pg_stats)" in lines["status"]
    assert suite["meta"]["columns"]["quantity"] == lines["quantity"].split(None, 1)[1]

    # The next batch: ids above 50,000, later dates, new customers and a third clerk.
    with _pg(rental_db) as conn:
        conn.execute(_rental_rows(50_001, 1_000, customers=650, staff=3))
    columns, rows = _select(rental_db, "SELECT * FROM rental WHERE rental_id > 50000 ORDER BY rental_id")
    assert max(r[columns.index("customer_id")] for r in rows) > 599
    new_batch = _batch(tmp_path, columns, rows)
    report = quality.validate_dataframe(new_batch, suite, table="dvd.rental", row_count=len(rows))
    assert report.success, report.failure_message()
    columns, everything = _select(rental_db, "SELECT * FROM rental")
    report = quality.validate_dataframe(_batch(tmp_path, columns, everything), suite, table="dvd.rental")
    assert report.success, report.failure_message()

    # A batch with a NULL customer, a repeated rental, an unknown status, a negative amount.
    bad = [list(r) for r in rows[:10]]
    bad[0][columns.index("customer_id")] = None
    bad[2][columns.index("rental_id")] = bad[1][columns.index("rental_id")]
    bad[3][columns.index("status")] = "lost"
    bad[4][columns.index("amount")] = Decimal("-1.00")
    report = quality.validate_dataframe(_batch(tmp_path, columns, [tuple(r) for r in bad]), suite, table="dvd.rental")
    assert _failed(report) == {
        ("expect_column_values_to_not_be_null", "customer_id"),
        ("expect_column_values_to_be_unique", "rental_id"),
        ("expect_column_values_to_be_in_set", "status"),
        ("expect_column_values_to_be_between", "amount"),
    }


PASSWORD = "s3cr%40t'pw/x"  # trust authentication: PostgreSQL ignores it, the command must not print it


def test_the_command_refuses_to_replace_a_suite_and_never_prints_the_password(rental_db, tmp_path, monkeypatch, capsys):
    from urllib.parse import quote

    uri = f"postgresql://{PG_USER}:{quote(PASSWORD, safe='')}@{PG_HOST}:{PG_PORT}/{rental_db}"
    expectations = _project(tmp_path, monkeypatch, "dvd", uri, "rental", primary_key="[rental_id]", mode="full")
    code, out, err = _suggest(capsys, "dvd", "rental", "--sample", "500")
    assert code == 0, err
    path = expectations / "dvd" / "rental.json"
    assert f"wrote {path}" in out and "rental_id" in out
    assert quality.load_suite(expectations, "dvd/rental")["meta"]["profiled"]["sample_rows"] < 1_000
    written = path.read_text(encoding="utf-8")

    code, out2, err2 = _suggest(capsys, "dvd", "rental")
    assert code == 2 and f"{path} exists; review it, or pass --force to replace it" in err2
    assert path.read_text(encoding="utf-8") == written
    assert _suggest(capsys, "dvd", "rental", "--force")[0] == 0

    monkeypatch.setenv("AIRFLOW_CONN_DVD_DB", uri.replace(f":{PG_PORT}/", ":1/"))  # nothing listens there
    code, out3, err3 = _suggest(capsys, "dvd", "rental", "--force")
    assert code == 2 and "error: source jdbc:postgresql://" in err3 and "table 'rental'" in err3
    for text in (out, err, out2, err2, out3, err3, written):
        assert not find(text, PASSWORD), find(text, PASSWORD)


PAYMENT_DDL = """
CREATE TABLE customer (customer_id integer PRIMARY KEY);
INSERT INTO customer SELECT generate_series(1, 50);
CREATE TABLE payment (
    payment_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id integer NOT NULL REFERENCES customer,
    paid_on     date,
    receipt_no  integer NOT NULL,
    store       varchar(10) NOT NULL,
    note        text,
    delta       integer NOT NULL,
    ratio       double precision,
    secret      text,
    "Zone %s"   text NOT NULL,
    UNIQUE (customer_id, paid_on)
) WITH (autovacuum_enabled = false);
INSERT INTO payment (customer_id, paid_on, receipt_no, store, note, delta, ratio, secret, "Zone %s")
SELECT 1 + g % 50, CASE WHEN g % 7 = 0 THEN NULL ELSE date '2024-01-01' + g / 50 END, 1000 + 3 * g,
       CASE WHEN g % 3 = 0 THEN 'Lyon' ELSE 'Nantes' END, 'note ' || g, (g * 7) % 11 - 5,
       CASE WHEN g = 77 THEN 'NaN'::float8 ELSE g / 10.0 END, 'pin ' || g, CASE WHEN g % 2 = 0 THEN 'N' ELSE 'S' END
FROM generate_series(1, 2000) g;
"""


def test_postgres_without_statistics_keys_foreign_keys_and_growth(pg_conn, pg_database, tmp_path, monkeypatch, capsys):
    """An unanalysed table: value sets from a bounded whole-table DISTINCT; a foreign
    key, an identity, a growing number, NaN get no range; a floor and a ceiling do."""
    pg_conn.execute(PAYMENT_DDL)
    expectations = _project(tmp_path, monkeypatch, "shop", f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{pg_database}",
                            "payment", primary_key="[payment_id]", mode="full", exclude_columns="[secret]",
                            hash_columns="[note]")  # fmt: skip
    code, out, err = _suggest(capsys, "shop", "payment", "--sample", "1000")
    assert code == 0, err
    suite = quality.load_suite(expectations, "shop/payment")
    rules = _rules(suite)
    columns = rules[("expect_table_columns_to_match_set", "")][0]["kwargs"]["column_set"]
    assert "secret" not in columns and "note" in columns  # as the extract reads them
    store = rules[("expect_column_values_to_be_in_set", "store")][0]
    assert store["kwargs"]["value_set"] == ["Lyon", "Nantes"] and store["meta"]["evidence"]["from"] == "whole table"
    assert rules[("expect_column_values_to_be_in_set", "Zone %s")][0]["kwargs"]["value_set"] == ["N", "S"]
    compound = rules[("expect_compound_columns_to_be_unique", "customer_id, paid_on")][0]
    assert compound["kwargs"]["ignore_row_if"] == "any_value_is_missing"  # NULLs are distinct in a UNIQUE
    for column in ["payment_id", "customer_id", "receipt_no", "ratio", "note"]:
        assert _bounds(rules, column) == (None, None), column
    assert ("expect_column_values_to_be_in_set", "note") not in rules  # hashed: the batch holds no text
    assert _bounds(rules, "delta") == (-6, 6)  # -5 and 5 come back in both halves; a 10% margin
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    assert "no range: a foreign key" in lines["customer_id"]
    assert "no range: grows with payment_id" in lines["receipt_no"]
    assert "nothing: nullable, NaN or Infinity" in lines["ratio"] and "nothing: nullable, hashed" in lines["note"]
    assert "(customer_id, paid_on) unique (UNIQUE constraint)" in lines["(table)"]

    columns, rows = _select(pg_database, "SELECT * FROM payment")
    report = quality.validate_dataframe(_batch(tmp_path, columns, rows), suite, table="shop.payment")
    assert report.success, report.failure_message()

    _project(tmp_path, monkeypatch, "shop", f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{pg_database}", "nope",
             primary_key="[id]", mode="full")  # fmt: skip
    code, out, err = _suggest(capsys, "shop", "nope")
    assert code == 2 and "table 'nope' does not exist" in err


# --- MariaDB ---------------------------------------------------------------------------
def test_mariadb_not_null_from_the_catalog_and_the_enum_s_declared_values(
    mariadb_conn, mariadb_database, tmp_path, monkeypatch, capsys
):
    with mariadb_conn.cursor() as cur:
        cur.execute("""
            CREATE TABLE tickets (
                ticket_id INT AUTO_INCREMENT PRIMARY KEY,
                code      CHAR(8) NOT NULL UNIQUE,
                priority  ENUM('low', 'normal', 'high', 'urgent') NOT NULL,
                tags      SET('bug', 'ui', 'db'),
                region    CHAR(2) NOT NULL,
                score     TINYINT UNSIGNED NOT NULL,
                flagged   TINYINT(1) NOT NULL,
                note      VARCHAR(200),
                opened_at DATETIME NOT NULL
            )""")  # fmt: skip
        cur.executemany(
            "INSERT INTO tickets (code, priority, tags, region, score, flagged, note, opened_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            [(f"T{i:07d}", ["low", "normal", "high"][i % 3], [None, "bug", "bug,ui", "db"][i % 4],
              ["EU", "US", "eu"][i % 3 if i % 5 else 0], min(100, (i * 37) % 131), i % 2,
              f"free text {i}" if i % 2 else None, "2025-01-01 00:00:00" if i < 150 else "2025-02-01 00:00:00")
             for i in range(300)],
        )  # fmt: skip
    expectations = _project(tmp_path, monkeypatch, "desk", f"mysql://{MARIA_USER}@{MARIA_HOST}:{MARIA_PORT}/{mariadb_database}",
                            "tickets", primary_key="[ticket_id]", mode="full")  # fmt: skip
    code, out, err = _suggest(capsys, "desk", "tickets", "--sample", "200")
    assert code == 0, err
    suite = quality.load_suite(expectations, "desk/tickets")
    rules = _rules(suite)
    not_null = {c for kind, c in rules if kind == "expect_column_values_to_not_be_null"}
    assert not_null == {"ticket_id", "code", "priority", "region", "score", "flagged", "opened_at"}
    assert rules[("expect_column_values_to_not_be_null", "region")][0]["meta"]["evidence"] == {
        "from": "catalog", "declared": "NOT NULL"}  # fmt: skip
    priority = rules[("expect_column_values_to_be_in_set", "priority")][0]
    assert priority["kwargs"]["value_set"] == ["low", "normal", "high", "urgent"]  # declared; 'urgent' unused
    assert priority["meta"]["evidence"] == {"from": "catalog", "declared": "enum('low','normal','high','urgent')"}
    region = rules[("expect_column_values_to_be_in_set", "region")][0]["kwargs"]["value_set"]
    assert region == ["EU", "US", "eu"]  # 'eu' and 'EU' are one value to the column's collation, not to the batch
    assert ("expect_column_values_to_be_in_set", "tags") in rules and ("expect_column_values_to_be_in_set", "note") not in rules
    assert ("expect_column_values_to_be_unique", "code") in rules and _bounds(rules, "ticket_id") == (None, None)
    assert _bounds(rules, "score") == (0, 110)  # capped at 100, again and again
    assert "no set: a boolean" in out and "RAND(42)" in suite["meta"]["profiled"]["sample_method"]

    with mariadb_conn.cursor() as cur:
        cur.execute("SELECT * FROM tickets")
        columns, rows = [d[0] for d in cur.description], cur.fetchall()
    report = quality.validate_dataframe(_batch(tmp_path, columns, rows), suite, table="desk.tickets")
    assert report.success, report.failure_message()


# --- SQLite: the demo ------------------------------------------------------------------
@pytest.fixture(scope="module")
def shop_db(tmp_path_factory):
    from datetime import date

    from lockgate.demo.shop_db import create_shop_db

    path = tmp_path_factory.mktemp("shop") / "shop.db"
    create_shop_db(path, scale=0.1, start=date(2026, 1, 1), days=3)
    return path


def test_the_demo_s_orders_as_users_run_it(shop_db, tmp_path, monkeypatch, capsys):
    """``lockgate suggest-suite shop orders`` with the project's own source file."""
    monkeypatch.setenv("AIRFLOW_CONN_SHOP_DB", f"sqlite:///{shop_db}")
    monkeypatch.setenv("LOCKGATE_EXPECTATIONS_DIR", str(tmp_path / "expectations"))
    code, out, err = _suggest(capsys, "shop", "orders", "--sample", "1000")
    assert code == 0, err
    suite = quality.load_suite(tmp_path / "expectations", "shop/orders")
    rules = _rules(suite)
    not_null = {c for kind, c in rules if kind == "expect_column_values_to_not_be_null"}
    assert not_null == {"order_id", "customer_id", "status", "currency", "total_amount", "shipping_country",
                        "created_at", "updated_at"}  # fmt: skip
    assert rules[("expect_column_values_to_not_be_null", "status")][0]["meta"]["evidence"] == {
        "from": "catalog", "declared": "NOT NULL"}  # fmt: skip
    status = rules[("expect_column_values_to_be_in_set", "status")][0]["kwargs"]["value_set"]
    assert status == sorted(["placed", "paid", "shipped", "delivered", "cancelled", "refunded"])
    for column in ["order_id", "customer_id", "created_at"]:
        assert _bounds(rules, column) == (None, None), column
    assert _bounds(rules, "total_amount") == (0, None), out
    assert suite["meta"]["profiled"]["sample_method"].startswith("random rows")
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    assert "no range: a foreign key" in lines["customer_id"] and "no range: a key" in lines["order_id"]
    assert "add `expectations: shop/orders` to the table in dags/sources/shop.yml" in out

    import sqlite3

    with sqlite3.connect(shop_db) as conn:
        cursor = conn.execute("SELECT * FROM orders")
        columns, rows = [d[0] for d in cursor.description], cursor.fetchall()
    report = quality.validate_dataframe(_batch(tmp_path, columns, rows), suite, table="shop.orders")
    assert report.success, report.failure_message()


def test_the_demo_s_customers_and_the_files_table(shop_db, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AIRFLOW_CONN_SHOP_DB", f"sqlite:///{shop_db}")
    monkeypatch.setenv("LOCKGATE_EXPECTATIONS_DIR", str(tmp_path / "expectations"))
    assert _suggest(capsys, "shop", "customers")[0] == 0
    rules = _rules(quality.load_suite(tmp_path / "expectations", "shop/customers"))
    email = rules[("expect_column_values_to_be_unique", "email")][0]
    assert email["meta"]["evidence"] == {"from": "catalog", "constraint": "UNIQUE"}
    assert ("expect_column_values_to_be_in_set", "marketing_opt_in") not in rules
    assert ("expect_column_values_to_be_in_set", "country") in rules  # 10 countries, 800 customers
    assert ("expect_column_values_to_be_in_set", "city") not in rules  # 50 cities
    code, out, err = _suggest(capsys, "shop", "clicks")
    assert code == 2 and "shop.clicks reads files; suggest-suite samples a database table" in err
