"""Runtime settings: embedded defaults, overrides, and clear refusals."""

from __future__ import annotations

import pytest
from lockgate.errors import ConfigError
from lockgate.settings import PROJECT_ROOT, load_settings


def test_embedded_defaults(monkeypatch):
    for name in ("LOCKGATE_HOME", "LOCKGATE_LAKE_ROOT", "LOCKGATE_WAREHOUSE", "LOCKGATE_SPARK_REMOTE"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.lake_root == PROJECT_ROOT / "lake"
    assert settings.warehouse == str(PROJECT_ROOT / "warehouse" / "warehouse.duckdb")
    assert settings.spark_master == "local[*]" and settings.spark_remote is None


def test_overrides_are_resolved(monkeypatch, tmp_path):
    monkeypatch.setenv("LOCKGATE_LAKE_ROOT", str(tmp_path / "lake"))
    monkeypatch.setenv("LOCKGATE_WAREHOUSE", str(tmp_path / "w.duckdb"))
    settings = load_settings()
    assert settings.lake_root == tmp_path / "lake"
    assert settings.warehouse == str(tmp_path / "w.duckdb")


def test_url_locations_are_refused_without_echoing_them(monkeypatch):
    monkeypatch.setenv("LOCKGATE_WAREHOUSE", "postgresql://bob:hunter2@db/warehouse")
    with pytest.raises(ConfigError, match="LOCKGATE_WAREHOUSE: 'postgresql://'") as info:
        load_settings()
    assert "hunter2" not in str(info.value)
