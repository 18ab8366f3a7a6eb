"""The demo source: deterministic, realistic enough to exercise the pipeline, atomic."""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import date

import pytest
from lockgate.demo.shop_db import TABLES, create_shop_db


def _digest(path) -> str:
    h = hashlib.sha256()
    with sqlite3.connect(path) as conn:
        for table in TABLES:
            for row in conn.execute(f"SELECT * FROM {table} ORDER BY 1"):
                h.update(repr(row).encode())
    return h.hexdigest()


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    path = tmp_path_factory.mktemp("shop") / "shop.db"
    counts = create_shop_db(path, scale=0.1, start=date(2026, 1, 1), days=3)
    return path, counts


def test_full_scale_has_over_100k_rows(tmp_path):
    counts = create_shop_db(tmp_path / "shop.db")
    assert sum(counts.values()) >= 100_000
    assert counts["customers"] == 8_000 and counts["orders"] == 30_000


def test_same_arguments_give_the_same_rows(shop, tmp_path):
    path, counts = shop
    again = tmp_path / "again.db"
    assert create_shop_db(again, scale=0.1, start=date(2026, 1, 1), days=3) == counts
    assert _digest(again) == _digest(path)
    other = tmp_path / "other.db"
    create_shop_db(other, scale=0.1, seed=7, start=date(2026, 1, 1), days=3)
    assert _digest(other) != _digest(path)


def test_every_cursor_lies_in_the_window(shop):
    path, _ = shop
    with sqlite3.connect(path) as conn:
        for table, column in [("customers", "updated_at"), ("products", "updated_at"), ("orders", "updated_at"),
                              ("order_items", "created_at"), ("payments", "updated_at")]:
            lo, hi = conn.execute(f"SELECT MIN({column}), MAX({column}) FROM {table}").fetchone()
            assert "2026-01-01 00:00:00" <= lo and hi < "2026-01-04 00:00:00", (table, lo, hi)
            bad = conn.execute(f"SELECT COUNT(*) FROM {table} WHERE {column} < created_at").fetchone()[0]
            assert bad == 0, table


def test_realistic_values(shop):
    path, counts = shop
    with sqlite3.connect(path) as conn:
        one = conn.execute
        assert one("SELECT MAX(loyalty_points) FROM customers").fetchone()[0] > 2**31
        assert one("SELECT COUNT(*) FROM customers WHERE city IS NULL").fetchone()[0] > 0
        assert one("SELECT COUNT(*) FROM customers WHERE birth_date IS NULL").fetchone()[0] > 0
        assert one("SELECT COUNT(*) FROM customers WHERE full_name GLOB '*[^ -~]*'").fetchone()[0] > 0
        assert one("SELECT COUNT(DISTINCT email) FROM customers").fetchone()[0] == counts["customers"]
        # An order's total is the sum of its items (after discount).
        mismatches = one(
            "SELECT COUNT(*) FROM orders o JOIN (SELECT order_id, "
            "SUM(quantity * (unit_price - COALESCE(discount, 0))) AS s FROM order_items GROUP BY order_id) i "
            "USING (order_id) WHERE ABS(o.total_amount - i.s) > 0.005"
        ).fetchone()[0]
        assert mismatches == 0
        orphans = one("SELECT COUNT(*) FROM order_items WHERE order_id NOT IN (SELECT order_id FROM orders)")
        assert orphans.fetchone()[0] == 0
        statuses = {r[0] for r in one("SELECT DISTINCT status FROM orders")}
        assert statuses <= {"placed", "paid", "shipped", "delivered", "cancelled", "refunded"}
        assert len(statuses) == 6


def test_keep_existing_and_atomic_replace(shop, tmp_path):
    path, counts = shop
    assert create_shop_db(path, scale=5, recreate=False) == counts  # kept, not rebuilt
    with pytest.raises(ValueError, match="scale"):
        create_shop_db(tmp_path / "bad.db", scale=0)
    assert not list(tmp_path.glob(".*.tmp"))
