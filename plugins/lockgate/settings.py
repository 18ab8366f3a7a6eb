"""Runtime settings, read from ``LOCKGATE_*`` environment variables.

Everything has an embedded default so that ``make demo`` works on a fresh machine:
the lake is ``<project>/lake`` (``LOCKGATE_LAKE_ROOT=s3://bucket/prefix`` puts it in a
bucket reached through the Airflow connection ``LOCKGATE_LAKE_CONN_ID``), the warehouse ``<project>/warehouse/warehouse.duckdb``
and Spark runs in-process as ``local[*]``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[2]

#: Debian's packages put the JDBC drivers here (libpostgresql-jdbc-java, libmariadb-java,
#: libxerial-sqlite-jdbc-java); Maven Central is not needed.
DEFAULT_JDBC_JARS = (
    "/usr/share/java/postgresql.jar",
    "/usr/share/java/mariadb-java-client.jar",
    "/usr/share/java/sqlite-jdbc.jar",
)


def _lake_location(name: str, default: Path) -> str:
    """A local folder (resolved) or ``s3://bucket/prefix`` (checked, never echoed)."""
    value = os.environ.get(name, "").strip()
    if "://" in value:
        from lockgate.lake.s3 import parse_url

        return parse_url(name, value).url
    return str(_path(name, default))


def _path(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    if value and "://" in value:
        from lockgate.errors import ConfigError

        scheme = value.split("://", 1)[0]
        # Never echo the value: a URL may carry a password.
        raise ConfigError(f"{name}: '{scheme}://' locations are not supported yet; use a local path")
    return Path(value).expanduser().resolve() if value else default


#: Where ``lockgate airflow-standalone`` (``make airflow-ui``) runs its Spark Connect server.
DEFAULT_SPARK_CONNECT_PORT = 15002


def _connect_port() -> int | None:
    value = os.environ.get("LOCKGATE_SPARK_CONNECT_PORT", str(DEFAULT_SPARK_CONNECT_PORT)).strip()
    if value.lower() in ("off", ""):
        return None
    if not value.isdigit() or not 0 < int(value) < 65536:
        from lockgate.errors import ConfigError

        raise ConfigError(f"LOCKGATE_SPARK_CONNECT_PORT must be a TCP port or 'off', not {value!r}")
    return int(value)


def _positive(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    if not value.isdigit() or int(value) < 1:
        from lockgate.errors import ConfigError

        raise ConfigError(f"{name} must be a whole number of at least 1, not {value!r}")
    return int(value)


def _choice(name: str, allowed: tuple[str, ...]) -> str:
    value = os.environ.get(name, "").strip().lower() or allowed[0]
    if value not in allowed:
        from lockgate.errors import ConfigError

        raise ConfigError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
    return value


@dataclass(frozen=True)
class Settings:
    """Where things live and how Spark is started. Build with :func:`load_settings`."""

    project_root: Path
    sources_dir: Path
    expectations_dir: Path
    #: ``LOCKGATE_LAKE_ROOT``: a local folder, or ``s3://bucket/prefix``.
    lake_location: str
    warehouse: str
    spark_master: str
    spark_remote: str | None
    spark_driver_memory: str
    #: The port of the deployment's own Spark Connect server on 127.0.0.1 (``None``: off).
    spark_connect_port: int | None = None
    jdbc_jars: tuple[str, ...] = field(default_factory=tuple)
    #: The Airflow connection (``aws`` type) of an S3 lake.
    lake_conn_id: str = "lockgate_lake"
    #: Where an S3 lake's extracts are assembled before they are uploaded and sealed.
    staging_dir: Path | None = None
    #: ``LOCKGATE_LANDING_ROOT``: the folder a files table's relative ``landing`` is under.
    landing_root: Path | None = None
    #: ``LOCKGATE_WAREHOUSE_CONN_ID``: a ``postgres`` Airflow connection makes the
    #: warehouse that PostgreSQL database (``None``: the DuckDB file ``warehouse``).
    warehouse_conn_id: str | None = None
    #: How many connections a PostgreSQL warehouse's loads may use at once, across
    #: processes (parallel COPY streams).
    warehouse_max_connections: int = 4
    #: ``LOCKGATE_VALIDATION_ENGINE``: ``auto`` validates a large batch on DuckDB when
    #: its rules mean the same there, else on Spark; ``spark`` always uses Spark for
    #: large batches (a cluster's batches beyond one machine).
    validation_engine: str = "auto"

    @property
    def lake_is_local(self) -> bool:
        return not self.lake_location.startswith("s3://")

    @cached_property
    def lake_root(self) -> Any:
        """The lake's root: a :class:`~pathlib.Path`, or an S3 path (universal-pathlib)
        whose credentials come from the connection; the bucket is checked on first use."""
        if self.lake_is_local:
            return Path(self.lake_location)
        from lockgate.lake import s3

        return s3.root(s3.parse_url("LOCKGATE_LAKE_ROOT", self.lake_location), self.lake_conn_id)

    @property
    def stage_root(self) -> Path:
        """Local scratch for extracts and Data Docs builds: the lake itself when it is a
        local folder (sealing is a rename there), else ``LOCKGATE_STAGING_DIR``."""
        if self.lake_is_local:
            return Path(self.lake_location)
        return self.staging_dir or self.project_root / "work" / "lake-staging"

    @property
    def warehouse_path(self) -> Path:
        return Path(self.warehouse)


def load_settings() -> Settings:
    root = _path("LOCKGATE_HOME", PROJECT_ROOT)
    jars = os.environ.get("LOCKGATE_JDBC_JARS")
    return Settings(
        project_root=root,
        sources_dir=_path("LOCKGATE_SOURCES_DIR", root / "dags" / "sources"),
        expectations_dir=_path("LOCKGATE_EXPECTATIONS_DIR", root / "expectations"),
        lake_location=_lake_location("LOCKGATE_LAKE_ROOT", root / "lake"),
        lake_conn_id=os.environ.get("LOCKGATE_LAKE_CONN_ID", "").strip() or "lockgate_lake",
        staging_dir=_path("LOCKGATE_STAGING_DIR", root / "work" / "lake-staging"),
        landing_root=_path("LOCKGATE_LANDING_ROOT", root / "landing"),
        warehouse=str(_path("LOCKGATE_WAREHOUSE", root / "warehouse" / "warehouse.duckdb")),
        warehouse_conn_id=os.environ.get("LOCKGATE_WAREHOUSE_CONN_ID", "").strip() or None,
        warehouse_max_connections=_positive("LOCKGATE_WAREHOUSE_MAX_CONNECTIONS", 4),
        spark_master=os.environ.get("LOCKGATE_SPARK_MASTER", "local[*]"),
        spark_remote=os.environ.get("LOCKGATE_SPARK_REMOTE") or None,
        spark_driver_memory=os.environ.get("LOCKGATE_SPARK_DRIVER_MEMORY", "2g"),
        spark_connect_port=_connect_port(),
        validation_engine=_choice("LOCKGATE_VALIDATION_ENGINE", ("auto", "spark")),
        jdbc_jars=tuple(j for j in (jars.split(",") if jars else DEFAULT_JDBC_JARS) if j),
    )
