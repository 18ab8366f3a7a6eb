"""Source databases: Airflow connection → JDBC target, and each engine's SQL dialect.

A :class:`JdbcSource` holds what Spark needs to read a source (URL, driver class,
credentials) plus the small pieces of SQL that differ between engines: identifier
quoting, timestamp literals, and the type fix-ups an engine needs so that nothing is
read lossily (SQLite ``INTEGER`` would become a 32-bit Spark int, its timestamps are
text). ``repr`` never shows the password.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal
from urllib.parse import quote

from lockgate import identifiers, redact
from lockgate.errors import ConfigError

Engine = Literal["postgres", "mariadb", "sqlite"]

_CONN_TYPES: dict[str, Engine] = {
    "postgres": "postgres",
    "postgresql": "postgres",
    "mysql": "mariadb",
    "mariadb": "mariadb",
    "sqlite": "sqlite",
}

DRIVERS: dict[Engine, str] = {
    "postgres": "org.postgresql.Driver",
    "mariadb": "org.mariadb.jdbc.Driver",
    "sqlite": "org.sqlite.JDBC",
}


@dataclass(frozen=True)
class JdbcSource:
    """Everything needed to reach one source over JDBC."""

    engine: Engine
    url: str
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    database: str | None = None
    properties: dict[str, str] = field(default_factory=dict)
    host: str | None = None
    port: int | None = None

    @property
    def driver(self) -> str:
        return DRIVERS[self.engine]

    def jdbc_options(self) -> dict[str, str]:
        """Spark JDBC options common to every read (the driver option is mandatory)."""
        options = {"url": self.url, "driver": self.driver, **self.properties}
        if self.user:
            options["user"] = self.user
        if self.password:
            options["password"] = self.password
        if self.engine == "mariadb":
            # DATETIME/TIMESTAMP values are read in the session time zone: pin it to UTC.
            options["sessionInitStatement"] = "SET time_zone = '+00:00'"
            options.update(_mariadb_type_options(self.properties))
        return options

    # --- SQL dialect -------------------------------------------------------------
    def quote(self, identifier: str) -> str:
        if self.engine == "mariadb":
            return "`" + identifier.replace("`", "``") + "`"
        return '"' + identifier.replace('"', '""') + '"'

    def table_ref(self, name: str) -> str:
        """``table`` or ``schema.table`` (parts possibly in double quotes, see
        :mod:`lockgate.identifiers`), each part quoted for this engine."""
        return ".".join(self.quote(part) for part in identifiers.split_qualified(name))

    def timestamp_literal(self, value: datetime) -> str:
        """A literal comparable with the engine's timestamp columns, in UTC."""
        value = value.astimezone(UTC) if value.tzinfo else value
        text = value.strftime("%Y-%m-%d %H:%M:%S")
        if value.microsecond:
            text += f".{value.microsecond:06d}"
        if self.engine == "postgres":
            # Untyped on purpose: compared with timestamptz the offset is honoured, with
            # timestamp (without time zone) it is ignored; both mean UTC here.
            return f"'{text}+00'"
        return f"'{text}'"

    def libpq_uri(self) -> str:
        """A ``postgresql://`` URI for native (non-JDBC) PostgreSQL clients such as ADBC.

        It holds the password: pass it to a client, never log it."""
        if self.engine != "postgres" or not self.host:
            raise ConfigError(f"source {self.describe()}: no native PostgreSQL address")
        auth = ""
        if self.user:
            auth = quote(self.user, safe="")
            if self.password:
                auth += ":" + quote(self.password, safe="")
            auth += "@"
        return f"postgresql://{auth}{self.host}:{self.port or 5432}/{quote(self.database or '', safe='')}"

    def describe(self) -> str:
        """Where the source is, without credentials."""
        return self.url.split("?", 1)[0]


