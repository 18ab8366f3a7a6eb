"""Checks across runs: what a per-batch suite cannot see.

A batch can pass every rule and still be wrong: a truncated extract has valid rows, a
stalled source delivers old ones, an upstream change starts leaving a column empty. Each
validated batch is compared with the table's recent published intervals
(``lockgate.runs``):

- ``row_count``: the batch's rows against a robust trend of the last runs (a
  Theil–Sen line through their counts, so steady growth is not an anomaly), outside a
  band of ``band`` scaled MADs of the residuals, never narrower than Poisson noise
  (``band`` × √expected) or ``row_count_tolerance`` (25%) of the expected count —
  daily counts of real tables vary more than Poisson noise (an order's items come
  together, weekdays differ);
- ``freshness_lag``: how long before the interval's end the newest cursor value lies,
  against the median of the recent lags (upper side only), never narrower than 10% of
  the interval or a minute; a lag whose robust trend grew by more than that over the
  runs compared is an anomaly too (a source falling behind);
- ``null_rate``: each column's share of NULLs against its recent median, outside
  ``band`` scaled MADs and binomial noise for the batch's size, and never less than
  :data:`NULL_RATE_FLOOR` (two percentage points).

Each check has a policy: ``warn`` (the default) records and logs the anomaly and lets
the batch load; ``fail`` stops it like a broken rule; ``off`` skips it. With fewer
than ``min_history`` earlier runs a check is ``skipped`` (recorded as such). The
batch's own measures come from the manifest and the Parquet footers (null counts are
column statistics): no extra scan.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

from lockgate.config import CrossRunConfig
from lockgate.incremental import parse_time

Status = Literal["passed", "warned", "failed", "skipped"]

#: A MAD estimates a normal spread once scaled by this.
MAD_SCALE = 1.4826
#: A NULL rate must move by at least this much (absolute share of rows) to count.
NULL_RATE_FLOOR = 0.02


@dataclass(frozen=True)
class BatchProfile:
    """What a batch looked like: rows, freshness lag, NULLs per column."""

    rows: int
    freshness_lag: float | None = None  # seconds from the newest cursor to the interval end
    null_counts: dict[str, int] = field(default_factory=dict)
    #: Seconds of cursor the slice covered (time cursors); ``inf`` for a full read of an
    #: incremental table; None when unknown (ids, full tables).
    span: float | None = None

    def null_rate(self, column: str) -> float | None:
        nulls = self.null_counts.get(column)
        return None if nulls is None or self.rows <= 0 else nulls / self.rows


@dataclass(frozen=True)
class PastRun:
    """One earlier published interval of the table."""

    at: datetime  # the interval's end (or the run's start for a run without interval)
    profile: BatchProfile


@dataclass(frozen=True)
class CheckResult:
    """One cross-run check on one batch."""

    check: str
    column: str | None
    policy: str
    status: Status
    observed: float | None
    expected: float | None
    low: float | None
    high: float | None
    history: int
    message: str

    def line(self) -> str:
        return f"{self.check}{f'({self.column})' if self.column else ''} {self.status}: {self.message}"


@dataclass(frozen=True)
class CrossRunOutcome:
    batch: BatchProfile
    results: list[CheckResult]

    @property
    def status(self) -> Status:
        statuses = {r.status for r in self.results}
        for status in ("failed", "warned", "passed"):
            if status in statuses:
                return status  # type: ignore[return-value]
        return "skipped"

    def anomalies(self) -> list[CheckResult]:
        return [r for r in self.results if r.status in ("warned", "failed")]

    def message(self) -> str | None:
        broken = self.anomalies()
        if not broken:
            return None
        return "checks across runs:\n" + "\n".join(f"  - {r.line()}" for r in broken)

    def to_json(self) -> str:
        return json.dumps([asdict(r) for r in self.results], default=str)


# --- statistics -------------------------------------------------------------------


def _mad(values: Sequence[float], centre: float) -> float:
    return statistics.median(abs(v - centre) for v in values)


def theil_sen(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """A robust line (slope, intercept): the median of pairwise slopes, and the median
    intercept under it. One outlier among the runs moves neither."""
    slopes = [(ys[j] - ys[i]) / (xs[j] - xs[i]) for i in range(len(xs)) for j in range(i + 1, len(xs)) if xs[j] != xs[i]]
    slope = statistics.median(slopes) if slopes else 0.0
    return slope, statistics.median(y - slope * x for x, y in zip(xs, ys, strict=True))


# --- the checks -------------------------------------------------------------------


def _days(moment: datetime, origin: datetime) -> float:
    return (moment - origin).total_seconds() / 86_400


def _skipped(check: str, policy: str, history: int, needed: int, column: str | None = None) -> CheckResult:
    return CheckResult(check, column, policy, "skipped", None, None, None, None, history,
                       f"{history} earlier runs, {needed} needed")  # fmt: skip


def _verdict(policy: str, inside: bool) -> Status:
    return "passed" if inside else ("failed" if policy == "fail" else "warned")


def _wider(span: float | None, limit: float | None) -> bool:
    return span is not None and limit is not None and span > limit * 1.001


def row_count(
    batch: BatchProfile, at: datetime, past: list[PastRun], rules: CrossRunConfig, max_span: float | None = None
) -> CheckResult:
    """Counts are compared for slices of one interval (a catch-up or full read is not)."""
    policy = rules.row_count
    if _wider(batch.span, max_span):
        return CheckResult("row_count", None, policy, "skipped", batch.rows, None, None, None, 0,
                           "the slice covers more than one interval")  # fmt: skip
    past = [p for p in past if not _wider(p.profile.span, max_span)]
    if len(past) < rules.min_history:
        return _skipped("row_count", policy, len(past), rules.min_history)
    origin = past[0].at
    xs = [_days(p.at, origin) for p in past]
    ys = [float(p.profile.rows) for p in past]
    slope, intercept = theil_sen(xs, ys)
    expected = max(0.0, intercept + slope * _days(at, origin))
    residuals = [y - (intercept + slope * x) for x, y in zip(xs, ys, strict=True)]
    spread = MAD_SCALE * _mad(residuals, statistics.median(residuals))
    width = max(rules.band * spread, rules.band * math.sqrt(expected), rules.row_count_tolerance * expected, 1.0)
    low, high = max(0.0, expected - width), expected + width
    inside = low <= batch.rows <= high
    trend = f", trend {slope:+.1f} rows a day" if abs(slope) >= 0.05 * max(expected, 1) / 7 else ""
    message = (
        f"{batch.rows:,} rows; expected {expected:,.0f} (between {low:,.0f} and {high:,.0f}) "
        f"from the last {len(past)} runs{trend}"
    )
    return CheckResult("row_count", None, policy, _verdict(policy, inside), batch.rows, round(expected, 1),
                       round(low, 1), round(high, 1), len(past), message)  # fmt: skip


def freshness_lag(
    batch: BatchProfile, at: datetime, past: list[PastRun], rules: CrossRunConfig, interval_seconds: float | None
) -> CheckResult | None:
    policy = rules.freshness_lag
    if batch.freshness_lag is None:
        return None  # no time cursor, or no interval: nothing to compare
    timed = [(p.at, p.profile.freshness_lag) for p in past if p.profile.freshness_lag is not None]
    if len(timed) < rules.min_history:
        return _skipped("freshness_lag", policy, len(timed), rules.min_history)
    lags = [lag for _, lag in timed]
    typical = statistics.median(lags)
    floor = max(60.0, 0.1 * (interval_seconds or 0))
    high = typical + max(rules.band * MAD_SCALE * _mad(lags, typical), floor)
    origin = timed[0][0]
    days = [_days(t, origin) for t, _ in timed] + [_days(at, origin)]
    slope, _ = theil_sen(days, [*lags, batch.freshness_lag])
    # A lag that keeps growing is an anomaly before it leaves the band: over the runs
    # compared it grew by more than the band's floor, and it is above its median now.
    grew = slope * (days[-1] - days[0]) > floor
    inside = batch.freshness_lag <= high and not (grew and batch.freshness_lag > typical)
    trend = f", growing {_duration(slope)} a day" if grew else ""
    message = (
        f"newest row {_duration(batch.freshness_lag)} before the interval end; usually "
        f"{_duration(typical)}, at most {_duration(high)} (last {len(lags)} runs){trend}"
    )
    return CheckResult("freshness_lag", None, policy, _verdict(policy, inside), round(batch.freshness_lag, 3),
                       round(typical, 3), None, round(high, 3), len(lags), message)  # fmt: skip


def null_rates(batch: BatchProfile, past: list[PastRun], rules: CrossRunConfig) -> list[CheckResult]:
    results = []
    for column in sorted(batch.null_counts):
        rate = batch.null_rate(column)
        history = [r for r in (p.profile.null_rate(column) for p in past) if r is not None]
        if rate is None:
            continue
        if len(history) < rules.min_history:
            results.append(_skipped("null_rate", rules.null_rate, len(history), rules.min_history, column))
            continue
        results.append(_null_rate(column, rate, batch.rows, history, rules))
    return results


def _null_rate(column: str, rate: float, rows: int, history: list[float], rules: CrossRunConfig) -> CheckResult:
    typical = statistics.median(history)
    noise = math.sqrt(max(typical * (1 - typical), 0.0) / rows) if rows else 0.0
    width = max(rules.band * MAD_SCALE * _mad(history, typical), rules.band * noise, NULL_RATE_FLOOR)
    low, high = max(0.0, typical - width), min(1.0, typical + width)
    inside = low <= rate <= high
    message = f"{rate:.1%} NULL; usually {typical:.1%} (between {low:.1%} and {high:.1%}, last {len(history)} runs)"
    return CheckResult("null_rate", column, rules.null_rate, _verdict(rules.null_rate, inside), round(rate, 6),
                       round(typical, 6), round(low, 6), round(high, 6), len(history), message)  # fmt: skip


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def evaluate(
    batch: BatchProfile,
    at: datetime,
    past: list[PastRun],
    rules: CrossRunConfig,
    *,
    interval_seconds: float | None = None,
    max_span: float | None = None,
) -> CrossRunOutcome:
    """Every enabled check of ``batch`` (at ``at``) against ``past`` (oldest first);
    ``max_span``: the cursor seconds one interval's slice covers (lookback included)."""
    results: list[CheckResult] = []
    if rules.row_count != "off":
        results.append(row_count(batch, at, past, rules, max_span))
    if rules.freshness_lag != "off":
        lag = freshness_lag(batch, at, past, rules, interval_seconds)
        results += [lag] if lag else []
    if rules.null_rate != "off":
        results += null_rates(batch, past, rules)
    return CrossRunOutcome(batch, results)


