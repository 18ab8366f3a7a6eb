"""The driver program of Lockgate's Spark Connect server (run by ``spark-submit``).

Spark's own ``start-connect-server.sh`` forces artifact isolation on, which gives every
client session its own Python daemon and workers: each Airflow task that runs a Python
function in Spark (the Arrow reader's key ranges) then waited ~1.7 s for an interpreter,
pyspark's worker and pyarrow to start, on every run. Lockgate's server is a private one
(127.0.0.1, or the compose network) whose clients are Lockgate's own tasks, which add no
artifacts, so it is started as a Spark application with the Connect plugin
(``spark.plugins=org.apache.spark.sql.connect.SparkConnectPlugin``) and isolation off
(:func:`lockgate.spark_server.server_command`): sessions share one daemon and its reused
workers. This program only creates the session (which starts the plugin's gRPC service)
and waits; SIGTERM or SIGINT stops it, and Spark with it.

It imports nothing of Lockgate: it runs in ``spark-submit``'s Python, beside the JVM.
"""

from __future__ import annotations

import signal
import sys
import threading


def main() -> None:
    from pyspark.sql import SparkSession

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    spark = SparkSession.builder.getOrCreate()
    print(f"Lockgate Spark Connect host: Spark {spark.version}, master {spark.sparkContext.master}", flush=True)
    try:
        while not stop.wait(3600):
            pass
    finally:
        spark.stop()
    sys.exit(0)


if __name__ == "__main__":
    main()
