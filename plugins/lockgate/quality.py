"""Veracity: run a table's Great Expectations suite on a batch and report it clearly.

Suites live in git as ``expectations/<source>/<table>.json``::

    {"name": "shop.orders",
     "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "order_id"},
         "meta": {"rule": "order_id is the primary key"}}]}

``type`` is any Great Expectations 1.x expectation (snake_case), ``kwargs`` its
arguments, ``meta.rule`` an optional human sentence used in error messages. A suite is
checked when it is loaded: an unknown expectation or a wrong argument is a
:class:`~lockgate.errors.ConfigError` that names the file, the expectation and the
argument, before any data is read.

Validation uses an ephemeral GX context (nothing is written to a ``gx/`` folder) and one
of three engines (:func:`choose_engine`): a small batch (at most :data:`IN_PROCESS_ROWS`
rows) whose rules mean exactly the same on GX's pandas engine (:func:`in_process_reason`)
is validated by that engine in the calling process; a larger one whose rules mean the
same in DuckDB's SQL by GX's SQL engine on DuckDB over the sealed Parquet files
(:mod:`lockgate.gx_duckdb`); anything else as a whole-DataFrame batch on the Spark
DataFrame the caller passes in. Same suite, report and Data Docs page on each. GX is
imported inside the functions: DAG parsing stays light.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import uuid
import warnings
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lockgate.errors import ConfigError, LockgateError
from lockgate.typemap import spark_name

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


class QualityError(LockgateError):
    """A batch broke its table's expectations; the load was stopped."""

    def __init__(self, message: str, report: ValidationReport | None = None) -> None:
        super().__init__(message)
        self.report = report


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}…({len(str(value))} characters)"


@dataclass
class RuleResult:
    """One expectation's outcome on one batch."""

    expectation: str
    kwargs: dict[str, Any]
    rule: str | None
    success: bool
    element_count: int | None = None
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    unexpected_examples: list[Any] = field(default_factory=list)
    observed_value: Any = None
    exception: str | None = None
    #: A SQL predicate that is true for the rows breaking this rule, when the rule is
    #: row-level (what ``quarantine`` can set aside); None for table-level rules.
    row_predicate: str | None = None

    @property
    def name(self) -> str:
        column = self.kwargs.get("column") or self.kwargs.get("column_list")
        return self.rule or (f"{self.expectation}({column})" if column else self.expectation)

    def describe(self) -> str:
        column = self.kwargs.get("column") or self.kwargs.get("column_list")
        target = f" on {column}" if column else ""
        text = f"{self.expectation}{target}"
        if self.rule:
            text += f" ({self.rule})"
        if self.exception:
            return f"{text}: could not be evaluated: {self.exception}"
        details = []
        if self.unexpected_count:
            details.append(f"{self.unexpected_count} of {self.element_count} rows broke it")
        if self.unexpected_examples:
            details.append("e.g. " + ", ".join(_short(v) for v in self.unexpected_examples[:5]))
        if self.observed_value is not None and not self.unexpected_count:
            details.append(f"observed {self.observed_value!r}")
        return f"{text}: " + "; ".join(details) if details else text


@dataclass
class ValidationReport:
    """The outcome of one suite on one batch, as stored in ``lake/quality/…``."""

    table: str
    suite: str
    success: bool
    evaluated: int
    passed: int
    failed: int
    row_count: int | None
    results: list[RuleResult]
    validated_at: str
    gx_version: str
    docs_page: str | None = None
    #: GX's engine for the suite: pandas (small batches), duckdb or spark.
    engine: str | None = None

    def add(self, result: RuleResult) -> None:
        """Add a check Lockgate evaluated itself (row count, freshness, ...)."""
        self.results.append(result)
        self.evaluated += 1
        if result.success:
            self.passed += 1
        else:
            self.failed += 1
            self.success = False

    def failed_rules(self) -> list[RuleResult]:
        return [r for r in self.results if not r.success]

    def failure_message(self) -> str:
        broken = self.failed_rules()
        rows = self.row_count if self.row_count is not None else "?"
        lines = [f"{self.table}: {len(broken)} of {self.evaluated} rules failed on {rows} rows (suite '{self.suite}')"]
        lines += [f"  - {r.describe()}" for r in broken]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _q(identifier: str) -> str:
    return '"' + str(identifier).replace('"', '""') + '"'


