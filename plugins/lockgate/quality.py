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

Validation uses an ephemeral GX context (nothing is written to a ``gx/`` folder) and a
whole-DataFrame batch on the Spark DataFrame the caller passes in, so the data never
leaves Spark. GX is imported inside the functions: DAG parsing stays light.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lockgate.errors import ConfigError, LockgateError

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


class QualityError(LockgateError):
    """A batch broke its table's expectations; the load was stopped."""

    def __init__(self, message: str, report: ValidationReport | None = None) -> None:
        super().__init__(message)
        self.report = report


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
            details.append("e.g. " + ", ".join(repr(v) for v in self.unexpected_examples[:5]))
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

    def failed_rules(self) -> list[RuleResult]:
        return [r for r in self.results if not r.success]

    def failure_message(self) -> str:
        broken = self.failed_rules()
        lines = [
            f"{self.table}: {len(broken)} of {self.evaluated} expectations of suite '{self.suite}' failed "
            f"on {self.row_count if self.row_count is not None else '?'} rows; the batch was not loaded"
        ]
        lines += [f"  - {r.describe()}" for r in broken]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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


def _context():
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    try:
        from great_expectations.data_context.types.base import ProgressBarsConfig

        context.variables.progress_bars = ProgressBarsConfig(globally=False)
    except Exception:  # older/newer layout: progress bars only affect the log
        pass
    return context


def validate_spark_dataframe(
    df, suite: dict[str, Any], *, table: str, row_count: int | None = None
) -> ValidationReport:
    """Validate a Spark DataFrame against a loaded suite and summarise the outcome."""
    import great_expectations as gx

    where = suite.get("path", suite.get("name", "suite"))
    expectations = [
        build_expectation(spec, f"{where}: expectation #{i + 1}") for i, spec in enumerate(suite["expectations"])
    ]
    context = _context()
    source = context.data_sources.add_spark(name="lockgate")
    asset = source.add_dataframe_asset(name="batch")
    batch = asset.add_batch_definition_whole_dataframe("whole").get_batch(batch_parameters={"dataframe": df})
    gx_suite = gx.ExpectationSuite(name=str(suite.get("name", table)))
    for expectation in expectations:
        gx_suite.add_expectation(expectation)
    outcome = batch.validate(gx_suite, result_format={"result_format": "SUMMARY", "partial_unexpected_count": 5})
    results = []
    for item in outcome.results:
        config = item.expectation_config
        detail = item.result or {}
        exception = None
        exception = _exception_text(item.exception_info)
        results.append(
            RuleResult(
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
    )


def write_report(report: ValidationReport, path: str | os.PathLike[str]) -> Path:
    """Write the report as JSON atomically (temporary file, then rename)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    temp.write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    os.replace(temp, target)
    return target
