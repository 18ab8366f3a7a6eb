"""Propose an expectation suite for a source table from its catalog and statistics.

``lockgate suggest-suite`` profiles the table (:mod:`lockgate.source_profile`) and proposes
only rules that the next batch should pass too:

- the columns present (``expect_table_columns_to_match_set``, not exact);
- NOT NULL where the catalog declares it, and on the table config's primary key;
- uniqueness of the table config's primary key and of the catalog's primary key and
  UNIQUE constraints;
- a value set for a text column only with whole-table evidence of a small domain: a
  declared ENUM's values, else ``pg_stats`` (PostgreSQL, analysed), else a bounded
  ``SELECT DISTINCT``; at most :data:`MAX_SET` values, each seen :data:`ROWS_PER_VALUE`
  times on average;
- numeric bounds that do not grow with the table: ``>= 0`` when no value of the whole
  table is negative, an upper (or lower) bound only at a ceiling reached again and again
  in both halves of a sample ordered by the key, widened by :data:`MARGIN` of the range.
  Never on keys, foreign keys, sequences, id-named integers, the cursor, dates and times,
  or a column whose newer values go beyond its older ones.

Every rule's ``meta`` has a ``rule`` sentence and the ``evidence`` it came from; each
column gets a one-line review of what was proposed and what was not, and why
(:class:`ColumnReview`), printed by the command and kept in the suite's ``meta.columns``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lockgate import cursors
from lockgate.config import TableConfig
from lockgate.source_profile import NUMERIC_KINDS, ColumnProfile, TableProfile, connect, profile_table
from lockgate.sources import JdbcSource

MAX_SET = 10
ROWS_PER_VALUE = 20
MARGIN = 0.1
SAMPLE_ROWS = 10_000


@dataclass(frozen=True)
class Proposal:
    """One proposed rule (``{"type", "kwargs", "meta"}``) and what the review says of it."""

    rule: dict[str, Any]
    note: str


@dataclass(frozen=True)
class Skip:
    """A rule not proposed: which kind (``None``: no kind to name) and why."""

    what: str | None
    why: str


@dataclass(frozen=True)
class UniqueKey:
    """Columns that the table config or the source's catalog says are unique together."""

    columns: tuple[str, ...]
    origin: str  # "primary key" or "UNIQUE constraint"
    evidence: dict[str, Any]


@dataclass
class ColumnReview:
    """What was proposed for one column (or, as ``(table)``, for the table) and what not."""

    name: str
    proposals: list[Proposal] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)

    def text(self) -> str:
        if not self.proposals:
            return "nothing: " + ", ".join(s.why for s in self.skipped)
        done = ", ".join(p.note for p in self.proposals)
        return "; ".join([done, *(f"no {s.what}: {s.why}" if s.what else s.why for s in self.skipped)])


@dataclass
class Suggestion:
    """A proposed suite for one table, with its per-column review."""

    name: str
    profile: TableProfile
    reviews: list[ColumnReview]

    def expectations(self) -> list[dict[str, Any]]:
        return [p.rule for review in self.reviews for p in review.proposals]

    def summary(self) -> list[str]:
        """The review, one aligned line per column."""
        width = min(max(len(r.name) for r in self.reviews), 24)
        return [f"{r.name:<{width}}  {r.text()}" for r in self.reviews]

    def profiled(self) -> str:
        sample = self.profile.sample
        text = f"{self.profile.rows:,} rows ({self.profile.engine} table {self.profile.table})"
        return text + (f"; sample: {sample.rows:,} rows, {sample.method}" if sample and sample.rows else "")

    def suite(self) -> dict[str, Any]:
        sample = self.profile.sample
        profiled = {"engine": self.profile.engine, "table": self.profile.table, "rows": self.profile.rows,
                    "sample_rows": sample.rows if sample else 0, "sample_method": sample.method if sample else None}  # fmt: skip
        meta = {"generated": datetime.now(UTC).isoformat(timespec="seconds"), "generated_by": "lockgate suggest-suite",
                "review": "proposed from the source's catalog and statistics: check each rule's meta.evidence, "
                          "keep what you agree with, then commit",
                "profiled": profiled, "columns": {r.name: r.text() for r in self.reviews}}  # fmt: skip
        return {"name": self.name, "meta": meta, "expectations": self.expectations()}


