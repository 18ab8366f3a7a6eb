"""The user contract: ``dags/sources/<source>.yml`` read into a typed model.

A bad file fails DAG import with one message that names the file, the table and the
field, e.g. ``dags/sources/shop.yml: table 'orders', field 'mode': Input should be
'full', 'append' or 'merge' (got 'upsert')``. Nothing here touches a database: the
model is built at DAG-parse time.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from lockgate import cursors, identifiers
from lockgate.errors import ConfigError

LoadMode = Literal["full", "append", "merge"]
QualityPolicy = Literal["fail", "quarantine", "warn"]
DeletePolicy = Literal["none", "delete", "flag"]
ReaderKind = Literal["auto", "arrow", "jdbc"]

_IDENT = r"^[A-Za-z_][A-Za-z0-9_]*$"
_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w)?\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks", None: "seconds"}
_CRON_PRESETS = {"@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@annually", "@midnight"}


def parse_duration(value: Any) -> timedelta:
    """``"90m"``, ``"1h"``, ``"2d"``, ``0`` or a :class:`timedelta` → :class:`timedelta`."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=float(value))
    match = _DURATION.match(str(value)) if isinstance(value, str) else None
    if not match:
        raise ValueError(f"expected a duration like '30m', '1h' or '2d' (got {value!r})")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


#: A duration written ``30s``, ``15m``, ``1h``, ``2d`` or ``1w`` (or seconds).
Duration = Annotated[timedelta, BeforeValidator(parse_duration)]

