"""Fixtures of the unit tests."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["duckdb", "postgres"])
def conn(request, tmp_path, monkeypatch):
    """A warehouse session on each warehouse: the DuckDB file and a fresh PostgreSQL
    database (tests taking ``conn`` hold on both)."""
    from lockgate import warehouse
    from lockgate.settings import load_settings

    monkeypatch.setenv("LOCKGATE_LAKE_ROOT", str(tmp_path / "lake"))
    monkeypatch.setenv("LOCKGATE_WAREHOUSE", str(tmp_path / "w.duckdb"))
    if request.param == "postgres":
        request.getfixturevalue("pg_warehouse")
    with warehouse.connect(load_settings()) as session:
        yield session