def suggest_suite(
    source: JdbcSource, table: TableConfig, *, name: str, sample_rows: int = SAMPLE_ROWS, max_set: int = MAX_SET
) -> Suggestion:
    """Profile ``table`` in ``source`` and propose its suite (``name``: ``<source>.<table>``)."""
    with connect(source, table.source_name) as db:
        profile = profile_table(
            db, table, name,
            ranged=lambda c: _value_skip(c, table) is None, valued=lambda c: _value_skip(c, table) is None,
            sample_rows=sample_rows, max_set=max_set,
        )  # fmt: skip
    return Suggestion(name, profile, review(profile, table, max_set))


def review(profile: TableProfile, table: TableConfig, max_set: int = MAX_SET) -> list[ColumnReview]:
    """The table's review (columns present, compound keys), then one per column."""
    keys = _key_sets(profile, table)
    names = [c.name for c in profile.columns]
    whole = ColumnReview("(table)", [_proposal(
        "expect_table_columns_to_match_set", {"column_set": names, "exact_match": False},
        "the source columns Lockgate expects are present", {"from": "catalog", "columns": len(names)},
        f"{len(names)} columns present",
    )])  # fmt: skip
    whole.proposals += [_unique(key, profile) for key in keys if len(key.columns) > 1]
    singles = {key.columns[0]: key for key in keys if len(key.columns) == 1}
    return [whole, *(_review_column(c, profile, table, singles.get(c.name), max_set) for c in profile.columns)]


def _proposal(kind: str, kwargs: dict[str, Any], sentence: str, evidence: dict[str, Any], note: str) -> Proposal:
    return Proposal({"type": kind, "kwargs": kwargs, "meta": {"rule": sentence, "evidence": evidence}}, note)


def _review_column(col: ColumnProfile, profile: TableProfile, table: TableConfig, key: UniqueKey | None,
                   max_set: int) -> ColumnReview:  # fmt: skip
    result = ColumnReview(col.name)
    not_null = _not_null(col, profile, table)
    if not_null:
        result.proposals.append(not_null)
    else:
        result.skipped.append(Skip(None, _nullable(col, profile.rows)))
    if key:
        result.proposals.append(_unique(key, profile))
    proposals, skipped = _value_rules(col, profile, table, max_set)
    result.proposals += proposals
    result.skipped += skipped
    return result


def _nullable(col: ColumnProfile, rows: int) -> str:
    nulls = rows - (col.non_null if col.non_null is not None else rows)
    return f"nullable ({100 * nulls / rows:.2g}% NULL)" if rows and nulls else "nullable"


# --- presence and keys -----------------------------------------------------------------
def _not_null(col: ColumnProfile, profile: TableProfile, table: TableConfig) -> Proposal | None:
    kind, kwargs = "expect_column_values_to_not_be_null", {"column": col.name}
    if col.name in table.primary_key:
        return _proposal(kind, kwargs, f"{col.name} is the primary key: never NULL",
                         {"from": "table config", "primary_key": table.primary_key}, "not null (primary key)")  # fmt: skip
    if col.nullable:
        return None
    rowid = profile.engine == "sqlite" and col.sequence
    declared = f"{col.native} PRIMARY KEY" if rowid else "NOT NULL"
    return _proposal(kind, kwargs, f"{col.name} is {declared} in the source", {"from": "catalog", "declared": declared},
                     "not null (primary key)" if col.primary_key else "not null (declared)")  # fmt: skip