def _lit(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def _not_finite(column: str) -> str:
    # NaN and ±Infinity break every range rule (DuckDB orders NaN above +Infinity).
    return f"(TRY_CAST({column} AS DOUBLE) IS NOT NULL AND (isnan(TRY_CAST({column} AS DOUBLE)) OR isinf(TRY_CAST({column} AS DOUBLE))))"


def row_predicate(kind: str, kwargs: dict[str, Any]) -> str | None:
    """DuckDB SQL that is true for a row breaking a row-level rule (None: table-level).

    Used to set failing rows aside (``quarantine``): the rule's verdict comes from Great
    Expectations; this only finds the rows. NULLs pass every rule but ``not_be_null``,
    as in GX.
    """
    column = kwargs.get("column")
    col = _q(column) if column else None
    if kind == "expect_column_values_to_not_be_null":
        return f"{col} IS NULL"
    if kind == "expect_column_values_to_be_in_set":
        values = ", ".join(_lit(v) for v in kwargs.get("value_set") or [])
        return f"{col} IS NOT NULL AND {col} NOT IN ({values or 'NULL'})"
    if kind == "expect_column_values_to_not_be_in_set":
        values = ", ".join(_lit(v) for v in kwargs.get("value_set") or [])
        return f"{col} IS NOT NULL AND {col} IN ({values or 'NULL'})"
    if kind in ("expect_column_values_to_be_between", "expect_column_value_lengths_to_be_between"):
        value = f"length({col})" if kind.startswith("expect_column_value_lengths") else col
        terms = []
        low, high = kwargs.get("min_value"), kwargs.get("max_value")
        if low is not None:
            terms.append(f"{value} {'<=' if kwargs.get('strict_min') else '<'} {_lit(low)}")
        if high is not None:
            terms.append(f"{value} {'>=' if kwargs.get('strict_max') else '>'} {_lit(high)}")
        if kind == "expect_column_values_to_be_between":
            terms.append(_not_finite(col))
        return f"{col} IS NOT NULL AND ({' OR '.join(terms) or 'FALSE'})"
    if kind == "expect_column_values_to_match_regex":
        return f"{col} IS NOT NULL AND NOT regexp_matches(CAST({col} AS VARCHAR), {_lit(kwargs['regex'])})"
    if kind == "expect_column_values_to_not_match_regex":
        return f"{col} IS NOT NULL AND regexp_matches(CAST({col} AS VARCHAR), {_lit(kwargs['regex'])})"
    if kind == "expect_column_values_to_be_unique":
        return f"{col} IN (SELECT {col} FROM lockgate_stage GROUP BY {col} HAVING count(*) > 1)"
    if kind == "expect_compound_columns_to_be_unique":
        cols = ", ".join(_q(c) for c in kwargs["column_list"])
        return f"({cols}) IN (SELECT ({cols}) FROM lockgate_stage GROUP BY {cols} HAVING count(*) > 1)"
    if kind == "expect_column_pair_values_a_to_be_greater_than_b":
        a, b = _q(kwargs["column_A"]), _q(kwargs["column_B"])
        op = "<" if kwargs.get("or_equal") else "<="
        return f"{a} IS NOT NULL AND {b} IS NOT NULL AND {a} {op} {b}"
    return None


def suite_path(expectations_dir: Path, name: str) -> Path:
    return Path(expectations_dir) / f"{name}.json"


def _expectation_classes() -> dict[str, type]:
    import great_expectations.expectations as gxe
    from great_expectations.expectations.expectation import Expectation

    classes = {}
    for attr in dir(gxe):
        obj = getattr(gxe, attr)
        if isinstance(obj, type) and issubclass(obj, Expectation) and obj is not Expectation:
            snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in attr).lstrip("_")
            classes[snake] = obj
    return classes


