"""``files_*``: the files landing zone (:mod:`lockgate.landing`) on a click stream.

The data: ``FILES`` gzip TSV files of ``ROWS_PER_FILE`` rows (~70 MB uncompressed each,
over 1 GiB in all; gzip level 6, the ``gzip`` tool's default), and the same rows as one
big gzip file. DuckDB writes the TSV text (``COPY … (FORMAT csv, DELIMITER '\\t')``),
Python's zlib compresses it, two files at a time. Generated once and kept in
``bench/scratch/cache/files_landing`` (again only when the parameters change).

The measures, each timing only the work (not the interpreter's start):

- ``files_lockgate``: :func:`lockgate.landing.extract.run_files_extract` over the 16
  files (scan, convert, seal, ledger), repeated in one interpreter (*warm-session*);
- ``files_duckdb_reference``: DuckDB's own ``COPY (SELECT * FROM read_csv([...])) TO
  <dir> (FORMAT parquet)`` of the same files, zstd like Lockgate's, each run in a fresh
  process (*reference*);
- ``files_split_16`` and ``files_one_big_gzip``: the same rows split in 16 files or in
  one, both through ``run_files_extract``: gzip is not splittable, one worker per file.
  ``files_split_16`` is ``files_lockgate``'s run (measured once when both are asked).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import statistics
import zlib
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

from benchlib import REFERENCE, WARM, WORK, log, python_job
from report import Target

MEASURES = ("files_lockgate", "files_duckdb_reference", "files_split_16", "files_one_big_gzip")
CACHE = WORK / "cache" / "files_landing"
FILES = 16
ROWS_PER_FILE = 580_000
GZIP_LEVEL = 6
BLOCK = 1 << 20
SPLIT, BIG = "split_16", "one_big"
#: The measure → (its data set, what reads it); one run per pair.
PLAN = {
    "files_lockgate": (SPLIT, "lockgate"), "files_split_16": (SPLIT, "lockgate"),
    "files_one_big_gzip": (BIG, "lockgate"), "files_duckdb_reference": (SPLIT, "duckdb"),
}  # fmt: skip
#: ratio → (numerator, denominator, how measured); no targets: reported for what they are.
RATIOS = {
    "files_lockgate/files_duckdb_reference": ("files_lockgate", "files_duckdb_reference", f"{WARM} / {REFERENCE}"),
    "files_one_big_gzip/files_split_16": ("files_one_big_gzip", "files_split_16", WARM),
}  # fmt: skip
#: The table's columns (Spark type names, as a source file declares them).
SCHEMA = {
    "event_id": "bigint", "user_id": "bigint", "session": "string", "page": "string", "referrer": "string",
    "amount": "decimal(10,2)", "at": "timestamp",
}  # fmt: skip
#: Rows ``lo`` to ``hi`` of the click stream (25 events a session, one referrer in five NULL).
SELECT = """
SELECT i AS event_id,
       (i * 2654435761) % 250000 AS user_id,
       md5((i // 25)::VARCHAR) AS session,
       '/shop/c' || (i % 37) || '/p/' || ((i * 40503) % 50000) AS page,
       CASE WHEN i % 5 = 0 THEN NULL ELSE 'https://search.example.com/q?t=' || ((i * 69069) % 100000) END AS referrer,
       (((i * 48271) % 100000) / 100)::DECIMAL(10,2) AS amount,
       TIMESTAMP '2026-01-01 00:00:00' + to_seconds(i // 10) AS at
FROM range({lo}, {hi}) AS t(i)
"""
PARAMS = {"files": FILES, "rows_per_file": ROWS_PER_FILE, "gzip_level": GZIP_LEVEL,
          "select": hashlib.sha256(SELECT.encode()).hexdigest()[:16]}  # fmt: skip


@dataclasses.dataclass
class DataSet:
    """One landing zone of the click stream: ``landing`` is its folder under the cache."""

    landing: str
    keys: list[str]
    rows: int
    uncompressed_bytes: int
    gzip_bytes: int

    def paths(self, cache: Path = CACHE) -> list[Path]:
        return [cache / self.landing / key for key in self.keys]

    def intact(self, cache: Path = CACHE) -> bool:
        paths = self.paths(cache)
        return all(p.is_file() for p in paths) and sum(p.stat().st_size for p in paths) == self.gzip_bytes


def ensure_data(cache: Path = CACHE) -> dict[str, DataSet]:
    """The two data sets, generated unless the cache has them with these parameters."""
    meta = cache / "meta.json"
    if meta.exists():
        stored = json.loads(meta.read_text(encoding="utf-8"))
        data = {name: DataSet(**d) for name, d in stored["data_sets"].items()}
        if stored["params"] == PARAMS and all(d.intact(cache) for d in data.values()):
            return data
    shutil.rmtree(cache, ignore_errors=True)
    data = generate(cache)
    described = {"params": PARAMS, "data_sets": {name: dataclasses.asdict(d) for name, d in data.items()}}
    meta.write_text(json.dumps(described, indent=2) + "\n", encoding="utf-8")
    return data


def generate(cache: Path) -> dict[str, DataSet]:
    log(f"generating the click stream: {FILES} x {ROWS_PER_FILE:,} rows, gzip level {GZIP_LEVEL} (once, cached)")
    parts = write_tsv(cache / "plain")
    split = [f"clicks/part-{k:02d}.tsv.gz" for k in range(FILES)]
    jobs = [(parts, cache / BIG / "clicks/all.tsv.gz")]  # the longest first, beside the others
    jobs += [([part], cache / SPLIT / key) for part, key in zip(parts, split, strict=True)]
    with ThreadPoolExecutor(2) as pool:  # zlib lets go of the GIL
        written = list(pool.map(lambda job: gzip_files(*job), jobs))
    shutil.rmtree(cache / "plain")
    rows = FILES * ROWS_PER_FILE
    big = DataSet(BIG, ["clicks/all.tsv.gz"], rows, written[0], (cache / BIG / "clicks/all.tsv.gz").stat().st_size)
    sizes = sum((cache / SPLIT / key).stat().st_size for key in split)
    data = {SPLIT: DataSet(SPLIT, split, rows, sum(written[1:]), sizes), BIG: big}
    if data[SPLIT].uncompressed_bytes < 2**30:
        raise RuntimeError(f"the click stream is {data[SPLIT].uncompressed_bytes:,} bytes, under 1 GiB: raise ROWS_PER_FILE")
    return data


def write_tsv(folder: Path) -> list[Path]:
    """The ``FILES`` parts as plain TSV with a header line, written by DuckDB."""
    import duckdb

    folder.mkdir(parents=True)
    parts = [folder / f"part-{k:02d}.tsv" for k in range(FILES)]
    with duckdb.connect() as conn:
        conn.execute("SET enable_progress_bar = false")
        for k, part in enumerate(parts):
            rows = SELECT.format(lo=k * ROWS_PER_FILE, hi=(k + 1) * ROWS_PER_FILE)
            conn.execute(f"COPY ({rows}) TO '{part}' (FORMAT csv, DELIMITER '\t', HEADER)")
    return parts


def gzip_files(sources: list[Path], target: Path) -> int:
    """``sources`` one after the other into one gzip file, the header line only once;
    returns the uncompressed bytes written."""
    target.parent.mkdir(parents=True, exist_ok=True)
    deflate = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)  # 31: a gzip header and trailer
    written = 0
    with open(target, "wb") as out:
        for n, source in enumerate(sources):
            with open(source, "rb") as handle:
                if n:
                    handle.readline()
                for block in iter(partial(handle.read, BLOCK), b""):
                    written += len(block)
                    out.write(deflate.compress(block))
        out.write(deflate.flush())
    return written


LOCKGATE_JOB = """
    import json, os, shutil, time
    from datetime import UTC, datetime, timedelta
    from lockgate import lake
    from lockgate.config import parse_source
    from lockgate.landing.extract import run_files_extract
    from lockgate.records import RunInfo
    from lockgate.settings import load_settings
    settings = load_settings()
    config = parse_source(json.loads(os.environ["BENCH_CONFIG"]), "files.yml")
    runs = []
    for i in range(int(os.environ["BENCH_REPEATS"])):
        lake.remove(settings.lake_root)  # a fresh lake and ledger: the files are new again
        shutil.rmtree(os.path.dirname(settings.warehouse), ignore_errors=True)
        end = datetime.now(UTC)
        run = RunInfo(run_id=f"bench_{i}", interval_start=end - timedelta(days=1), interval_end=end, run_created=end)
        started = time.perf_counter()
        manifest = run_files_extract(config, config.tables[0], run, settings)
        runs.append({"seconds": time.perf_counter() - started, "rows": manifest["rows"],
                     "rows_rejected": manifest["rows_rejected"], "rss_kb": peak_rss_kb()})
    lake.remove(settings.lake_root)
    emit(runs)
"""

REFERENCE_JOB = """
    import os, shutil, time, duckdb
    conn = duckdb.connect()
    conn.execute("SET enable_progress_bar = false")
    started = time.perf_counter()
    rows = conn.execute(os.environ["BENCH_SQL"]).fetchone()[0]
    seconds = time.perf_counter() - started
    shutil.rmtree(os.environ["BENCH_OUT"])
    emit([{"seconds": seconds, "rows": rows, "rows_rejected": 0, "rss_kb": peak_rss_kb()}])
"""


def source_config(data: DataSet) -> dict:
    """A source with one files table reading ``data``'s landing zone."""
    files = {"pattern": "clicks/*.tsv.gz", "schema": SCHEMA, "quiet_period": "0s"}
    return {"source": "bench_files", "start_date": "2026-01-01", "landing": data.landing,
            "tables": [{"name": "clicks", "mode": "append", "files": files}]}  # fmt: skip


def run_lockgate(data: DataSet, repeats: int, work: Path) -> list[dict]:
    env = {
        "LOCKGATE_LAKE_ROOT": str(work / "lake"), "LOCKGATE_WAREHOUSE": str(work / "warehouse" / "warehouse.duckdb"),
        "LOCKGATE_LANDING_ROOT": str(CACHE), "BENCH_CONFIG": json.dumps(source_config(data)),
        "BENCH_REPEATS": str(repeats),
    }  # fmt: skip
    return python_job(LOCKGATE_JOB, env)


def reference_sql(data: DataSet, out: Path) -> str:
    from lockgate.typemap import duckdb_type

    files = ", ".join(f"'{p}'" for p in data.paths())
    columns = ", ".join(f"'{c}': '{duckdb_type(t)}'" for c, t in SCHEMA.items())
    return (f"COPY (SELECT * FROM read_csv([{files}], delim = '\\t', header = true, columns = {{{columns}}})) "
            f"TO '{out}' (FORMAT parquet, COMPRESSION zstd, PER_THREAD_OUTPUT true)")  # fmt: skip


def run_duckdb(data: DataSet, repeats: int, work: Path) -> list[dict]:
    work.mkdir(parents=True, exist_ok=True)
    env = {"BENCH_SQL": reference_sql(data, work / "duckdb_out"), "BENCH_OUT": str(work / "duckdb_out")}
    return [python_job(REFERENCE_JOB, env)[0] for _ in range(repeats)]


RUNNERS = {"lockgate": run_lockgate, "duckdb": run_duckdb}


@dataclasses.dataclass
class FilesMeasure:
    """One measure: the median of its runs, and the data's size for MB/s."""

    seconds: float
    samples_s: list[float]
    rows: int
    files: int
    uncompressed_bytes: int
    gzip_bytes: int
    mb_per_s: float  # 10^6 bytes of uncompressed TSV a second
    peak_rss_mb: float  # of the process that read the files
    kind: str
    measured_with: str | None = None  # another measure's run, when they are the same one

    @classmethod
    def of(cls, runs: list[dict], data: DataSet, kind: str, measured_with: str | None) -> FilesMeasure:
        if any(r["rows"] != data.rows or r["rows_rejected"] for r in runs):
            raise RuntimeError(f"{data.landing}: expected {data.rows:,} rows and none rejected, got {runs}")
        seconds = statistics.median(r["seconds"] for r in runs)
        return cls(round(seconds, 3), [round(r["seconds"], 3) for r in runs], data.rows, len(data.keys),
                   data.uncompressed_bytes, data.gzip_bytes, round(data.uncompressed_bytes / seconds / 1e6, 1),
                   round(max(r["rss_kb"] for r in runs) / 1024, 1), kind, measured_with)  # fmt: skip


@dataclasses.dataclass
class FilesRuns:
    """The measures of this run and the data they read."""

    data: dict[str, DataSet] = dataclasses.field(default_factory=dict)
    measures: dict[str, FilesMeasure] = dataclasses.field(default_factory=dict)

    def as_json(self) -> dict:
        if not self.measures:
            return {}
        data = {name: {k: v for k, v in dataclasses.asdict(d).items() if k != "keys"} for name, d in self.data.items()}
        section = {"gzip_level": GZIP_LEVEL, "data_sets": data}
        return {"files": {**section, **{name: dataclasses.asdict(m) for name, m in self.measures.items()}}}

    def targets(self) -> dict[str, Target]:
        m = self.measures
        return {name: Target(m[a].seconds / m[b].seconds, None, kind)
                for name, (a, b, kind) in RATIOS.items() if a in m and b in m}  # fmt: skip


def run_measures(wanted: set[str], repeats: int, work: Path) -> FilesRuns:
    """The ``wanted`` measures, each (data set, reader) pair run once."""
    runs = FilesRuns()
    if not wanted:
        return runs
    runs.data = ensure_data()
    done: dict[tuple[str, str], str] = {}
    for name in (m for m in MEASURES if m in wanted):
        pair = PLAN[name]
        data, kind = runs.data[pair[0]], WARM if pair[1] == "lockgate" else REFERENCE
        if pair in done:
            runs.measures[name] = dataclasses.replace(runs.measures[done[pair]], measured_with=done[pair])
            continue
        log(f"{name}: {pair[1]} on {len(data.keys)} gzip file(s), {data.uncompressed_bytes / 1e9:.2f} GB uncompressed")
        runs.measures[name] = FilesMeasure.of(RUNNERS[pair[1]](data, repeats, work / "files"), data, kind, None)
        done[pair] = name
    return runs
