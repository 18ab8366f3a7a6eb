"""The extract of a files table for one run: claim the interval's files in the ledger,
read them in parallel (gzip is not splittable: one file per worker), seal the Parquet
files as the run's raw version, set rejected lines aside in the quarantine.

The run's interval is the landing window: a run takes the ready files that landed
before its interval's end and that no run has taken (a file that landed late, after
its interval's run, is taken by the next run). The batch then goes through the same
validate → load → publish stages as a database extract; ``append`` replaces the rows
of each file it reads (a re-uploaded file replaces its earlier version's rows).
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lockgate import lake, warehouse
from lockgate.config import FILE_COLUMN, FilesConfig, SourceConfig, TableConfig
from lockgate.errors import LakeError
from lockgate.identifiers import sql_ident, sql_text
from lockgate.incremental import Slice
from lockgate.lake import storage
from lockgate.landing import convert, ledger, zone
from lockgate.landing.zone import LandedFile
from lockgate.records import RunInfo
from lockgate.settings import Settings

log = logging.getLogger("lockgate")


@dataclass(frozen=True)
class Batch:
    """The files one run version reads, as local paths (an S3 zone's are downloaded)."""

    files: list[LandedFile]
    local: dict[str, Path]
    rerun: bool


def workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def run_files_extract(config: SourceConfig, table: TableConfig, run: RunInfo, settings: Settings) -> dict[str, Any]:
    """Read the run's files into a sealed raw version; returns its manifest and path."""
    started = time.monotonic()
    spec = _spec(table)
    end = run.interval_end or run.run_created
    location = lake.RawLocation(
        settings.lake_root, config.source, table.name, run.interval_start, end, run.run_id, run.version,
        stage_root=settings.stage_root,
    )  # fmt: skip
    if location.manifest_path.exists():
        return {**lake.verify(location.path), "path": str(location.path), "resumed": True}
    temp = location.temp_path()
    shutil.rmtree(temp, ignore_errors=True)
    (temp / ".landing").mkdir(parents=True)
    try:
        batch = _claim(config, table, run, settings, location, temp / ".landing")
        schema = _schema(config, table, settings, batch, spec)
        results = _convert_all(batch, spec, schema, temp)
        manifest = _manifest(config, table, run, location, batch, results, _schema_of(schema), started)
        _set_aside(settings, table, manifest, run, results)
        for scratch in (".landing", ".spill"):
            shutil.rmtree(temp / scratch, ignore_errors=True)
        folder = lake.seal(location, temp, manifest)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    with warehouse.connect(settings) as conn:
        ledger.record(conn, config.source, table.name, (run.interval_start, end), run.run_id, run.version,
                      [r.result() for r in results])  # fmt: skip
    return {**lake.read_manifest(folder), "path": str(folder), "resumed": False}


def _spec(table: TableConfig) -> FilesConfig:
    assert table.files is not None
    return table.files


def _claim(config: SourceConfig, table: TableConfig, run: RunInfo, settings: Settings,
           location: lake.RawLocation, download: Path) -> Batch:  # fmt: skip
    spec = _spec(table)
    root = zone.landing_root(settings, config, table)
    listed = zone.list_files(root, spec)
    end = location.interval_end
    candidates = [f for f in zone.ready(listed, root, spec, datetime.now(UTC)) if end is None or f.modified < end]
    with warehouse.connect(settings) as conn:
        claim = ledger.claim(conn, config.source, table.name, (location.interval_start, end), run.run_id,
                             run.version, candidates)  # fmt: skip
    present = {f.key: f.identity() for f in listed}
    changed = [f.key for f in claim.files if present.get(f.key) != f.identity()]
    if changed:
        raise LakeError(
            f"{config.source}.{table.name}: landing file(s) {', '.join(changed[:5])} of this interval are gone from "
            f"{zone.landing_location(settings, config, table)} or were uploaded again since the interval took them "
            "(a new upload is taken by the next run); replay the interval from the lake (replay_from_lake)"
        )
    log.info("%s.%s: %d landing file(s) %s (%d listed)", config.source, table.name, len(claim.files),
             "of this interval read again" if claim.rerun else "taken", len(listed))  # fmt: skip
    return Batch(claim.files, _local_copies(root, claim.files, download), claim.rerun)


def _local_copies(root: Any, files: list[LandedFile], download: Path) -> dict[str, Path]:
    if isinstance(root, Path):
        return {f.key: root / f.key for f in files}

    def fetch(f: LandedFile) -> tuple[str, Path]:
        local = download / f.key
        local.parent.mkdir(parents=True, exist_ok=True)
        (root / f.key).fs.get_file((root / f.key).path, str(local))
        return f.key, local

    with ThreadPoolExecutor(workers()) as pool:
        return dict(pool.map(fetch, files))


class _Work:
    """One file's scan and conversion (run on a worker thread)."""

    def __init__(self, number: int, f: LandedFile, path: Path, spec: FilesConfig) -> None:
        self.number, self.file, self.path, self.spec = number, f, path, spec
        self.gzip = convert.is_gzip(f.key, spec)
        self.scan = convert.scan(path, self.gzip)
        self.columns: list[str] = []
        self.converted: convert.Converted | None = None

    @property
    def output(self) -> str:
        return f"part-{self.number:05d}.parquet"

    def result(self) -> ledger.FileResult:
        c = self.converted
        assert c is not None
        return ledger.FileResult(self.file.key, self.scan.sha256, c.rows_in, c.rows_parsed, c.rows_rejected)


def _schema(config: SourceConfig, table: TableConfig, settings: Settings, batch: Batch, spec: FilesConfig) -> dict[str, str]:
    """The batch's columns: the declared schema, or the types inferred from the files
    (columns in order of first appearance; a column typed differently in two files is
    read as text), or with no file the latest sealed version's."""
    if spec.schema_ is not None:
        return dict(spec.schema_)
    if batch.files:
        from lockgate.landing import infer

        return infer.batch_schema([(f.key, batch.local[f.key]) for f in batch.files], spec)
    for folder in reversed(lake.sealed_runs(settings.lake_root, config.source, table.name)):
        return {c["name"]: c["type"] for c in lake.read_manifest(folder)["schema"] if c["name"] != FILE_COLUMN}
    return {}


def _convert_all(batch: Batch, spec: FilesConfig, schema: dict[str, str], temp: Path) -> list[_Work]:
    """Scan and convert each file in one worker (a file's two reads overlap the other
    files'); DuckDB gets the cores the files leave free (one big file: all of them)."""
    import duckdb

    threads = max(1, (os.cpu_count() or 1) // max(1, len(batch.files)))

    def run(item: tuple[int, LandedFile]) -> _Work:
        work = _Work(item[0], item[1], batch.local[item[1].key], spec)
        conn = duckdb.connect()
        try:  # a large file's staged rows spill to disk past 1 GB
            conn.execute(f"SET threads = {threads}; SET memory_limit = '1GB'; SET temp_directory = '{temp / '.spill'}'")
            work.converted = _convert_one(conn, work, schema, temp)
        finally:
            conn.close()
        return work

    with ThreadPoolExecutor(workers()) as pool:
        return list(pool.map(run, enumerate(batch.files)))


def _convert_one(conn, item: _Work, schema: dict[str, str], temp: Path) -> convert.Converted:
    spec = item.spec
    if item.scan.truncated:
        _empty_parquet(conn, schema, temp / item.output)
        return convert.convert(conn, item.path, item.file.key, spec, schema, [], temp / item.output, item.scan)
    columns = convert.header(item.path, spec, item.gzip) if spec.header else list(schema)
    unknown = [c for c in columns if c not in schema]
    if unknown or len(set(columns)) != len(columns):
        what = f"columns {unknown} are not in the table's schema" if unknown else "a column is named twice"
        refused = convert.refuse(item.file.key, item.scan, spec, f"the header's {what}: {columns}")
        _empty_parquet(conn, schema, temp / item.output)
        return refused
    converted = convert.convert(conn, item.path, item.file.key, spec, schema, columns, temp / item.output, item.scan)
    expected = item.scan.lines - (1 if spec.header else 0)
    if not spec.dialect[1] and converted.rows_in != expected:  # unquoted: one record per line
        raise LakeError(
            f"landing file {item.file.key}: {expected} data lines but {converted.rows_parsed} rows read and "
            f"{converted.rows_rejected} rejected; nothing was loaded"
        )
    return converted


def _empty_parquet(conn, schema: dict[str, str], out: Path) -> None:
    from lockgate.typemap import duckdb_type

    select = ", ".join(f"NULL::{duckdb_type(t)} AS {sql_ident(c)}" for c, t in schema.items())
    conn.execute(f"COPY (SELECT {select + ', ' if select else ''}NULL::VARCHAR AS {FILE_COLUMN} LIMIT 0) "
                 f"TO {sql_text(str(out))} (FORMAT parquet)")  # fmt: skip


def _manifest(config: SourceConfig, table: TableConfig, run: RunInfo, location: lake.RawLocation, batch: Batch,
              work: list[_Work], schema: list[dict[str, Any]], started: float) -> dict[str, Any]:  # fmt: skip
    temp = location.temp_path()
    files = [
        {"path": w.output, "rows": w.converted.rows_parsed, "bytes": (temp / w.output).stat().st_size,
         "sha256": lake.sha256_file(temp / w.output)}
        for w in work
    ]
    window = Slice(FILE_COLUMN, location.interval_start, location.interval_end, location.interval_start,
                   location.interval_end, False, "files landed before the interval end")  # fmt: skip
    now = datetime.now(UTC).isoformat()
    return {
        "source": config.source, "table": table.name, "source_table": _spec(table).pattern, "source_engine": "files",
        "source_location": f"landing zone, {len(batch.files)} file(s)", "run_id": run.run_id, "version": run.version,
        "mode": table.mode, "slice": window.as_dict(), "rows": sum(w.converted.rows_parsed for w in work),
        "rows_rejected": sum(w.converted.rows_rejected for w in work), "reader": "duckdb-csv", "schema": schema,
        "landing": {"rerun": batch.rerun, "files": [_landed(w) for w in work]}, "files": files, "read_at": now,
        "extracted_at": now, "extract_seconds": round(time.monotonic() - started, 3),
    }  # fmt: skip


def _landed(w: _Work) -> dict[str, Any]:
    c = w.converted
    return {
        "key": w.file.key, "size": w.file.size, "modified": w.file.modified.isoformat(), "etag": w.file.etag,
        "sha256": w.scan.sha256, "part": w.output, "rows_in": c.rows_in, "rows_parsed": c.rows_parsed,
        "rows_rejected": c.rows_rejected,
    }  # fmt: skip


def _schema_of(schema: dict[str, str]) -> list[dict[str, Any]]:
    """The batch's columns as a database extract records them (Spark type names), and
    the file each row came from."""
    return [*({"name": c, "type": t, "nullable": True} for c, t in schema.items()),
            {"name": FILE_COLUMN, "type": "string", "nullable": False}]  # fmt: skip


def _set_aside(settings: Settings, table: TableConfig, manifest: dict[str, Any], run: RunInfo, work: list[_Work]) -> None:
    """Rejected lines go to ``quarantine/…/rejects.parquet`` (file, line, column, error,
    the line's text), or, under ``on_quality_failure: fail``, stop the run."""
    rejects = [r for w in work for r in w.converted.rejects]
    if not rejects:
        return
    from lockgate.pipeline import quarantine_path
    from lockgate.quality import QualityError

    lines = "; ".join(f"{r.file} line {r.line}: {r.error} ({r.message})" for r in rejects[:5])
    more = f" and {len(rejects) - 5} more" if len(rejects) > 5 else ""
    if table.on_quality_failure == "fail":
        raise QualityError(
            f"{manifest['source']}.{manifest['table']}: {manifest['rows_rejected']} line(s) of the landing files cannot "
            f"be read: {lines}{more}; nothing was loaded (on_quality_failure: fail)"
        )
    path = quarantine_path(settings, manifest, run.run_id).with_name("rejects.parquet")
    storage.write_bytes_atomic(path, _rejects_parquet(rejects))
    manifest["rejects"] = str(path)
    log.warning("%s.%s: %d line(s) set aside in %s: %s%s", manifest["source"], manifest["table"],
                manifest["rows_rejected"], path, lines, more)  # fmt: skip


def _rejects_parquet(rejects: list[convert.Reject]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = {name: [getattr(r, name) for r in rejects] for name in ("file", "line", "column", "error", "message", "text")}
    out = io.BytesIO()
    pq.write_table(pa.table(columns), out)
    return out.getvalue()