def build_expectation(spec: dict[str, Any], where: str):
    """A GX expectation object from one ``{"type", "kwargs", "meta"}`` entry."""
    if not isinstance(spec, dict) or "type" not in spec:
        raise ConfigError(f"{where}: each expectation needs a 'type' (got {spec!r})")
    kind = spec["type"]
    cls = _expectation_classes().get(kind)
    if cls is None:
        raise ConfigError(f"{where}: unknown expectation type '{kind}'")
    kwargs = spec.get("kwargs") or {}
    if not isinstance(kwargs, dict):
        raise ConfigError(f"{where}, expectation '{kind}': 'kwargs' must be an object")
    try:
        return cls(**kwargs, meta=spec.get("meta") or None)
    except (TypeError, ValueError) as exc:
        # GX models are pydantic (v1 API) models: report each bad argument by name.
        errors = exc.errors() if callable(getattr(exc, "errors", None)) else None
        if errors:
            problems = "; ".join(_describe_argument_error(err) for err in errors)
        else:
            problems = str(exc)
        raise ConfigError(f"{where}, expectation '{kind}': {problems}") from None


def _describe_argument_error(err: dict[str, Any]) -> str:
    name = ".".join(str(p) for p in err.get("loc", ()) if p != "__root__")
    message = err.get("msg", "invalid")
    if message.startswith("extra fields not permitted"):
        return f"unknown argument '{name}'"
    if message.startswith("field required"):
        return f"missing argument '{name}'"
    return f"argument '{name}': {message}" if name else message


