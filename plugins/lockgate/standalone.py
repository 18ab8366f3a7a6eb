"""``lockgate airflow-standalone``: Airflow's all-in-one local deployment with a Spark
Connect server beside it (what ``make airflow-ui`` runs).

Every Airflow task is a process of its own. Without a server, each extract task starts
a Spark JVM (about 10 s on an idle machine, minutes when a scheduler starts sixteen at
once on two cores); with one, tasks are thin Spark Connect clients of a JVM that is
already warm. The server is started first (127.0.0.1 only, on
``LOCKGATE_SPARK_CONNECT_PORT``, default 15002) and the tasks find it through
``LOCKGATE_SPARK_REMOTE``; it is stopped when Airflow stops. A deployment that already
has a server (``LOCKGATE_SPARK_REMOTE`` set) or wants a JVM per task
(``LOCKGATE_SPARK_CONNECT_PORT=off``) gets no server of its own.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from lockgate import spark_server
from lockgate.cli import airflow_binary
from lockgate.settings import load_settings


def start_spark(log_dir: Path) -> spark_server.ConnectServer | None:
    """The Spark Connect server for the tasks, or ``None`` when the deployment has its own."""
    settings = load_settings()
    if settings.spark_remote or settings.spark_connect_port is None:
        return None
    server = spark_server.start_connect_server(settings.spark_connect_port, settings=settings, log_dir=log_dir)
    os.environ["LOCKGATE_SPARK_REMOTE"] = server.remote
    print(f"lockgate: Spark Connect server on {server.remote} (log {server.log_path})", flush=True)
    return server


def run(log_dir: Path) -> int:
    """Start the server, run ``airflow standalone`` until it ends or this process is
    asked to stop (SIGINT/SIGTERM are passed on), then stop the server."""
    server = start_spark(log_dir)
    airflow = subprocess.Popen([airflow_binary(), "standalone"])

    def forward(signum, _frame):
        airflow.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return airflow.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if airflow.poll() is None:
            airflow.terminate()
            airflow.wait(timeout=60)
        if server is not None:
            spark_server.stop(server)