# --- where the measures come from -------------------------------------------------


def parquet_null_counts(files: Iterable[str]) -> dict[str, int]:
    """NULLs per top-level column from the files' column statistics (footers only).
    A column whose statistics lack a null count in any row group is left out."""
    import pyarrow.parquet as pq

    from lockgate.lake import lake_path

    counts: dict[str, int] = {}
    unknown: set[str] = set()
    for name in files:
        with lake_path(name).open("rb") as handle:
            meta = pq.ParquetFile(handle).metadata
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            for c in range(group.num_columns):
                chunk = group.column(c)
                column = chunk.path_in_schema
                stats = chunk.statistics
                if "." in column or stats is None or not stats.has_null_count:
                    unknown.add(column)
                    continue
                counts[column] = counts.get(column, 0) + stats.null_count
    return {c: n for c, n in counts.items() if c not in unknown and not c.startswith("_lockgate_")}


def slice_span(lo: Any, hi: Any, incremental: bool) -> float | None:
    """Seconds between a slice's time bounds; ``inf`` for an incremental table's
    unbounded (full) read; None when the bounds are not times."""
    if isinstance(lo, datetime) and isinstance(hi, datetime):
        return (hi - lo).total_seconds()
    return math.inf if incremental and lo is None and hi is None else None


def batch_profile(manifest: dict[str, Any], files: list[str], interval_end: datetime | None, span: float | None) -> BatchProfile:
    """The batch's measures from its manifest and its Parquet footers; the freshness
    lag when ``interval_end`` is given and the cursor is a time."""
    newest = manifest.get("cursor_max")
    lag = None
    if interval_end is not None and isinstance(newest, str):
        try:
            moment = parse_time(newest)
        except ValueError:
            moment = None
        lag = (interval_end - moment).total_seconds() if moment is not None else None
    return BatchProfile(int(manifest["rows"]), lag, parquet_null_counts(files) if files else {}, span)


def past_runs(rows: Iterable[tuple], keep: int, incremental: bool) -> list[PastRun]:
    """Audit rows ``(at, rows, freshness_lag_seconds, null_counts JSON, slice_lo,
    slice_hi)``, newest first and one per interval → the ``keep`` newest as
    :class:`PastRun`, oldest first."""
    runs = []
    for at, count, lag, nulls, lo, hi in rows:
        if at is None or count is None:
            continue
        counts = {str(k): int(v) for k, v in json.loads(nulls).items()} if nulls else {}
        runs.append(PastRun(at, BatchProfile(int(count), lag, counts, slice_span(lo, hi, incremental))))
        if len(runs) == keep:
            break
    return list(reversed(runs))
