"""Fixtures for the cursor scenarios: one real source database per engine (PostgreSQL,
MariaDB, SQLite), wrapped in the reprocessing harness (its fixtures, shared)."""

from __future__ import annotations

import pytest

from tests.reprocessing.conftest import maria_source, pg_source, sqlite_source  # noqa: F401


@pytest.fixture(params=["postgres", "mariadb", "sqlite"])
def src(request):
    """The scenario runs against PostgreSQL, MariaDB and SQLite."""
    return request.getfixturevalue({"postgres": "pg_source", "mariadb": "maria_source", "sqlite": "sqlite_source"}[request.param])
