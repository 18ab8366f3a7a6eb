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


def test_spark_uses_the_deployments_server_only_while_it_listens(monkeypatch):
    """``airflow dags test`` in the make-airflow-ui deployment reuses its Spark Connect
    server; with nothing on the port, or the lookup off, Spark runs in-process."""
    import socket

    from lockgate.spark import remote_for

    monkeypatch.delenv("LOCKGATE_SPARK_REMOTE", raising=False)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        monkeypatch.setenv("LOCKGATE_SPARK_CONNECT_PORT", str(port))
        assert remote_for(load_settings()) == f"sc://127.0.0.1:{port}"
        monkeypatch.setenv("LOCKGATE_SPARK_CONNECT_PORT", "off")
        assert remote_for(load_settings()) is None
        monkeypatch.setenv("LOCKGATE_SPARK_REMOTE", "sc://spark.example:15002")
        assert remote_for(load_settings()) == "sc://spark.example:15002"
    monkeypatch.delenv("LOCKGATE_SPARK_REMOTE")
    monkeypatch.setenv("LOCKGATE_SPARK_CONNECT_PORT", str(port))  # closed now
    assert remote_for(load_settings()) is None


@pytest.mark.parametrize("value", ["15oo2", "0", "70000", "-1"])
def test_a_bad_spark_connect_port_is_named(monkeypatch, value):
    monkeypatch.setenv("LOCKGATE_SPARK_CONNECT_PORT", value)
    with pytest.raises(ConfigError, match="LOCKGATE_SPARK_CONNECT_PORT must be a TCP port or 'off'"):
        load_settings()