def _key_sets(profile: TableProfile, table: TableConfig) -> list[UniqueKey]:
    """The unique column sets of the batch, each once, none containing an earlier one."""
    constraint = {"from": "catalog", "constraint": "UNIQUE"}
    found = [UniqueKey(tuple(table.primary_key), "primary key", {"from": "table config", "primary_key": table.primary_key}),
             UniqueKey(profile.primary_key, "primary key", {"from": "catalog", "constraint": "PRIMARY KEY"})]  # fmt: skip
    found += [UniqueKey((c.name,), "UNIQUE constraint", constraint) for c in profile.columns if c.unique and not c.primary_key]
    found += [UniqueKey(cols, "UNIQUE constraint", constraint) for cols in profile.unique_sets]
    names = {c.name for c in profile.columns}
    kept: list[UniqueKey] = []
    for key in found:
        if key.columns and set(key.columns) <= names and not any(set(k.columns) <= set(key.columns) for k in kept):
            kept.append(key)
    return kept


def _unique(key: UniqueKey, profile: TableProfile) -> Proposal:
    listed = ", ".join(key.columns)
    what = f"the {key.origin}" if key.origin == "primary key" else "UNIQUE in the source"
    if len(key.columns) == 1:
        return _proposal("expect_column_values_to_be_unique", {"column": listed}, f"{listed} is {what}: unique",
                         key.evidence, f"unique ({key.origin})")  # fmt: skip
    kwargs: dict[str, Any] = {"column_list": list(key.columns)}
    if key.origin != "primary key" and any(profile.column(c).nullable for c in key.columns):
        kwargs["ignore_row_if"] = "any_value_is_missing"  # as the database compares NULLs
    return _proposal("expect_compound_columns_to_be_unique", kwargs, f"({listed}) is {what}: unique",
                     key.evidence, f"({listed}) unique ({key.origin})")  # fmt: skip


# --- values ----------------------------------------------------------------------------
def _value_skip(col: ColumnProfile, table: TableConfig) -> Skip | None:
    """Why the column gets no value rule whatever its data (``None``: the data decides)."""
    if col.hashed:
        return Skip("value rule", "hashed")
    if col.kind == "time":
        return Skip("range", "a time grows")
    if col.kind == "bool":
        return Skip("set", "a boolean")
    if col.kind == "other":
        return Skip("value rule", col.native)
    what = "range" if col.kind in NUMERIC_KINDS else "set"
    if col.primary_key or col.unique or col.name in table.primary_key:
        return Skip(what, "a key")
    if col.foreign_key:
        return Skip(what, "a foreign key")
    if col.sequence:
        return Skip(what, "a sequence")
    if col.id_like:
        return Skip(what, "an id")
    if table.cursor and col.name in cursors.parse_columns(table.cursor):
        return Skip(what, "the cursor")
    return None


def _value_rules(col: ColumnProfile, profile: TableProfile, table: TableConfig,
                 max_set: int) -> tuple[list[Proposal], list[Skip]]:  # fmt: skip
    skip = _value_skip(col, table)
    if col.enum_values is not None and (skip is None or skip.what == "set"):
        return [_value_set(col, profile, list(col.enum_values), {"from": "catalog", "declared": col.native})], []
    if skip:
        return [], [skip]
    if col.kind in NUMERIC_KINDS:
        return _ranges(col, profile)
    return _set_from_data(col, profile, max_set)


def _set_from_data(col: ColumnProfile, profile: TableProfile, max_set: int) -> tuple[list[Proposal], list[Skip]]:
    known = col.distinct
    if known is None or known.values is None or len(known.values) > max_set:
        return [], [Skip("set", known.describe(max_set) if known else "no values")]
    count, seen = len(known.values), col.non_null or 0
    if not count:
        return [], [Skip("set", "no values")]
    if seen < ROWS_PER_VALUE * count:
        return [], [Skip("set", f"{count} values in only {seen:,} rows")]
    evidence = {"from": known.source, "n_distinct" if known.source == "pg_stats" else "distinct": count,
                "rows": profile.rows}  # fmt: skip
    return [_value_set(col, profile, list(known.values), evidence)], []


def _value_set(col: ColumnProfile, profile: TableProfile, values: list[str], evidence: dict[str, Any]) -> Proposal:
    source = "declared" if evidence["from"] == "catalog" else evidence["from"]
    shown = ", ".join(values) if len(", ".join(values)) <= 60 else f"{len(values)} values"
    return _proposal("expect_column_values_to_be_in_set", {"column": col.name, "value_set": values},
                     f"{col.name} is one of {shown} ({source})", evidence,
                     f"one of {len(values)} values ({source})")  # fmt: skip


