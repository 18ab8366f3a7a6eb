"""The warehouse interface: what the stages ask of a warehouse, whichever it is.

Two implementations: :class:`~lockgate.warehouse.duck.DuckWarehouse` (a DuckDB file,
the embedded default) and :class:`~lockgate.warehouse.postgres.PostgresWarehouse` (a
server reached through an Airflow connection). The stages, the audit trail and the
load rules (:mod:`lockgate.warehouse.load`) speak to this interface only; the SQL they
send is the dialect both engines accept (``?`` placeholders, ``BEGIN TRANSACTION``,
``DELETE … USING``, ``TIMESTAMPTZ '…'`` literals).

A Redshift adapter would be a third implementation: its :meth:`Warehouse.stage` would
upload the split parts to S3 and ``COPY`` them from a manifest (what the Amazon
provider's ``S3ToRedshiftOperator`` emits), the rest of the load is the same SQL.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lockgate.identifiers import sql_ident


@dataclass(frozen=True)
class Batch:
    """The sealed raw batch a load reads: its Parquet files and the columns to load."""

    files: list[str]
    columns: list[str]
    #: Warehouse (DuckDB vocabulary) type of each column, for an implementation that
    #: creates its own staging table.
    types: dict[str, str] = field(default_factory=dict)
    #: ``(rule name, DuckDB predicate true for a breaking row)``: rows set aside.
    quarantine: list[tuple[str, str]] = field(default_factory=list)
    quarantine_file: str | Path | None = None
    sum_column: str | None = None
    #: The table the staged rows go to (names a PostgreSQL staging table).
    source: str = ""
    table: str = ""
    run_id: str = ""
    #: How many parallel streams the table asks for (``load_parallelism``).
    parallel: int | None = None
    #: A merge's key: the stage counts the distinct keys (DuckDB does it in a fraction of
    #: the time PostgreSQL takes on the staging table).
    primary_key: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Staged:
    """A batch staged in the warehouse: the relation the load reads, and its counts."""

    relation: str
    rows: int
    quarantined: int
    sum: str | None
    parts: int = 1
    #: ``VIEW`` or ``TABLE``: what the relation is (DuckDB stages a view when it can).
    kind: str = "TABLE"
    #: Distinct ``primary_key`` values among the rows to load (when the batch named a key).
    distinct_keys: int | None = None


class QueryError(Exception):
    """A user's query (``lockgate sql``) that the warehouse refused; the message says why."""


class Warehouse(ABC):
    """One open warehouse session (use :func:`lockgate.warehouse.connect`)."""

    #: ``duckdb`` or ``postgres``.
    kind: str

    @abstractmethod
    def execute(self, sql: str, params: list | tuple | None = None) -> Any:
        """Run one statement; the result has ``fetchone``, ``fetchall`` and ``description``."""

    @abstractmethod
    def columns(self, schema: str, table: str) -> dict[str, str]:
        """A table's columns and their types, in the DuckDB vocabulary of
        :mod:`lockgate.typemap` (``BIGINT``, ``DECIMAL(18,2)``, ``VARCHAR[]``…)."""

    @abstractmethod
    def native_type(self, duck_type: str) -> str:
        """The column type to declare for a DuckDB-vocabulary type."""

    def comparable(self, duck_type: str) -> str:
        """A DuckDB-vocabulary type as :meth:`columns` will report it once created."""
        return duck_type

    @abstractmethod
    def stage(self, batch: Batch) -> Staged:
        """Make the batch readable as one relation of this session, rows that break the
        quarantine rules set aside (written to ``batch.quarantine_file``)."""

    @abstractmethod
    def unstage(self, staged: Staged) -> None:
        """Drop what :meth:`stage` made."""

    @abstractmethod
    def show(self, query: str, *, max_rows: int) -> str:
        """A read-only query's rows as a text table (:class:`QueryError` if refused)."""

    @abstractmethod
    def fingerprint(self, schema: str, table: str) -> tuple[int, str]:
        """Row count and an order-independent checksum of every row's values."""

    @abstractmethod
    def lake_view(self, name: str, query: str | None) -> None:
        """Create (or drop, when ``query`` is None) the lake view ``lake.<name>``."""

    @abstractmethod
    def lock_table(self, source: str, table: str) -> None:
        """Serialise loads of one table until the transaction ends."""

    @property
    @abstractmethod
    def dataset_namespace(self) -> str:
        """The warehouse as an OpenLineage dataset namespace (no secret in it)."""

    def ensure_schema(self, name: str) -> None:
        """``CREATE SCHEMA IF NOT EXISTS``, safe against another transaction doing the same."""
        self.execute(f"CREATE SCHEMA IF NOT EXISTS {sql_ident(name)}")

    def temp_table(self, name: str, query: str) -> None:
        """``CREATE TEMP TABLE name AS query``, replacing one of that name."""
        self.execute(f"DROP TABLE IF EXISTS {name}")
        self.execute(f"CREATE TEMP TABLE {name} AS {query}")
