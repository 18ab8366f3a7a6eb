"""The lake's catalog: each table's current raw version per interval, as partitions.

After every publish, ``lake.<source>__<table>`` in the warehouse is a view over the
current Parquet files, with the interval's start date as the partition column
``_lockgate_interval``: a query that filters on it reads only that partition's files
(each interval is one branch of the view, and DuckDB drops the branches the filter
rules out). ``lockgate catalog <source>`` lists tables, partitions, rows, schema and
the last update from the manifests.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from lockgate.identifiers import sql_text
from lockgate.incremental import parse_time
from lockgate.lake.storage import LakePath
from lockgate.lake.versions import data_files, latest_per_interval, read_manifest, sealed_runs

PARTITION_COLUMN = "_lockgate_interval"


@dataclass(frozen=True)
class Partition:
    """One interval's current raw version (``interval`` is None for a full snapshot)."""

    interval: date | None
    folder: LakePath
    files: list[str]
    rows: int
    sealed_at: str
    schema: list[dict[str, Any]]


def current_partitions(lake_root: LakePath, source: str, table: str, incremental: bool) -> list[Partition]:
    """The newest sealed version of each interval (incremental tables), or the newest
    snapshot (full tables), oldest interval first."""
    if incremental:
        folders = latest_per_interval(lake_root, source, table)
    else:
        sealed = sealed_runs(lake_root, source, table)
        folders = sorted(sealed, key=lambda p: read_manifest(p).get("sealed_at", ""))[-1:]
    return [_partition(folder, incremental) for folder in folders]


def _partition(folder: LakePath, incremental: bool) -> Partition:
    manifest = read_manifest(folder)
    start = parse_time((manifest.get("slice") or {}).get("interval_start")) if incremental else None
    return Partition(
        start.date() if start else None, folder, data_files(folder, manifest), int(manifest.get("rows") or 0),
        manifest.get("sealed_at", ""), manifest.get("schema") or [],
    )  # fmt: skip


def view_sql(partitions: list[Partition]) -> str | None:
    """The query of a lake view over ``partitions`` (None when there is no file)."""
    branches = []
    for p in partitions:
        if not p.files:
            continue
        files = "[" + ", ".join(sql_text(f) for f in p.files) + "]"
        scan = f"SELECT * FROM read_parquet({files}, union_by_name = true)"
        if p.interval is not None:
            scan = f"SELECT *, DATE '{p.interval.isoformat()}' AS {PARTITION_COLUMN} FROM read_parquet({files})"
        branches.append(scan)
    return " UNION ALL BY NAME ".join(branches) or None


@dataclass(frozen=True)
class TableCatalog:
    """What ``lockgate catalog`` shows of one table."""

    name: str
    partitions: list[Partition]

    @property
    def rows(self) -> int:
        return sum(p.rows for p in self.partitions)

    @property
    def last_update(self) -> str:
        return max((p.sealed_at for p in self.partitions), default="")

    def schema_versions(self) -> list[tuple[date | None, list[str]]]:
        """Each distinct column list, with the first partition that has it."""
        seen: list[tuple[date | None, list[str]]] = []
        for p in self.partitions:
            columns = [f"{c['name']} {c['type']}" for c in p.schema]
            if not seen or seen[-1][1] != columns:
                seen.append((p.interval, columns))
        return seen


def render(source: str, tables: list[TableCatalog], *, partitions: bool) -> list[str]:
    """The catalog as text lines: a line per table, its schema versions, and with
    ``partitions`` a line per partition."""
    lines = [f"{'table':<28} {'partitions':>10} {'rows':>12}  last update"]
    for t in tables:
        lines.append(f"{'lake.' + source + '__' + t.name:<28} {len(t.partitions):>10} {t.rows:>12}  {t.last_update or '-'}")
        for since, columns in t.schema_versions():
            lines.append(f"    schema since {since or 'the snapshot'}: {', '.join(columns)}")
        if partitions:
            for p in t.partitions:
                lines.append(f"    {PARTITION_COLUMN}={p.interval or '-'}  {p.rows} rows  {len(p.files)} file(s)  "
                             f"sealed {p.sealed_at}")  # fmt: skip
    return lines