def _ranges(col: ColumnProfile, profile: TableProfile) -> tuple[list[Proposal], list[Skip]]:
    low, high, halves = col.minimum, col.maximum, col.halves
    if low is None or high is None:
        return [], [Skip("range", "no numeric values")]
    if not (math.isfinite(low) and math.isfinite(high)):
        return [], [Skip("range", "NaN or Infinity in the table")]
    direction = halves.moves() if halves else None
    if direction and profile.sample:
        newer = max(halves.newer) if direction == "grows" else min(halves.newer)
        older = max(halves.older) if direction == "grows" else min(halves.older)
        return [], [Skip("range", f"{direction} with {profile.sample.order_by} (older half to {older}, newer to {newer})")]
    margin = _clean(MARGIN * (high - low))
    lower, lower_skip = _lower_bound(col, profile, margin)
    upper, upper_skip = _upper_bound(col, profile, margin)
    return [p for p in (lower, upper) if p], [s for s in (lower_skip, upper_skip) if s]


def _lower_bound(col: ColumnProfile, profile: TableProfile, margin: float) -> tuple[Proposal | None, Skip | None]:
    kind, low = "expect_column_values_to_be_between", col.minimum
    if low >= 0:
        return _proposal(kind, {"column": col.name, "min_value": 0},
                         f"{col.name} is never negative (no negative value in {profile.rows:,} rows)",
                         {"from": "whole table", "min": low, "rows": profile.rows},
                         f">= 0 (no negative value in {profile.rows:,} rows)"), None  # fmt: skip
    if col.halves and low < col.maximum and col.halves.repeated(low):
        bound = _clean(low - margin)
        return _proposal(kind, {"column": col.name, "min_value": bound},
                         f"{col.name} is at least {bound} (a floor of {low} in both halves of a sample, less {margin})",
                         _half_evidence(col, profile, min, margin),
                         f">= {bound} (floor {low} in both halves)"), None  # fmt: skip
    reason = "not reached repeatedly" if col.halves else "no key to order a sample by"
    return None, Skip("lower bound", f"min {low}, {reason}")


def _upper_bound(col: ColumnProfile, profile: TableProfile, margin: float) -> tuple[Proposal | None, Skip | None]:
    high = col.maximum
    if col.halves is None:
        return None, Skip("upper bound", "no key to order a sample by")
    if col.minimum == high:
        return None, Skip("upper bound", f"one value only ({high})")
    if not col.halves.repeated(high):
        return None, Skip("upper bound", f"long tail (max {high}, not reached repeatedly)")
    bound = _clean(high + margin)
    return _proposal("expect_column_values_to_be_between", {"column": col.name, "max_value": bound},
                     f"{col.name} is at most {bound} (a ceiling of {high} in both halves of a sample, plus {margin})",
                     _half_evidence(col, profile, max, margin),
                     f"<= {bound} (ceiling {high} in both halves)"), None  # fmt: skip


def _half_evidence(col: ColumnProfile, profile: TableProfile, end: Callable[..., Any], margin: float) -> dict[str, Any]:
    """Where a ceiling (``end=max``) or a floor (``end=min``) came from."""
    sample, halves, word = profile.sample, col.halves, end.__name__
    whole = sample.method.startswith("the whole table")
    value = end(halves.older + halves.newer)
    return {"from": f"all {sample.rows} rows" if whole else f"sample of {sample.rows} rows spread over the table",
            "method": sample.method,
            f"older_half_{word}": end(halves.older), f"newer_half_{word}": end(halves.newer),
            f"at_{word}": [halves.older.count(value), halves.newer.count(value)], "margin": margin}  # fmt: skip


def _clean(value: float) -> int | float:
    """A bound as a person writes it: 5.4, not 5.4000000000000004; 110, not 110.0."""
    rounded = round(value, 6)
    return int(rounded) if rounded == int(rounded) else rounded
