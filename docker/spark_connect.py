#!/usr/bin/env python
"""The ``spark-connect`` service of docker-compose.yml (installed as ``lockgate-spark-connect``).

Runs the Spark Connect server of the installed ``pyspark`` in the foreground, started and
configured exactly as Lockgate starts its local server (:func:`lockgate.spark_server.server_command`
and :func:`~lockgate.spark_server.server_conf`: the Connect plugin with sessions sharing
their Python workers, JDBC jars, UTC clocks, Parquet settings), except for the addresses: the gRPC endpoint
and the driver bind to this container's name, so that Airflow's tasks (``sc://<name>:<port>``)
and the executors on the workers can reach it. Nothing is duplicated in the compose file,
so the container and ``make demo`` cannot drift apart.

Environment: ``LOCKGATE_SPARK_CONNECT_HOST`` (the container's name),
``LOCKGATE_SPARK_CONNECT_PORT`` (default 15002), ``LOCKGATE_SPARK_CONNECT_MASTER``
(``spark://<master>:7077``), plus the usual ``LOCKGATE_*`` settings.
"""

from __future__ import annotations

import os
import sys


def command() -> list[str]:
    """The server's argv, built from the environment (tests/unit/test_compose.py calls it)."""
    from lockgate.settings import load_settings
    from lockgate.spark_server import server_command, server_conf

    host = os.environ["LOCKGATE_SPARK_CONNECT_HOST"]
    port = int(os.environ.get("LOCKGATE_SPARK_CONNECT_PORT", "15002"))
    master = os.environ["LOCKGATE_SPARK_CONNECT_MASTER"]
    settings = load_settings()
    conf = server_conf(settings, port, master)
    conf.update(
        {
            "spark.connect.grpc.binding.address": host,
            "spark.driver.bindAddress": host,
            "spark.driver.host": host,
        }
    )
    return server_command(settings, conf, master)


def main() -> None:
    argv = command()
    # Python tasks on the executors run in this image's interpreter (same path everywhere).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.pop("SPARK_REMOTE", None)
    os.environ.pop("SPARK_CONNECT_MODE_ENABLED", None)
    os.execv("/bin/bash", ["bash", *argv])


if __name__ == "__main__":
    main()
