"""Stage metrics reach StatsD through Airflow's metrics facade (lockgate.metrics).

A real UDP socket on 127.0.0.1 plays the StatsD server. Airflow sets its metrics
backend up once per process from ``[metrics]``, so each case runs in a fresh Python
with ``AIRFLOW__METRICS__STATSD_*`` pointing at the socket, and the packets it sends
are read back: names (``<statsd_prefix>.lockgate.<stage>.<measure>.<source>.<table>``),
values and types.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def statsd_server():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.5)
    yield sock
    sock.close()


def _packets(sock: socket.socket) -> list[str]:
    lines = []
    while True:
        try:
            data, _ = sock.recvfrom(65535)
        except TimeoutError:
            return lines
        # Airflow's own metrics (serde, OpenLineage emission, ...) share the socket.
        lines += [line for line in data.decode().splitlines() if line.startswith("airflow.lockgate.")]


def _run(script: str, sock: socket.socket, tmp_path: Path, statsd_on: str = "True") -> list[str]:
    env = {
        **os.environ,
        "AIRFLOW__METRICS__STATSD_ON": statsd_on,
        "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
        "AIRFLOW__METRICS__STATSD_PORT": str(sock.getsockname()[1]),
        "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT / "plugins"), str(PROJECT_ROOT)]),
        "LOCKGATE_LAKE_ROOT": str(tmp_path / "lake"),
        "LOCKGATE_WAREHOUSE": str(tmp_path / "warehouse" / "warehouse.duckdb"),
    }
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return _packets(sock)


def test_stage_metrics_are_sent_to_statsd_with_source_and_table_in_the_name(statsd_server, tmp_path):
    packets = _run(
        """
        from lockgate.metrics import StageMetrics, emit

        emit(StageMetrics("extract", "shop", "orders", seconds=1.5, rows=1234000, bytes=56789))
        emit(StageMetrics("load", "shop", "orders", seconds=0.25, rows=1200, bytes=56789, rows_quarantined=34))
        emit(StageMetrics("publish", "shop", "orders", seconds=0.125, lag_seconds=3600.5))
        emit(StageMetrics("validate", "shop", "orders", seconds=2, failed=True))
        """,
        statsd_server,
        tmp_path,
    )
    assert sorted(packets) == sorted(
        [
            "airflow.lockgate.extract.duration.shop.orders:1500.000000|ms",
            "airflow.lockgate.extract.rows.shop.orders:1234000|c",
            "airflow.lockgate.extract.bytes.shop.orders:56789|c",
            "airflow.lockgate.load.duration.shop.orders:250.000000|ms",
            "airflow.lockgate.load.rows.shop.orders:1200|c",
            "airflow.lockgate.load.bytes.shop.orders:56789|c",
            "airflow.lockgate.load.rows_quarantined.shop.orders:34|c",
            "airflow.lockgate.publish.duration.shop.orders:125.000000|ms",
            "airflow.lockgate.publish.lag_seconds.shop.orders:3600.5|g",
            "airflow.lockgate.validate.duration.shop.orders:2000.000000|ms",
            "airflow.lockgate.validate.failures.shop.orders:1|c",
        ]
    )


# A stage wrapped by lockgate.observe as the pipeline's stages are, on a real sealed raw
# folder whose newest cursor is an hour old: the hook derives rows, bytes and lag.
_OBSERVED_STAGES = """
    from datetime import UTC, datetime, timedelta

    from lockgate import lake, observe
    from lockgate.config import parse_source
    from lockgate.records import RunInfo
    from lockgate.settings import load_settings

    config = parse_source(
        {"source": "shop", "connection": "shop_src", "start_date": "2026-01-01",
         "tables": [{"name": "orders", "primary_key": ["id"], "mode": "merge", "cursor": "updated_at"}]},
        "shop.yml",
    )
    table = config.table("orders")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    run = RunInfo(run_id="scheduled__1", interval_start=start, interval_end=start + timedelta(days=1))
    location = lake.RawLocation(load_settings().lake_root, "shop", "orders", run.interval_start, run.interval_end, run.run_id)
    temp = location.temp_path()
    temp.mkdir(parents=True)
    (temp / "part-0.parquet").write_bytes(b"x" * 4321)
    newest = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    folder = lake.seal(location, temp, {
        "source": "shop", "table": "orders", "run_id": run.run_id, "rows": 7, "cursor_max": newest,
        "files": [{"path": "part-0.parquet", "rows": 7, "bytes": 4321, "sha256": lake.sha256_file(temp / "part-0.parquet")}],
    })

    @observe.stage("load")
    def load(config, table, run, raw_path, *, settings=None):
        return {"rows_loaded": 5, "rows_quarantined": 2, "rows_after": 5, "resumed": False}

    @observe.stage("publish")
    def publish(config, table, run, raw_path, *, settings=None):
        return {"watermark": None}

    @observe.stage("validate")
    def validate(config, table, run, raw_path, *, settings=None):
        raise RuntimeError("broken")

    assert load(config, table, run, str(folder))["rows_loaded"] == 5
    publish(config, table, run, str(folder))
    try:
        validate(config, table, run, str(folder))
    except RuntimeError:
        pass
    else:
        raise AssertionError("the stage's exception must pass through")
"""


def test_the_stage_hook_reports_rows_bytes_quarantine_lag_and_failures(statsd_server, tmp_path):
    packets = _run(_OBSERVED_STAGES, statsd_server, tmp_path)
    values = {name: value for name, value in (p.split(":", 1) for p in packets)}
    assert values["airflow.lockgate.load.rows.shop.orders"] == "5|c"
    assert values["airflow.lockgate.load.bytes.shop.orders"] == "4321|c"
    assert values["airflow.lockgate.load.rows_quarantined.shop.orders"] == "2|c"
    assert values["airflow.lockgate.validate.failures.shop.orders"] == "1|c"
    lag = values["airflow.lockgate.publish.lag_seconds.shop.orders"]
    assert lag.endswith("|g") and 3600 <= float(lag[:-2]) < 3600 + 60
    assert {name.rsplit(".", 2)[0] for name in values} >= {
        "airflow.lockgate.load.duration",
        "airflow.lockgate.publish.duration",
        "airflow.lockgate.validate.duration",
    }


def test_nothing_is_sent_when_statsd_is_off(statsd_server, tmp_path):
    script = 'from lockgate.metrics import StageMetrics, emit\nemit(StageMetrics("extract", "shop", "orders", 1.0, rows=1))'
    assert _run(script, statsd_server, tmp_path, statsd_on="False") == []