#: A source column name as the source spells it (:mod:`lockgate.identifiers`).
ColumnName = Annotated[str, BeforeValidator(identifiers.column_name)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


FILE_COLUMN = "_lockgate_file"
_FORMAT_DEFAULTS = {"tsv": ("\t", "", ""), "csv": (",", '"', '"')}


class WaitConfig(_Model):
    """Wait for a key in the landing zone before the extract (a sensor task).

    Args:
        key: a key under the landing zone, an Airflow template (``clicks/{{ ds }}/_SUCCESS``);
            ``*`` matches any characters.
        timeout: how long to wait before the run fails.
        poke_interval: how often to look.
    """

    key: str = Field(min_length=1)
    timeout: Duration = timedelta(hours=6)
    poke_interval: Duration = timedelta(seconds=60)


CheckPolicy = Literal["off", "warn", "fail"]


class CrossRunConfig(_Model):
    """Checks of a batch against the table's recent runs (:mod:`lockgate.cross_run`).

    Args:
        row_count: the batch's rows against the trend of the recent runs.
        freshness_lag: how far before the interval end the newest cursor lies, against
            the recent lags (time cursors).
        null_rate: each column's share of NULLs against its recent rates.
        history: how many recent published intervals are compared.
        min_history: fewer earlier runs than this and a check is skipped.
        band: the width of the accepted band in robust standard deviations (scaled MADs).
        row_count_tolerance: a row count within this share of the expected count is
            never an anomaly (0.25: ±25%).

    Each policy is ``warn`` (record, log, load), ``fail`` (stop the batch) or ``off``.
    """

    row_count: CheckPolicy = "warn"
    freshness_lag: CheckPolicy = "warn"
    null_rate: CheckPolicy = "warn"
    history: int = Field(default=14, ge=3, le=366)
    min_history: int = Field(default=5, ge=2, le=366)
    band: float = Field(default=4.0, gt=0, le=100)
    row_count_tolerance: float = Field(default=0.25, ge=0, le=10)

    @model_validator(mode="after")
    def _enough(self) -> CrossRunConfig:
        if self.min_history > self.history:
            raise ValueError(f"min_history ({self.min_history}) cannot exceed history ({self.history})")
        return self


class FilesConfig(_Model):
    """A table read from files that an application drops in a landing zone (TSV/CSV,
    gzip or plain), instead of from a database (:mod:`lockgate.landing`).

    Args:
        landing: the landing zone: ``s3://bucket/prefix`` (read through the Airflow ``aws``
            connection ``landing_conn_id`` of the source) or a folder; a relative folder is
            under ``LOCKGATE_LANDING_ROOT``. Defaults to the source's ``landing``.
        pattern: a glob under the landing zone (``clicks/*.tsv.gz``; ``**`` for any depth).
        format: ``tsv`` or ``csv``; ``delimiter``, ``quote`` and ``escape`` default to the
            format's (tab and no quoting; comma and ``"``).
        header: the first line names the columns.
        null_marker: the text that means NULL (default: an empty field).
        encoding: ``utf-8``, ``latin-1`` or ``utf-16``.
        compression: ``auto`` (gzip when the name ends in ``.gz``), ``gzip`` or ``none``.
        schema: the columns and their types (``bigint``, ``int``, ``double``,
            ``decimal(p,s)``, ``boolean``, ``date``, ``timestamp``, ``string``), in file
            order; without it the types are inferred from the batch's files.
        ready_marker: a file is taken only once an object of this name (``_SUCCESS``)
            exists in its folder.
        quiet_period: otherwise, only once it has not changed for this long.
        wait_for: a key to wait for before the extract (:class:`WaitConfig`); in S3 the
            Amazon provider's deferrable ``S3KeySensor`` waits (in the triggerer, not a
            worker slot), in a folder a sensor that reschedules itself.
    """

    landing: str | None = None
    pattern: str = Field(min_length=1)
    format: Literal["tsv", "csv"] = "tsv"
    delimiter: str | None = Field(default=None, min_length=1, max_length=1)
    quote: str | None = Field(default=None, max_length=1)
    escape: str | None = Field(default=None, max_length=1)
    header: bool = True
    null_marker: str = ""
    encoding: Literal["utf-8", "latin-1", "utf-16"] = "utf-8"
    compression: Literal["auto", "gzip", "none"] = "auto"
    schema_: dict[ColumnName, str] | None = Field(default=None, alias="schema")
    ready_marker: str | None = Field(default=None, pattern=r"^[^/]+$")
    quiet_period: Duration = timedelta(seconds=60)
    wait_for: WaitConfig | None = None

    @field_validator("pattern")
    @classmethod
    def _relative(cls, value: str) -> str:
        if value.startswith("/") or ".." in value.split("/"):
            raise ValueError(f"'pattern' is a glob under the landing zone, without '/' at the start or '..' (got {value!r})")
        return value

    @field_validator("schema_")
    @classmethod
    def _types(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        from lockgate.typemap import duckdb_type

        for column, spark_type in (value or {}).items():
            if duckdb_type(spark_type) is None or spark_type.startswith("array<"):
                raise ValueError(f"column '{column}': unknown file column type {spark_type!r}")
        if value is not None and FILE_COLUMN in value:
            raise ValueError(f"column '{FILE_COLUMN}' is Lockgate's own (the file each row came from)")
        return value

    @model_validator(mode="after")
    def _columns_known(self) -> FilesConfig:
        if not self.header and self.schema_ is None:
            raise ValueError("files without a header line need a declared 'schema' (the columns in file order)")
        return self

    @property
    def dialect(self) -> tuple[str, str, str]:
        """``(delimiter, quote, escape)`` with the format's defaults filled in."""
        delimiter, quote, escape = _FORMAT_DEFAULTS[self.format]
        quote = self.quote if self.quote is not None else quote
        escape = self.escape if self.escape is not None else (quote if self.quote is not None else escape)
        return self.delimiter or delimiter, quote, escape


class TableConfig(_Model):
    """One source table and how it is sliced, checked and loaded.

    Args:
        name: warehouse table name (an identifier).
        source_table: table or view in the source, optionally ``schema.table`` (a part may be
            in double quotes; :mod:`lockgate.identifiers`); defaults to ``name``.
        primary_key: key columns; required for ``merge``.
        mode: ``full`` (snapshot swap), ``append`` (replace the cursor slice) or
            ``merge`` (upsert by key, newest cursor wins).
        cursor: column that slices incremental runs, or ``COALESCE`` of columns
            (``{coalesce: [updated_at, created_at]}``); required unless ``full``.
        cursor_kind: ``timestamp``, ``date``, ``epoch_seconds``, ``epoch_millis`` or
            ``id`` (an ever-growing integer; :mod:`lockgate.cursors`).
        cursor_timezone: the zone of a cursor's wall clock when the column has no time
            zone (``timestamp``, ``DATETIME``, SQLite text); an IANA name.
        null_cursor: rows whose cursor is NULL: ``fail`` the run, ``include`` them in
            every read (``merge`` only) or ``exclude`` them (counted).
        lookback: re-read window before the interval start for late-committed rows.
        partition_column: numeric column for parallel JDBC reads; defaults to the
            first primary-key column.
        partitions: JDBC read partitions (upper bound; small slices use fewer).
        fetch_size: rows per JDBC round trip.
        reader: how Spark tasks read the source. ``arrow`` (PostgreSQL): each task
            streams its key range with the binary COPY protocol into Arrow (ADBC) and
            writes Parquet itself; ``jdbc``: Spark's JDBC reader; ``auto`` picks
            ``arrow`` where it applies and ``jdbc`` elsewhere.
        expectations: suite reference ``<source>/<table>`` under ``expectations/``.
        chunk_rows: a slice with more rows is extracted in key-range chunks, each
            kept on disk as it completes, so a retry resumes at the first missing chunk.
            Each chunk ends with a barrier (the cores idle while its last tasks finish):
            the default keeps a chunk at ~10 s of work on two cores, where 2M-row
            chunks cost 10% of a 5M-row extract.
        freshness: the newest cursor value of an interval's batch must be at most this
            old at the interval's end (a table-level check).
        reconcile_sum: a numeric column whose sum over the slice is computed by the
            source and must equal the sum of the rows loaded plus those quarantined.
        delete_propagation: ``delete`` removes, ``flag`` marks (``_lockgate_deleted_at``)
            warehouse rows whose key no longer exists in the source.
        on_quality_failure: ``fail`` stops the load; ``quarantine`` and ``warn`` are
            accepted by the model (see the README for their status).
        load_parallelism: a PostgreSQL warehouse loads the batch by this many parallel
            ``COPY`` streams (default: the cores), within ``LOCKGATE_WAREHOUSE_MAX_CONNECTIONS``.
        checks: checks of each batch against the table's recent runs
            (:class:`CrossRunConfig`): row count, freshness lag and NULL rates, ``warn`` by default.
    """

    name: str = Field(pattern=_IDENT)
    source_table: str | None = None
    primary_key: list[ColumnName] = Field(default_factory=list)
    mode: LoadMode = "merge"
    cursor: str | None = None
    cursor_kind: cursors.CursorKind = "timestamp"
    cursor_timezone: str = "UTC"
    null_cursor: cursors.NullCursorPolicy = "fail"
    lookback: timedelta = timedelta(0)
    partition_column: ColumnName | None = None
    partitions: int = Field(default=4, ge=1, le=256)
    fetch_size: int = Field(default=10_000, ge=1, le=1_000_000)
    reader: ReaderKind = "auto"
    expectations: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_\-]+/[A-Za-z0-9_\-]+$")
    on_quality_failure: QualityPolicy = "fail"
    chunk_rows: int = Field(default=10_000_000, ge=1)
    freshness: timedelta | None = None
    reconcile_sum: ColumnName | None = None
    delete_propagation: DeletePolicy = "none"
    load_parallelism: int | None = Field(default=None, ge=1, le=64)
    #: Column selection, pushed into the SELECT sent to the source (see _column_selection).
    columns: list[ColumnName] | None = None
    exclude_columns: list[ColumnName] = Field(default_factory=list)
    hash_columns: list[ColumnName] = Field(default_factory=list)
    #: Read from files in a landing zone instead of the source database.
    files: FilesConfig | None = None
    #: Checks against the table's recent runs (row count, freshness lag, NULL rates).
    checks: CrossRunConfig = Field(default_factory=CrossRunConfig)

    @field_validator("lookback", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> timedelta:
        return parse_duration(value)

    @field_validator("cursor", mode="before")
    @classmethod
    def _cursor(cls, value: Any) -> str | None:
        return None if value is None else cursors.canonical(cursors.parse_columns(value))

    @field_validator("source_table")
    @classmethod
    def _source_table(cls, value: str | None) -> str | None:
        if value is not None:
            identifiers.split_qualified(value)
        return value

    @field_validator("cursor_timezone")
    @classmethod
    def _cursor_timezone(cls, value: str) -> str:
        cursors.zone(value)
        return value

    @field_validator("freshness", mode="before")
    @classmethod
    def _optional_duration(cls, value: Any) -> timedelta | None:
        return None if value is None else parse_duration(value)

    @model_validator(mode="after")
    def _mode_needs(self) -> TableConfig:
        if self.files is not None and self.mode == "full":
            raise ValueError("a files table loads each file once: mode 'append' (by file) or 'merge' (by key)")
        if self.mode in ("append", "merge") and not self.cursor and not (self.files and self.mode == "append"):
            raise ValueError(f"mode '{self.mode}' needs a 'cursor' column to slice intervals")
        if self.mode == "merge" and not self.primary_key:
            raise ValueError("mode 'merge' needs a 'primary_key'")
        if self.delete_propagation != "none" and not self.primary_key:
            raise ValueError(f"delete_propagation '{self.delete_propagation}' needs a 'primary_key'")
        if self.lookback < timedelta(0):
            raise ValueError("'lookback' must not be negative")
        if self.cursor_kind == "id" and (self.lookback or self.freshness):
            raise ValueError(
                "cursor_kind 'id' slices by id, not by time: 'lookback' and 'freshness' do not apply (rows that "
                "commit late behind the highest id are re-read by the watermark rule, see the README)"
            )
        if self.null_cursor == "include" and self.mode != "merge":
            raise ValueError(
                "null_cursor 'include' reads NULL-cursor rows on every run: only mode 'merge' loads that "
                "idempotently (by key); use 'exclude' or 'fail'"
            )
        return self

    @property
    def cursor_columns(self) -> tuple[str, ...]:
        """The columns the cursor reads (one, or those of its ``COALESCE``)."""
        return cursors.parse_columns(self.cursor) if self.cursor else ()

    @model_validator(mode="after")
    def _column_selection(self) -> TableConfig:
        """``columns`` (include list) or ``exclude_columns``, and ``hash_columns``: the
        columns Lockgate itself needs (key, cursor, partition and reconcile columns) are
        read as they are. Names the source lacks are reported at the first run."""
        if self.columns is not None and self.exclude_columns:
            raise ValueError("give either 'columns' (the columns to read) or 'exclude_columns', not both")
        needed = {c: "primary key" for c in self.primary_key}
        roles = [*(("cursor", c) for c in self.cursor_columns), ("partition_column", self.partition_column),
                 ("reconcile_sum", self.reconcile_sum)]  # fmt: skip
        for role, column in roles:
            if column:
                needed.setdefault(column, role)
        for column, role in needed.items():
            if column in self.exclude_columns:
                raise ValueError(f"column '{column}' is the table's {role}; it may not be excluded")
            if self.columns is not None and column not in self.columns:
                raise ValueError(f"column '{column}' is the table's {role}; 'columns' must include it")
            if column in self.hash_columns:
                raise ValueError(f"column '{column}' is the table's {role}; it may not be hashed")
        for column in self.hash_columns:
            if column in self.exclude_columns or (self.columns is not None and column not in self.columns):
                raise ValueError(f"column '{column}' is in 'hash_columns' but is not read")
        return self

    @model_validator(mode="after")
    def _warehouse_names(self) -> TableConfig:
        """Names this table lists that would be one warehouse column (``Id``/``id``)."""
        for group in (self.primary_key, self.columns or [], self.hash_columns, self.exclude_columns,
                      [*self.primary_key, *self.cursor_columns, self.partition_column, self.reconcile_sum]):  # fmt: skip
            pairs = identifiers.collisions(dict.fromkeys(n for n in group if n))
            if pairs:
                raise ValueError(identifiers.collision_message(pairs))
        return self

    @property
    def source_name(self) -> str:
        """``source_table`` as written (``schema.table``, parts possibly quoted)."""
        return self.source_table or self.name

    @property
    def source_parts(self) -> tuple[str, ...]:
        """The source table's name (and schema or database) as the source spells them."""
        return identifiers.split_qualified(self.source_table) if self.source_table else (self.name,)

    @property
    def split_column(self) -> str | None:
        return self.partition_column or (self.primary_key[0] if self.primary_key else None)

    @property
    def incremental(self) -> bool:
        return self.mode != "full"


class SourceConfig(_Model):
    """One source database; becomes the DAG ``ingest_<source>``."""

    source: str = Field(pattern=_IDENT)
    description: str = ""
    #: The source database's Airflow connection (not needed when every table reads files).
    connection: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_\-.]+$")
    #: The landing zone of the tables that read files (``s3://bucket/prefix`` or a folder).
    landing: str | None = None
    #: The Airflow ``aws`` connection of an S3 landing zone (default: the lake's).
    landing_conn_id: str | None = None
    schedule: str = "@daily"
    start_date: datetime
    owner: str = "lockgate"
    retries: int = Field(default=3, ge=0, le=20)
    retry_delay: timedelta = timedelta(seconds=30)
    max_retry_delay: timedelta = timedelta(minutes=10)
    max_active_runs: int = Field(default=4, ge=1, le=64)
    #: Airflow's catchup: create a run for every interval missed while the DAG was
    #: paused or the scheduler was down. Off by default: the next run reads the gap
    #: anyway (from the watermark), in one slice.
    catchup: bool = False
    tags: list[str] = Field(default_factory=list)
    raw_retention: timedelta = timedelta(days=30)
    tables: list[TableConfig] = Field(min_length=1)

    @field_validator("source")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value.lower() in ("lockgate", "lake", "main", "information_schema", "pg_catalog", "warehouse"):
            raise ValueError(f"'{value}' is reserved for a warehouse schema; choose another source name")
        return value

    @field_validator("start_date", mode="before")
    @classmethod
    def _aware(cls, value: Any) -> Any:
        if isinstance(value, date) and not isinstance(value, datetime):
            return datetime(value.year, value.month, value.day, tzinfo=UTC)
        return value

    @field_validator("start_date")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    @field_validator("retry_delay", "max_retry_delay", "raw_retention", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> timedelta:
        return parse_duration(value)

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        value = value.strip()
        if value in _CRON_PRESETS or _DURATION.match(value):
            return value
        fields = value.split()
        if len(fields) in (5, 6) and all(re.fullmatch(r"[0-9*/,\-A-Za-z?LW#]+", f) for f in fields):
            return value
        raise ValueError(
            f"expected a cron expression, one of {sorted(_CRON_PRESETS)} or a duration like '6h' (got {value!r})"
        )

    @model_validator(mode="after")
    def _where_tables_come_from(self) -> SourceConfig:
        for table in self.tables:
            if table.files is None and not self.connection:
                raise ValueError(f"table '{table.name}' reads the source database: the source needs a 'connection'")
            if table.files is not None and not (table.files.landing or self.landing):
                raise ValueError(f"table '{table.name}' reads files: give 'landing' (the source's or the table's)")
        return self

    @model_validator(mode="after")
    def _unique_tables(self) -> SourceConfig:
        seen: set[str] = set()
        for table in self.tables:
            if table.name in seen:
                raise ValueError(f"table '{table.name}' is declared twice")
            seen.add(table.name)
        pairs = identifiers.collisions(t.name for t in self.tables)
        if pairs:
            raise ValueError(identifiers.collision_message(pairs, "tables"))
        return self

    @property
    def dag_id(self) -> str:
        return f"ingest_{self.source}"

    def table(self, name: str) -> TableConfig:
        for table in self.tables:
            if table.name == name:
                return table
        raise ConfigError(f"source '{self.source}' has no table '{name}'")


def _describe(loc: tuple[Any, ...], raw: Any) -> str:
    """Turn a pydantic error location into "table 'orders', field 'mode'"."""
    parts: list[str] = []
    rest = list(loc)
    if len(rest) >= 2 and rest[0] == "tables" and isinstance(rest[1], int):
        index = rest[1]
        name = None
        if isinstance(raw, dict) and isinstance(raw.get("tables"), list) and index < len(raw["tables"]):
            entry = raw["tables"][index]
            name = entry.get("name") if isinstance(entry, dict) else None
        parts.append(f"table '{name}'" if name else f"table #{index + 1}")
        rest = rest[2:]
    fields = [str(p) for p in rest if not isinstance(p, int) and not str(p).startswith("function-")]
    if fields:
        parts.append(f"field '{'.'.join(fields)}'")
    return ", ".join(parts) or "top level"


def parse_source(raw: Any, origin: str) -> SourceConfig:
    """Validate an already-parsed YAML document; ``origin`` names it in errors."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{origin}: expected a mapping with 'source', 'connection' and 'tables'")
    try:
        return SourceConfig.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "missing":
                message = "is required"
            elif err["type"] == "extra_forbidden":
                message = "is not a known setting"
            elif "input" in err and err["type"] not in ("model_type",) and not isinstance(err["input"], dict):
                message = f"{message} (got {err['input']!r})"
            problems.append(f"{origin}: {_describe(tuple(err['loc']), raw)}: {message}")
        raise ConfigError("\n".join(problems)) from None


def load_source_file(path: str | Path) -> SourceConfig:
    """Read and validate one source file."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such source file") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    config = parse_source(raw, str(path))
    if config.source != path.stem:
        raise ConfigError(f"{path}: field 'source' is '{config.source}' but the file is named '{path.stem}.yml'")
    return config


def source_files(sources_dir: str | Path) -> list[Path]:
    directory = Path(sources_dir)
    return sorted([*directory.glob("*.yml"), *directory.glob("*.yaml")])


def load_sources(sources_dir: str | Path) -> dict[str, SourceConfig]:
    """Every source in ``sources_dir``; the first bad file raises :class:`ConfigError`."""
    sources: dict[str, SourceConfig] = {}
    for path in source_files(sources_dir):
        config = load_source_file(path)
        same = [s for s in sources if identifiers.warehouse_key(s) == identifiers.warehouse_key(config.source)]
        if same:  # one warehouse schema (DuckDB names are case-insensitive)
            raise ConfigError(f"{path}: source '{config.source}' is declared in two files (as '{same[0]}')")
        sources[config.source] = config
    return sources


def load_source(sources_dir: str | Path, source: str) -> SourceConfig:
    for suffix in (".yml", ".yaml"):
        path = Path(sources_dir) / f"{source}{suffix}"
        if path.exists():
            return load_source_file(path)
    raise ConfigError(f"no source file {Path(sources_dir) / (source + '.yml')}")
