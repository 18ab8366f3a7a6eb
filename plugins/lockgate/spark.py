"""The one Spark session builder of the project.

Which Spark a process gets: ``LOCKGATE_SPARK_REMOTE=sc://host:port`` names a Spark
Connect server (it must answer); otherwise the deployment's own server on
127.0.0.1:``LOCKGATE_SPARK_CONNECT_PORT`` (default 15002, the one ``make airflow-ui``
starts beside Airflow) when it is listening, so ``airflow dags test`` or a CLI command
in that deployment reuses its warm JVM; otherwise ``local[*]`` in-process (``off``
turns the lookup off). The same job code runs on all of them. The driver binds to
127.0.0.1 and every clock is UTC, so JDBC timestamps are read the same on every
machine. JDBC driver jars come from Debian's packages (see :mod:`lockgate.settings`).
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from pathlib import Path

from lockgate.errors import ConfigError
from lockgate.settings import Settings, load_settings

_UTC_JAVA = "-Duser.timezone=UTC -Dfile.encoding=UTF-8"


def spark_conf(settings: Settings) -> dict[str, str]:
    missing = [jar for jar in settings.jdbc_jars if not Path(jar).exists()]
    if missing:
        raise ConfigError(
            "JDBC driver jar(s) not found: "
            + ", ".join(missing)
            + ". Install them with: sudo apt-get install libpostgresql-jdbc-java libmariadb-java "
            "libxerial-sqlite-jdbc-java (or set LOCKGATE_JDBC_JARS to a comma-separated list of jars)"
        )
    jars = ",".join(settings.jdbc_jars)
    return {
        "spark.jars": jars,
        "spark.driver.extraClassPath": ":".join(settings.jdbc_jars),
        "spark.driver.memory": settings.spark_driver_memory,
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.driver.host": "127.0.0.1",
        "spark.driver.extraJavaOptions": _UTC_JAVA,
        "spark.executor.extraJavaOptions": _UTC_JAVA,
        "spark.sql.session.timeZone": "UTC",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.shuffle.partitions": str(max(2, (os.cpu_count() or 2) * 2)),
        "spark.sql.adaptive.enabled": "true",
        # Parquet that every reader understands: no INT96, microsecond timestamps.
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
        "spark.sql.parquet.compression.codec": "zstd",
        "spark.sql.sources.partitionOverwriteMode": "static",
        # JDBC drivers report MariaDB ENUM/SET/CHAR(n) as CHAR(n), which Spark pads to n
        # when it reads them ('R' → 'R    '); a source's values arrive as it returns them.
        "spark.sql.readSideCharPadding": "false",
    }


def port_open(port: int, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:``port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def remote_for(settings: Settings) -> str | None:
    """The Spark Connect server this process uses, or ``None`` for an in-process session."""
    if settings.spark_remote:
        return settings.spark_remote
    port = settings.spark_connect_port
    if port is not None and port_open(port, timeout=0.2):
        return f"sc://127.0.0.1:{port}"
    return None


def get_spark(app_name: str = "lockgate", settings: Settings | None = None):
    """Return the process's Spark session, creating it on first use; the log says which
    Spark it is and how long it took to get it."""
    settings = settings or load_settings()
    from pyspark.sql import SparkSession

    log = logging.getLogger("lockgate")
    started = time.monotonic()
    remote = remote_for(settings)
    if remote:
        session = SparkSession.builder.remote(remote).appName(app_name).getOrCreate()
        log.info("Spark Connect session at %s (ready in %.1f s)", remote, time.monotonic() - started)
        return session
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    # The interpreter itself, not its resolved symlink: Python workers need the venv.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.master(settings.spark_master).appName(app_name)
    for key, value in spark_conf(settings).items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("WARN")
    log.info("Spark session started in this process, %s (in %.1f s)", settings.spark_master, time.monotonic() - started)
    return session