def load_suite(expectations_dir: Path, name: str) -> dict[str, Any]:
    """Read and check ``expectations/<name>.json``; every entry must build in GX."""
    path = suite_path(expectations_dir, name)
    if not path.exists():
        raise ConfigError(f"expectation suite '{name}' not found: {path} does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    if not isinstance(data, dict) or not isinstance(data.get("expectations"), list):
        raise ConfigError(f"{path}: a suite is an object with an 'expectations' list")
    data.setdefault("name", name.replace("/", "."))
    for index, spec in enumerate(data["expectations"]):
        build_expectation(spec, f"{path}: expectation #{index + 1}")
    data["path"] = str(path)
    return data


_COLUMN_KWARGS = ("column", "column_list", "column_A", "column_B")


def columns_read(suite: dict[str, Any]) -> set[str] | None:
    """The columns whose values the suite's rules read, or ``None`` for "all of them".

    ``expect_table_*`` rules look at the schema or the row count only; column rules read
    the columns their arguments name. A rule of another kind reads everything.
    """
    needed: set[str] = set()
    for spec in suite.get("expectations", []):
        kind = str(spec.get("type", ""))
        kwargs = spec.get("kwargs") or {}
        if kind.startswith("expect_table_"):
            continue
        if not kind.startswith(("expect_column_", "expect_compound_columns_", "expect_multicolumn_")):
            return None
        for key in _COLUMN_KWARGS:
            value = kwargs.get(key)
            if isinstance(value, str):
                needed.add(value)
            elif isinstance(value, list):
                needed.update(str(v) for v in value)
        if kwargs.get("row_condition"):
            return None  # a condition may read any column
    return needed


#: A batch of at most this many rows may be validated by GX's pandas engine in process.
IN_PROCESS_ROWS = 50_000

# Rules that read only whether a value is missing or repeated: the same on every engine
# for every column type except floating point (see below).
_ANY_COLUMN = {
    "expect_column_values_to_not_be_null", "expect_column_values_to_be_null",
    "expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique",
    "expect_select_column_values_to_be_unique_within_record",
}  # fmt: skip
# Rules that read no values at all (names, counts): the same on every engine.
_SCHEMA_RULES = {
    "expect_table_columns_to_match_set", "expect_table_columns_to_match_ordered_list",
    "expect_table_row_count_to_be_between", "expect_table_row_count_to_equal",
    "expect_table_column_count_to_equal", "expect_column_to_exist",
}  # fmt: skip
_TEXT_RULES = {
    "expect_column_values_to_match_regex", "expect_column_values_to_not_match_regex",
    "expect_column_value_lengths_to_be_between", "expect_column_value_lengths_to_equal",
}  # fmt: skip


def _value_kind(spark_type: str) -> str:
    t = spark_type.lower()
    if t in ("float", "double"):
        return "float"
    if t in ("bigint", "int", "smallint", "tinyint"):
        return "number"
    if t.startswith("decimal"):
        precision = int(t[t.index("(") + 1 : t.index(",")]) if "(" in t else 10
        return "number" if precision <= 15 else "wide decimal"  # exact as a float64
    if t == "string" or t.startswith(("varchar", "char")):
        return "text"
    if t == "boolean":
        return "bool"
    if t in ("timestamp", "timestamp_ntz"):
        return "time"
    return t


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_REGEX_ESCAPE = re.compile(r"\\(.)", re.S)


def _portable_regex(pattern: Any) -> bool:
    """Whether ``pattern`` means the same to Python's ``re`` (GX's pandas engine) and
    to Java's regex (Spark's ``rlike``). Conservative: classes like ``\\d``, ``\\w``,
    ``\\s`` (Unicode in Python, ASCII in Java), ``\\p{..}``, possessive quantifiers,
    class intersections and POSIX brackets are left to Spark."""
    if not isinstance(pattern, str) or any(token in pattern for token in ("++", "*+", "?+", "}+", "&&", "[[")):
        return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # Python warns where it may change meaning later
            re.compile(pattern)
    except (re.error, FutureWarning, DeprecationWarning):
        return False
    return all(not c.isalnum() or c in "xuntr" for c in _REGEX_ESCAPE.findall(pattern))


def in_process_reason(suite: dict[str, Any], schema: list[dict[str, Any]], *, regexes: bool = True) -> str | None:
    """Why the suite must run on Spark for a batch with this (manifest) schema, or
    ``None`` when every rule means the same on GX's pandas engine — and on its SQL
    engine over DuckDB when ``regexes`` is false (DuckDB's RE2 is not Java's regex).

    The rules allowed are those whose outcome cannot depend on the engine: presence,
    uniqueness and schema rules on any column but floating point ones (pandas treats
    NaN as missing, Spark does not); numeric ranges and sets with numeric bounds on
    integer and decimal columns; text sets, lengths and regexes that Python and Java
    read alike (:func:`_portable_regex`) on text columns.
    Anything else runs on Spark: type rules, row conditions, comparisons Spark would
    cast, wide decimals, and column pairs (with one value missing, the pandas engine
    counts the row as unexpected and Spark does not).
    """
    kinds = {col["name"]: _value_kind(col["type"]) for col in schema}
    for spec in suite.get("expectations", []):
        kind = str(spec.get("type", ""))
        kwargs = spec.get("kwargs") or {}
        if kwargs.get("row_condition"):
            return f"{kind} has a row_condition"
        if kind in _SCHEMA_RULES:
            continue  # names and counts only, whatever the columns hold
        columns = [kwargs[k] for k in ("column", "column_A", "column_B") if isinstance(kwargs.get(k), str)]
        columns += [str(c) for c in kwargs.get("column_list") or []]
        found = [kinds.get(c) for c in columns]
        if "float" in found:
            return f"{kind} reads a floating-point column (NaN is missing in pandas, a value in Spark)"
        if kind in _ANY_COLUMN:
            continue
        if kind in _TEXT_RULES and found and set(found) == {"text"}:
            if "regex" not in kwargs or (regexes and _portable_regex(kwargs["regex"])):
                continue
        if kind == "expect_column_values_to_be_between" and found == ["number"]:
            if all(kwargs.get(k) is None or _is_number(kwargs.get(k)) for k in ("min_value", "max_value")):
                continue
        if kind in ("expect_column_values_to_be_in_set", "expect_column_values_to_not_be_in_set") and len(found) == 1:
            values = list(kwargs.get("value_set") or [])
            check = {"number": _is_number, "text": lambda v: isinstance(v, str), "bool": lambda v: isinstance(v, bool)}
            if found[0] in check and all(check[found[0]](v) for v in values):
                continue
        return f"{kind} on {', '.join(columns) or 'the table'} is evaluated by Spark"
    return None


def choose_engine(suite: dict[str, Any], schema: list[dict[str, Any]], rows: int, setting: str = "auto") -> tuple[str, str]:
    """GX's engine for a batch and why: ``pandas`` in process for a small batch whose
    rules mean the same there, else ``duckdb`` when they mean the same in DuckDB's SQL
    (``setting`` ``auto``), else ``spark``."""
    small = rows <= IN_PROCESS_ROWS
    reason = in_process_reason(suite, schema) if small else None
    if small and reason is None:
        return "pandas", f"{rows:,} rows in process"
    if setting == "auto":
        sql_reason = in_process_reason(suite, schema, regexes=False)
        if sql_reason is None:
            return "duckdb", f"{rows:,} rows" + (f"; {reason}" if reason else "")
        reason = sql_reason
    return "spark", f"{rows:,} rows; " + (reason or "LOCKGATE_VALIDATION_ENGINE=spark")


def read_batch_pandas(files: list[str]):
    """The batch's Parquet files as a pandas DataFrame for GX's pandas engine: integers
    stay exact (nullable integer dtypes, not float64 with NaN) and decimals become
    float64 (only those :func:`in_process_reason` accepts, which float64 holds exactly)."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lockgate.lake import lake_path

    tables = []
    for f in files:
        with lake_path(f).open("rb") as handle:  # a local file or an S3 object
            tables.append(pq.read_table(handle))
    table = pa.concat_tables(tables)
    for i, fld in enumerate(table.schema):
        if pa.types.is_decimal(fld.type):
            table = table.set_column(i, fld.name, table.column(i).cast(pa.float64()))
    integers = {
        pa.int8(): pd.Int8Dtype(), pa.int16(): pd.Int16Dtype(), pa.int32(): pd.Int32Dtype(), pa.int64(): pd.Int64Dtype(),
    }  # fmt: skip
    return table.to_pandas(types_mapper=integers.get)


def prune_for_rules(df, suite: dict[str, Any]):
    """``df`` with the columns no rule reads replaced by typed NULLs.

    The schema is unchanged (names, order, types: schema rules still see every column)
    while every scan reads only the columns the rules use —
    Parquet is columnar, so a long text column nobody checks costs nothing.
    """
    from pyspark.sql import functions as F

    needed = columns_read(suite)
    if needed is None:
        return df
    return df.select(
        *[
            F.col(spark_name(f.name)) if f.name in needed else F.lit(None).cast(f.dataType).alias(f.name)
            for f in df.schema.fields
        ]
    )


def _plain(value: Any) -> Any:
    """JSON-safe copy of a GX result value (Decimals, datetimes, NaN)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_plain(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if value is None or isinstance(value, bool | int | str):
        return value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _exception_text(info: Any) -> str | None:
    """GX reports errors either flat or keyed by metric; return the first message."""
    if not isinstance(info, dict):
        return None
    if info.get("raised_exception"):
        return str(info.get("exception_message") or "error").strip().splitlines()[0][:500]
    for value in info.values():
        text = _exception_text(value)
        if text:
            return text
    return None


def _reuse_compiled_templates() -> None:
    """Let GX's Data Docs renderer keep its compiled Jinja templates on disk.

    GX builds a new Jinja environment for every page and compiles ~50 templates into
    it, about a second per validated batch, spent again in every Airflow task process.
    Jinja's bytecode cache (a per-user folder under the temp dir, keyed by each
    template's source checksum) makes that a one-time cost per machine.
    """
    from great_expectations.render.view.view import DefaultJinjaView
    from jinja2 import FileSystemBytecodeCache

    if getattr(DefaultJinjaView, "_lockgate_bytecode_cache", None) is not None:
        return
    cache = FileSystemBytecodeCache()
    original = DefaultJinjaView.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.env.bytecode_cache = cache

    DefaultJinjaView.__init__ = init
    DefaultJinjaView._lockgate_bytecode_cache = cache


def _context():
    import great_expectations as gx

    _reuse_compiled_templates()

    context = gx.get_context(mode="ephemeral")
    try:
        from great_expectations.data_context.types.base import ProgressBarsConfig

        context.variables.progress_bars = ProgressBarsConfig(globally=False)
    except Exception:  # older/newer layout: progress bars only affect the log
        pass
    return context


def validate_dataframe(
    df,
    suite: dict[str, Any],
    *,
    table: str,
    row_count: int | None = None,
    docs_dir: str | os.PathLike[str] | None = None,
    run_name: str | None = None,
) -> ValidationReport:
    """Validate a Spark DataFrame, a :class:`~lockgate.gx_duckdb.DuckBatch` or, for a
    small batch, a pandas one from :func:`read_batch_pandas` against a loaded suite and
    summarise the outcome.

    With ``docs_dir``, the validation runs as a GX Checkpoint whose action renders Data
    Docs HTML into that folder; the report's ``docs_page`` names the run's page.
    """
    import great_expectations as gx

    where = suite.get("path", suite.get("name", "suite"))
    for i, spec in enumerate(suite["expectations"]):  # a bad rule fails before any work
        build_expectation(spec, f"{where}: expectation #{i + 1}")
    # A passing batch needs only verdicts, which GX computes in few scans (its
    # aggregate metrics share one pass); a failing one is validated again with counts
    # and examples, so that the report and the Data Docs page say why.
    for result_format in _RESULT_FORMATS:
        outcome, docs_page = _run_suite(df, suite, table, result_format, docs_dir, run_name)
        if outcome.success:
            break
    results = []
    for item in outcome.results:
        config = item.expectation_config
        detail = item.result or {}
        exception = None
        exception = _exception_text(item.exception_info)
        kwargs = {k: v for k, v in config.kwargs.items() if k not in ("batch_id",)}
        results.append(
            RuleResult(
                row_predicate=row_predicate(config.type, kwargs),
                expectation=config.type,
                kwargs=_plain({k: v for k, v in config.kwargs.items() if k not in ("batch_id",)}),
                rule=(config.meta or {}).get("rule"),
                success=bool(item.success),
                element_count=detail.get("element_count"),
                unexpected_count=detail.get("unexpected_count"),
                unexpected_percent=_plain(detail.get("unexpected_percent")),
                unexpected_examples=_plain(detail.get("partial_unexpected_list") or [])[:5],
                observed_value=_plain(detail.get("observed_value")),
                exception=exception,
            )
        )
    passed = sum(r.success for r in results)
    return ValidationReport(
        table=table,
        suite=str(suite.get("name")),
        success=passed == len(results),
        evaluated=len(results),
        passed=passed,
        failed=len(results) - passed,
        row_count=row_count,
        results=results,
        validated_at=datetime.now(UTC).isoformat(),
        gx_version=gx.__version__,
        docs_page=docs_page,
        engine=engine_of(df),
    )


def engine_of(df) -> str:
    """Which GX engine validates ``df``: pandas, duckdb (a :class:`~lockgate.gx_duckdb.DuckBatch`) or spark."""
    module = type(df).__module__
    if module.startswith("pandas"):
        return "pandas"
    return "duckdb" if module == "lockgate.gx_duckdb" else "spark"


def _batch_definition(context, df, table: str):
    """A GX batch definition for ``df`` in ``context`` and the batch parameters to pass."""
    engine = engine_of(df)
    if engine == "duckdb":
        from lockgate import gx_duckdb

        return gx_duckdb.add_asset(context, table, df), None
    if engine == "pandas":
        source = context.data_sources.add_pandas(name="lockgate")
    else:
        # persist=False: by default GX caches the batch in Spark memory, and building that
        # cache costs more CPU than all of the suite's scans of the Parquet columns together.
        source = context.data_sources.add_spark(name="lockgate", persist=False)
    asset = source.add_dataframe_asset(name=table)
    return asset.add_batch_definition_whole_dataframe("batch"), {"dataframe": df}


def _run_suite(df, suite, table, result_format, docs_dir, run_name):
    """One GX validation of ``df``; with ``docs_dir``, as a Checkpoint that renders the
    run's Data Docs page into the shared site. Returns (GX result, page or None)."""
    import great_expectations as gx

    context = _context()
    batch_definition, batch_parameters = _batch_definition(context, df, table)
    gx_suite = gx.ExpectationSuite(name=str(suite.get("name", table)))
    where = suite.get("path", suite.get("name", "suite"))
    for i, spec in enumerate(suite["expectations"]):  # fresh objects: GX binds them to their suite
        gx_suite.add_expectation(build_expectation(spec, f"{where}: expectation #{i + 1}"))
    result_format = {"result_format": result_format, "partial_unexpected_count": 5}
    if docs_dir is None:
        batch = batch_definition.get_batch(batch_parameters=batch_parameters)
        return batch.validate(gx_suite, result_format=result_format), None
    from great_expectations.checkpoint import UpdateDataDocsAction

    from lockgate.lake import is_local, lake_path

    site_dir = lake_path(docs_dir)
    # GX rebuilds a site from its stores and drops pages it does not know; an
    # ephemeral context knows one validation. Build in a private folder (local, beside
    # the site or in a temporary folder for an S3 site), then keep the page in the site.
    build_dir = Path(site_dir if is_local(site_dir) else tempfile.gettempdir()) / f".build-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    context.add_data_docs_site(
        site_name="lake",
        site_config={
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(build_dir)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        },
    )
    gx_suite = context.suites.add(gx_suite)
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(data=batch_definition, suite=gx_suite, name=f"{table} batch")
    )
    checkpoint = context.checkpoints.add(
        gx.Checkpoint(
            name="lockgate",
            validation_definitions=[definition],
            actions=[UpdateDataDocsAction(name="data_docs", site_names=["lake"])],
            result_format=result_format,
        )
    )
    checkpoint_result = checkpoint.run(
        batch_parameters=batch_parameters, run_id=gx.RunIdentifier(run_name=run_name or "run")
    )
    outcome = next(iter(checkpoint_result.run_results.values()))
    if not outcome.success and result_format["result_format"] != _RESULT_FORMATS[-1]:
        import shutil

        shutil.rmtree(build_dir, ignore_errors=True)  # validated again with details
        return outcome, None
    return outcome, _publish_docs(build_dir, site_dir)


