"""The one Spark session builder of the project.

``local[*]`` in-process by default; ``LOCKGATE_SPARK_REMOTE=sc://host:15002`` uses a
Spark Connect server instead (the same job code runs on both). The driver binds to
127.0.0.1 and every clock is UTC, so JDBC timestamps are read the same on every
machine. JDBC driver jars come from Debian's packages (see :mod:`lockgate.settings`).
"""

from __future__ import annotations

import logging
import os
import sys
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


def get_spark(app_name: str = "lockgate", settings: Settings | None = None):
    """Return the process's Spark session, creating it on first use."""
    settings = settings or load_settings()
    from pyspark.sql import SparkSession

    if settings.spark_remote:
        logging.getLogger("lockgate").info("Spark Connect session at %s", settings.spark_remote)
        return SparkSession.builder.remote(settings.spark_remote).appName(app_name).getOrCreate()
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
    return session
