"""Start and stop a local Spark Connect server.

Many short-lived processes (one per Airflow task) each starting a local Spark JVM is
slow; one Spark Connect server shared by all of them is not. The server is the Spark of
the ``pyspark`` package, run by its ``bin/spark-submit`` as an application with the Connect
plugin and artifact isolation off, so that client sessions share the Python workers
(:func:`server_command`, :mod:`lockgate.spark_connect_host`), in the foreground in its own
process group, configured with :func:`lockgate.spark.spark_conf` (JDBC jars, UTC clocks,
Parquet settings) and bound to 127.0.0.1 only. Clients use
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


#: The Connect service as a plugin of an ordinary Spark application.
CONNECT_PLUGIN = "org.apache.spark.sql.connect.SparkConnectPlugin"


def server_conf(settings: Settings, port: int, master: str) -> dict[str, str]:
    conf = spark_conf(settings)
    conf.update(
        {
            "spark.master": master,
            "spark.plugins": CONNECT_PLUGIN,
            # Sessions share the Python daemon and its reused workers (start-connect-server.sh
            # forces isolation on: a new interpreter, pyspark and pyarrow per task). Lockgate's
            # tasks add no artifacts to their sessions; see lockgate.spark_connect_host.
            "spark.sql.artifact.isolation.enabled": "false",
            "spark.connect.grpc.binding.address": "127.0.0.1",
            "spark.connect.grpc.binding.port": str(port),
        }
    )
    return conf


def server_command(settings: Settings, conf: dict[str, str], master: str) -> list[str]:
    """The server's argv: ``spark-submit`` of :mod:`lockgate.spark_connect_host` with ``conf``
    (``docker/spark_connect.py`` runs the same command with its own addresses)."""
    command = [str(spark_home() / "bin" / "spark-submit"), "--master", master, "--name", "Lockgate Spark Connect"]
    if settings.jdbc_jars:
        command += ["--jars", ",".join(settings.jdbc_jars)]
    for key, value in conf.items():
        if key in ("spark.master", "spark.jars"):
            continue
        command += ["--conf", f"{key}={value}"]
    return [*command, str(Path(__file__).with_name("spark_connect_host.py"))]


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
    command = ["bash", *server_command(settings, server_conf(settings, port, master), master)]
    home = spark_home()
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"spark-connect-{port}.log"
    env = {
        **os.environ,
        "SPARK_HOME": str(home),
        "SPARK_LOG_DIR": str(log_dir),
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
    """Stop the server's whole process group (SIGTERM, then SIGKILL for what is left) and
    return its exit code once no process of the group remains (the JVM, the driver program,
    Python daemon and workers: their memory and ports are free when this returns)."""
    process, group = server.process, server.process.pid
    if process.poll() is None:
        _signal_group(group, signal.SIGTERM)
    try:
        code = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        code = None
    if code is None or not _group_gone(group, 5.0):
        _signal_group(group, signal.SIGKILL)
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise SparkServerError(f"the Spark Connect server (pid {process.pid}) did not stop") from exc
    if not _group_gone(group, timeout):
        raise SparkServerError(f"processes of the Spark Connect server (group {group}) still run after SIGKILL")
    return code


def _signal_group(group: int, sig: signal.Signals) -> None:
    try:
        os.killpg(group, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _group_gone(group: int, timeout: float) -> bool:
    """Whether the process group ``group`` empties within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