def _mariadb_type_options(properties: dict[str, str]) -> dict[str, str]:
    """Driver properties that keep MariaDB values as they are (the connection's own
    ``jdbc_properties`` win): YEAR is a number (2011), not the date 2011-01-01."""
    return {"yearIsDateType": "false"} if "yearIsDateType" not in properties else {}


def _normalise_engine(conn_type: str | None, conn_id: str) -> Engine:
    engine = _CONN_TYPES.get((conn_type or "").lower())
    if engine is None:
        raise ConfigError(
            f"connection '{conn_id}': type '{conn_type}' is not supported "
            f"(use one of {sorted(set(_CONN_TYPES))})"
        )
    return engine


def source_from_connection(conn, conn_id: str) -> JdbcSource:
    """Build a :class:`JdbcSource` from an Airflow ``Connection``-like object."""
    engine = _normalise_engine(conn.conn_type, conn_id)
    extra = conn.extra_dejson if hasattr(conn, "extra_dejson") else {}
    properties = {str(k): str(v) for k, v in (extra.get("jdbc_properties") or {}).items()}
    if engine == "sqlite":
        path = conn.host or conn.schema
        if not path:
            raise ConfigError(f"connection '{conn_id}': a sqlite connection needs the database file path")
        path = str(Path(path).expanduser())
        if not Path(path).exists():
            raise ConfigError(f"connection '{conn_id}': sqlite database {path} does not exist")
        return JdbcSource(engine, f"jdbc:sqlite:{path}", database=path, properties=properties)
    if not conn.host:
        raise ConfigError(f"connection '{conn_id}': host is missing")
    database = conn.schema or ""
    if not database:
        raise ConfigError(f"connection '{conn_id}': database (schema) is missing")
    port = conn.port or (5432 if engine == "postgres" else 3306)
    # From here on, Lockgate's and py4j's logs (and Airflow's, in a task) mask the password.
    redact.register(conn.password)
    # MariaDB is reached with a jdbc:mysql: URL on purpose: Spark picks its SQL dialect
    # by URL prefix, and only the MySQL dialect quotes identifiers with backticks (the
    # generic one uses double quotes, which MariaDB reads as string literals).
    # Connector/J 3.x needs permitMysqlScheme to accept that prefix; 2.x ignores it.
    url = (
        f"jdbc:postgresql://{conn.host}:{port}/{database}"
        if engine == "postgres"
        else f"jdbc:mysql://{conn.host}:{port}/{database}?permitMysqlScheme"
    )
    return JdbcSource(
        engine,
        url,
        user=conn.login or None,
        password=conn.password or None,
        database=database,
        properties=properties,
        host=conn.host,
        port=int(port),
    )


def resolve_source(conn_id: str) -> JdbcSource:
    """Look up an Airflow connection: ``AIRFLOW_CONN_<ID>`` first, then Airflow itself."""
    from airflow.sdk import Connection

    env = os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}")
    if env:
        try:
            conn = (
                Connection.from_json(env, conn_id=conn_id)
                if env.lstrip().startswith("{")
                else Connection.from_uri(env, conn_id=conn_id)
            )
        except json.JSONDecodeError as exc:  # says where, never what
            raise ConfigError(f"connection '{conn_id}': AIRFLOW_CONN_{conn_id.upper()} is malformed ({exc})") from None
        except ValueError:
            # The parser's message quotes pieces of the URI ("Port could not be cast to
            # integer value as 'pa'" for a password with a raw '/'): never repeat it.
            raise ConfigError(
                f"connection '{conn_id}': AIRFLOW_CONN_{conn_id.upper()} is malformed (in a URI, percent-encode "
                "the login and password, e.g. with urllib.parse.quote(value, safe=''))"
            ) from None
        return source_from_connection(conn, conn_id)
    try:
        conn = Connection.get(conn_id)
    except Exception as exc:  # the SDK raises its own not-found type
        raise ConfigError(f"connection '{conn_id}' is not defined in Airflow ({type(exc).__name__})") from None
    return source_from_connection(conn, conn_id)