def _publish_docs(build_dir: Path, site_dir) -> str | None:
    """Move the freshly built validation page into the shared site (a local folder or
    an S3 prefix) and re-index it."""
    import shutil

    from lockgate.lake.storage import move_in

    try:
        page = None
        for built in sorted(build_dir.glob("validations/**/*.html")):
            page = move_in(built, site_dir / built.relative_to(build_dir).as_posix())
        for built in build_dir.glob("expectations/**/*.html"):
            move_in(built, site_dir / built.relative_to(build_dir).as_posix())
        if not (site_dir / "static").exists() and (build_dir / "static").exists():
            try:
                move_in(build_dir / "static", site_dir / "static")
            except OSError:  # another task got there first
                pass
        _write_docs_index(site_dir)
        return str(page) if page else None
    finally:
        shutil.rmtree(build_dir, ignore_errors=True)


def _write_docs_index(site_dir) -> None:
    from html import escape

    from lockgate.lake.storage import write_bytes_atomic

    pages = sorted(site_dir.glob("validations/**/*.html"), key=lambda p: p.stat().st_mtime, reverse=True)
    rows = "\n".join(
        f'<li><a href="{escape(str(p.relative_to(site_dir)))}">{escape(str(p.parent.parent.parent.relative_to(site_dir / "validations")))}'
        f" — {escape(p.parent.parent.name)}</a></li>"
        for p in pages
    )
    html = (
        "<!doctype html><html><head><meta charset='utf-8'><title>Lockgate data docs</title></head><body>"
        f"<h1>Validations ({len(pages)}, newest first)</h1><ul>\n{rows}\n</ul></body></html>\n"
    )
    write_bytes_atomic(site_dir / "index.html", html.encode("utf-8"))


def write_report(report: ValidationReport, path: str | os.PathLike[str], extra: dict[str, Any] | None = None) -> Path:
    """Write the report as JSON atomically (local: temporary file, then rename; S3: one PUT)."""
    from lockgate.lake.storage import lake_path, write_bytes_atomic

    target = lake_path(path)
    payload = {**report.to_dict(), **(extra or {})}
    write_bytes_atomic(target, json.dumps(payload, indent=2, ensure_ascii=False, default=str).encode("utf-8"))
    return target


#: Verdicts first; counts and examples only when something failed.
_RESULT_FORMATS = ("BOOLEAN_ONLY", "SUMMARY")
