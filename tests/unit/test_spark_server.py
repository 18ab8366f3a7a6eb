"""Lockgate's Spark Connect server (lockgate.spark_server): the server the README's
deployment keeps beside Airflow, started as Lockgate starts it.

Each Airflow task is a Spark Connect session of its own. Spark's stock server gives every
session its own Python daemon and workers, so every extract that runs a Python function
in Spark (the Arrow reader) waited for an interpreter, pyspark and pyarrow to start. On
Lockgate's server, sessions share the daemon and its reused workers.
"""

from __future__ import annotations

import os
import time

import pytest
from lockgate import spark_server


def _worker_pids(remote: str) -> tuple[set[int], float]:
    """The Python worker processes that ran one two-task job of a new client session."""
    from pyspark.sql import SparkSession

    def _pids(batches):  # nested: pickled by value, the workers cannot import this module
        import os

        import pyarrow as pa

        for batch in batches:
            yield pa.RecordBatch.from_pydict({"pid": [os.getpid()] * batch.num_rows})

    session = SparkSession.builder.remote(remote).create()
    try:
        started = time.monotonic()
        rows = session.range(0, 2, 1, 2).mapInArrow(_pids, "pid long").collect()
        return {row["pid"] for row in rows}, time.monotonic() - started
    finally:
        session.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    started = spark_server.start_connect_server(spark_server.free_port(), log_dir=tmp_path_factory.mktemp("spark"))
    yield started
    spark_server.stop(started)


def test_sessions_share_the_python_workers(server):
    first, first_seconds = _worker_pids(server.remote)
    second, second_seconds = _worker_pids(server.remote)
    third, _ = _worker_pids(server.remote)
    assert first & second and second & third, (
        f"every session started new Python workers ({first} then {second} then {third}): "
        f"sessions are isolated, see {server.log_path}"
    )
    # The workers started by the first session are still alive for the next ones.
    assert all(os.path.exists(f"/proc/{pid}") for pid in second)
    print(f"first session's job {first_seconds:.2f} s (workers start), second {second_seconds:.2f} s")


def test_the_server_is_the_connect_plugin_in_lockgates_driver_program(server):
    from lockgate.settings import load_settings

    settings = load_settings()
    conf = spark_server.server_conf(settings, server.port, "local[2]")
    argv = spark_server.server_command(settings, conf, "local[2]")
    assert argv[0].endswith("/bin/spark-submit") and argv[-1].endswith("lockgate/spark_connect_host.py")
    assert f"spark.plugins={spark_server.CONNECT_PLUGIN}" in argv
    assert "spark.sql.artifact.isolation.enabled=false" in argv
    assert "spark.connect.grpc.binding.address=127.0.0.1" in argv
    log = server.log_path.read_text(encoding="utf-8", errors="replace")
    assert "Lockgate Spark Connect host: Spark" in log


def test_stop_ends_the_whole_server(tmp_path):
    started = spark_server.start_connect_server(spark_server.free_port(), log_dir=tmp_path)
    group = started.process.pid
    assert spark_server.port_open(started.port)
    spark_server.stop(started)
    assert not spark_server.port_open(started.port)
    leftover = {pid: _status(pid) for pid in map(int, filter(str.isdigit, os.listdir("/proc"))) if _group_of(pid) == group}
    assert not leftover, f"processes of the server's group still run after stop: {leftover}"


def _group_of(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except (ProcessLookupError, PermissionError):
        return None


def _status(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as status:
            return " ".join(line.split(":", 1)[1].strip() for line in status if line.startswith(("Name", "State", "PPid")))
    except OSError:
        return "gone"
