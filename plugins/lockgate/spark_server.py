"""Start and stop a local Spark Connect server.

Many short-lived processes (one per Airflow task) each starting a local Spark JVM is
slow; one Spark Connect server shared by all of them is not. The server is the one
shipped with the ``pyspark`` package (``sbin/start-connect-server.sh``), run in the
foreground in its own process group, configured with :func:`lockgate.spark.spark_conf`
(JDBC jars, UTC clocks, Parquet settings) and bound to 127.0.0.1 only. Clients use
``LOCKGATE_SPARK_REMOTE=sc://127.0.0.1:<port>``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from lockgate.errors import ConfigError
from lockgate.settings import Settings, load_settings
from lockgate.spark import port_open, spark_conf


class SparkServerError(RuntimeError):
    """The Spark Connect server did not start (or stop) as asked."""


@dataclass
class ConnectServer:
    """A running Spark Connect server started by :func:`start_connect_server`."""

    process: subprocess.Popen
    port: int
    log_path: Path
    log_dir: Path

    @property
    def remote(self) -> str:
        return f"sc://127.0.0.1:{self.port}"


def spark_home() -> Path:
    """The ``pyspark`` package folder, which is a complete SPARK_HOME."""
    import importlib.util

    spec = importlib.util.find_spec("pyspark")
    if spec is None or not spec.origin:
        raise ConfigError("pyspark is not installed")
    return Path(spec.origin).parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tail(path: Path, lines: int = 60) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def server_conf(settings: Settings, port: int, master: str) -> dict[str, str]:
    conf = spark_conf(settings)
    conf.update(
        {
            "spark.master": master,
            "spark.connect.grpc.binding.address": "127.0.0.1",
            "spark.connect.grpc.binding.port": str(port),
        }
    )
    return conf


def start_connect_server(
    port: int,
    *,
    settings: Settings | None = None,
    log_dir: Path,
    master: str = "local[2]",
    timeout: float = 180.0,
) -> ConnectServer:
    """Start the server and wait until ``port`` accepts connections.

    Raises :class:`SparkServerError` with the tail of the server log when the process
    exits early or the port does not open within ``timeout`` seconds.
    """
    settings = settings or load_settings()
    conf = server_conf(settings, port, master)
    home = spark_home()
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    (log_dir / "pids").mkdir(exist_ok=True)
    log_path = log_dir / f"spark-connect-{port}.log"
    command = ["bash", str(home / "sbin" / "start-connect-server.sh"), "--wait", "--master", master]
    if settings.jdbc_jars:
        command += ["--jars", ",".join(settings.jdbc_jars)]
    for key, value in conf.items():
        if key in ("spark.master", "spark.jars"):
            continue
        command += ["--conf", f"{key}={value}"]
    env = {
        **os.environ,
        "SPARK_HOME": str(home),
        "SPARK_LOG_DIR": str(log_dir),
        "SPARK_PID_DIR": str(log_dir / "pids"),
        "SPARK_CONF_DIR": str(log_dir / "conf"),  # none of the machine's spark-defaults
        "SPARK_LOCAL_IP": "127.0.0.1",
        "TZ": "UTC",
    }
    env.setdefault("PYSPARK_PYTHON", sys.executable)  # Python tasks run in this venv
    env.pop("SPARK_REMOTE", None)
    env.pop("SPARK_CONNECT_MODE_ENABLED", None)
    log = open(log_path, "ab")  # noqa: SIM115 - the child owns it for its lifetime
    try:
        process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    finally:
        log.close()
    server = ConnectServer(process=process, port=port, log_path=log_path, log_dir=log_dir)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SparkServerError(
                f"the Spark Connect server exited with code {process.returncode} before listening on "
                f"127.0.0.1:{port}; log {log_path}:\n{tail(log_path)}"
            )
        if port_open(port):
            return server
        time.sleep(0.5)
    stop(server)
    raise SparkServerError(
        f"the Spark Connect server did not listen on 127.0.0.1:{port} within {timeout:.0f}s; "
        f"log {log_path}:\n{tail(log_path)}"
    )


def stop(server: ConnectServer, timeout: float = 30.0) -> int | None:
    """Stop the server's whole process group (SIGTERM, then SIGKILL); returns its exit code."""
    process = server.process
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)  # stragglers of the group, if any
    except (ProcessLookupError, PermissionError):
        pass
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise SparkServerError(f"the Spark Connect server (pid {process.pid}) did not stop") from exc
