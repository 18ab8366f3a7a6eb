"""``lockgate`` command line: the demo, run summaries and warehouse fingerprints.

``lockgate demo`` creates the demo source (its database and its click-stream files in
a landing zone), runs ``ingest_shop`` through real Airflow (``airflow dags test``) for
consecutive daily intervals and prints what each run extracted, validated and loaded,
and which landing files it took. ``lockgate airflow-env`` writes the environment the
project's Airflow uses to a private file (mode 0600: connection URIs may carry
passwords) and prints its path and the variable names, never a value; load it with
``set -a; . "$(lockgate airflow-env)"; set +a``.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from lockgate.settings import Settings, load_settings


def state_dir(settings: Settings) -> Path:
    return Path(os.environ.get("LOCKGATE_STATE_DIR", settings.project_root / ".lockgate"))


def demo_db_path(settings: Settings) -> Path:
    return state_dir(settings) / "demo" / "shop.db"


#: The demo source's table that reads files from a landing zone.
DEMO_FILES_TABLE = "clicks"


def demo_landing_path(settings: Settings) -> Path:
    """The folder of the demo's click-stream files, as the ``clicks`` task resolves it
    (``landing: shop`` in ``dags/sources/shop.yml``, under ``LOCKGATE_LANDING_ROOT``)."""
    from lockgate.config import load_source
    from lockgate.errors import ConfigError
    from lockgate.landing.zone import landing_location

    config = load_source(settings.sources_dir, "shop")
    location = landing_location(settings, config, config.table(DEMO_FILES_TABLE))
    if "://" in location:
        scheme = location.split("://")[0]
        raise ConfigError(f"shop.{DEMO_FILES_TABLE}: the demo writes its click stream into a folder, not {scheme}://")
    return Path(location)


def airflow_env_path(settings: Settings) -> Path:
    return state_dir(settings) / "airflow.env"


def airflow_env(settings: Settings) -> dict[str, str]:
    """The variables that point Airflow at this project (and nothing global)."""
    root = settings.project_root
    home = os.environ.get("AIRFLOW_HOME", str(state_dir(settings) / "airflow"))
    return {
        "AIRFLOW_HOME": home,
        # SQLite metadata: standalone's four processes write at once; wait for the lock
        # instead of failing with "database is locked".
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": os.environ.get(
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{home}/airflow.db?timeout=60"
        ),
        # The UI of a laptop's Airflow is for this machine only (Airflow binds 0.0.0.0).
        "AIRFLOW__API__HOST": os.environ.get("AIRFLOW__API__HOST", "127.0.0.1"),
        **_api_urls(),
        "AIRFLOW__CORE__DAGS_FOLDER": str(root / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(root / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": os.environ.get("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO"),
        "AIRFLOW_CONN_SHOP_DB": os.environ.get("AIRFLOW_CONN_SHOP_DB", f"sqlite:///{demo_db_path(settings)}"),
        "LOCKGATE_HOME": str(root),
        "LOCKGATE_LAKE_ROOT": settings.lake_location,
        "LOCKGATE_LAKE_CONN_ID": settings.lake_conn_id,
        # Where a files table's relative `landing` is (the demo's click stream: <root>/shop).
        "LOCKGATE_LANDING_ROOT": str(settings.landing_root or root / "landing"),
        "LOCKGATE_WAREHOUSE": settings.warehouse,
        "LOCKGATE_WAREHOUSE_CONN_ID": settings.warehouse_conn_id or "",
        "LOCKGATE_WAREHOUSE_MAX_CONNECTIONS": str(settings.warehouse_max_connections),
        "LOCKGATE_SOURCES_DIR": str(settings.sources_dir),
        "LOCKGATE_EXPECTATIONS_DIR": str(settings.expectations_dir),
    }


def _api_urls() -> dict[str, str]:
    """Where tasks reach the API server: on another port than 8080 (``AIRFLOW__API__PORT``)
    Airflow would still send its task processes to 8080, and every task would fail
    with "connection refused" before it starts."""
    port = os.environ.get("AIRFLOW__API__PORT", "8080")
    return {
        "AIRFLOW__API__PORT": port,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": os.environ.get(
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL", f"http://127.0.0.1:{port}/execution/"
        ),
    }


def airflow_binary() -> str:
    """This environment's ``airflow`` (beside its Python), else the one on PATH."""
    binary = Path(sys.executable).with_name("airflow")
    return str(binary) if binary.exists() else "airflow"


def _airflow(args: list[str], env: dict[str, str], log_path: Path | None = None) -> int:
    command = [airflow_binary(), *args]
    full_env = {**os.environ, **env}
    if log_path is None:
        return subprocess.run(command, env=full_env, check=False).returncode
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w", encoding="utf-8") as log:
        return subprocess.run(command, env=full_env, stdout=log, stderr=subprocess.STDOUT, check=False).returncode


def _fix_demo_run_starts(
    dag_id: str, logical_dates: list[str], since: datetime, env: dict[str, str], log_path: Path
) -> bool:
    """Give the runs ``airflow dags test`` created their real start (it records the logical date).

    Runs ``lockgate.demo.airflow_runs`` in the project's Airflow environment (Airflow's ORM,
    SQLite or PostgreSQL); its output goes to ``log_path``, its ``dag run`` lines to stdout.
    """
    from lockgate.demo.airflow_runs import PREFIX

    module = "lockgate.demo.airflow_runs"
    command = [sys.executable, "-m", module, dag_id, *logical_dates, "--since", since.isoformat()]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True, check=False)
    log_path.write_text(result.stdout + result.stderr, encoding="utf-8")
    for line in result.stdout.splitlines():
        if line.startswith(PREFIX):
            print(line)
    return result.returncode == 0


def sqlite_metadata_file(conn: str) -> Path | None:
    """The file of a ``sqlite:///<path>[?…]`` metadata URL (None for other databases)."""
    if not conn.startswith("sqlite:///"):
        return None
    return Path(conn[len("sqlite:///"):].split("?", 1)[0])


def prepare_airflow_db(env: dict[str, str], log_path: Path) -> bool:
    """``airflow db migrate``, then, for SQLite metadata, write-ahead logging: readers
    (the UI, the CLI) then never block the scheduler's writes, and with the busy timeout
    a CLI command waits for the lock instead of failing with "database is locked"."""
    if _airflow(["db", "migrate"], env, log_path) != 0:
        print(f"error: 'airflow db migrate' failed; see {log_path}", file=sys.stderr)
        return False
    path = sqlite_metadata_file(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    if path is not None and (mode := use_wal(path)) != "wal":
        print(f"warning: SQLite kept journal mode {mode} for {path}", file=sys.stderr)
    return True


def use_wal(path: Path) -> str:
    """Switch an SQLite database to write-ahead logging (kept in the file): readers then
    never block the writer. Returns the journal mode SQLite reports afterwards."""
    import sqlite3

    with sqlite3.connect(path, timeout=60) as conn:
        return str(conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]).lower()


def cmd_airflow_standalone(args: argparse.Namespace) -> int:
    from lockgate import standalone

    return standalone.run(state_dir(load_settings()) / "spark")


def cmd_airflow_db(args: argparse.Namespace) -> int:
    settings = load_settings()
    log_path = state_dir(settings) / "logs" / "airflow-db-migrate.log"
    return 0 if prepare_airflow_db(airflow_env(settings), log_path) else 1


def run_summary(settings: Settings, source: str, since: datetime | None = None) -> list[dict]:
    """Audit rows of a source (those started at or after ``since`` when given)."""
    from lockgate import warehouse

    with warehouse.connect(settings, read_only=True) as conn:
        sql = (
            "SELECT run_id, table_name, interval_start, interval_end, mode, rows_extracted, rows_validated, "
            "rows_loaded, rows_quarantined, validation_status, rules_evaluated, rules_failed, status, raw_path, "
            "quality_report, error, coalesce(version, 0) AS version, cross_run_status "
            "FROM lockgate.runs WHERE source = ?"
        )
        params: list = [source]
        if since is not None:
            sql += " AND started_at >= ?"
            params.append(since)
        cursor = conn.execute(sql + " ORDER BY interval_start, started_at, table_name", params)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def fingerprints(settings: Settings, source: str) -> dict[str, tuple[int, str]]:
    from lockgate import warehouse

    with warehouse.connect(settings, read_only=True) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = ? AND table_type = 'BASE TABLE' "
                "ORDER BY table_name",
                [source],
            ).fetchall()
        ]
        return {t: warehouse.table_fingerprint(conn, source, t) for t in tables}


def _fmt_time(value) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d") if value else "-"


def print_summary(rows: list[dict], out=sys.stdout) -> None:
    header = (
        f"{'interval':<23} {'table':<12} {'mode':<6} {'extracted':>9} {'validated':>9} {'loaded':>8} "
        f"{'quarant.':>8}  validation"
    )
    print(header, file=out)
    print("-" * len(header), file=out)
    for r in rows:
        interval = f"{_fmt_time(r['interval_start'])}..{_fmt_time(r['interval_end'])}"
        if r["interval_start"] is None:
            interval = "full snapshot"
        version = f" v{r['version']}" if r.get("version") else ""  # a reprocess: the run's n-th clear
        rules = f"{r['validation_status'] or '-'} ({(r['rules_evaluated'] or 0) - (r['rules_failed'] or 0)}/{r['rules_evaluated'] or 0} rules)"
        if r.get("cross_run_status") in ("warned", "failed"):  # checks across runs (lockgate.cross_run)
            rules += f", across runs {r['cross_run_status']}"
        print(
            f"{interval:<23} {r['table_name']:<12} {r['mode'] or '-':<6} {r['rows_extracted'] or 0:>9} "
            f"{r['rows_validated'] or 0:>9} {r['rows_loaded'] or 0:>8} {r['rows_quarantined'] or 0:>8}  {rules}  "
            f"[{r['status']}{version}]",
            file=out,
        )


def landing_summary(settings: Settings, source: str, run_ids: set[str], since: datetime) -> list[dict]:
    """Per table and interval, the landing files the runs ``run_ids`` read (the ledger
    names the run that read a file last): how many, their rows, and how many of them
    were taken before ``since`` (read again, not taken again)."""
    from lockgate import warehouse

    if not run_ids:
        return []
    with warehouse.connect(settings, read_only=True) as conn:
        if not warehouse.table_columns(conn, "lockgate", "landed_files"):
            return []  # a warehouse that never took a landing file
        runs = sorted(run_ids)
        cursor = conn.execute(
            "SELECT table_name, interval_start, interval_end, count(*) AS files, "
            "coalesce(sum(rows_in), 0) AS rows_in, coalesce(sum(rows_parsed), 0) AS rows_parsed, "
            "coalesce(sum(rows_rejected), 0) AS rows_rejected, "
            "count(*) FILTER (WHERE taken_at < ?) AS taken_before, "
            "string_agg(DISTINCT status, ',' ORDER BY status) AS status, min(file_key) AS first_key, "
            "max(file_key) AS last_key "
            f"FROM lockgate.landed_files WHERE source = ? AND run_id IN ({', '.join('?' * len(runs))}) "
            "GROUP BY table_name, interval_start, interval_end ORDER BY interval_start, table_name",
            [since, source, *runs],
        )
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def print_landing_summary(rows: list[dict], out=sys.stdout) -> None:
    header = f"{'interval':<23} {'table':<12} {'files':>5} {'rows in':>9} {'loaded':>8} {'rejected':>8}  keys"
    print(header, file=out)
    print("-" * len(header), file=out)
    for r in rows:
        interval = f"{_fmt_time(r['interval_start'])}..{_fmt_time(r['interval_end'])}"
        files = r["first_key"] if r["files"] == 1 else f"{r['first_key']} .. {r['last_key']}"
        again = f", {r['taken_before']} read again (taken by an earlier run)" if r["taken_before"] else ""
        print(
            f"{interval:<23} {r['table_name']:<12} {r['files']:>5} {r['rows_in']:>9} {r['rows_parsed']:>8} "
            f"{r['rows_rejected']:>8}  {files}  [{r['status']}{again}]",
            file=out,
        )


def cmd_demo(args: argparse.Namespace) -> int:
    from lockgate.demo.clicks import write_clicks
    from lockgate.demo.shop_db import create_shop_db

    settings = load_settings()
    db = demo_db_path(settings)
    if not db.exists() or args.recreate:
        counts = create_shop_db(db, scale=args.scale, start=args.start, days=args.days)
        print(f"demo source: {db} ({sum(counts.values()):,} rows: " + ", ".join(f"{t} {n:,}" for t, n in counts.items()) + ")")
    else:
        print(f"demo source: {db} (kept; --recreate to build it again)")
    # The web application's click stream, a function of the database and the days: the
    # files a run took before are written again byte for byte, with the same times.
    landing = demo_landing_path(settings)
    clicks = write_clicks(landing, db, start=args.start, days=args.days)
    written = sum(f.written for f in clicks)
    print(
        f"demo landing zone: {landing} ({len(clicks)} click-stream files, {sum(f.rows for f in clicks):,} rows; "
        f"{written} written, {len(clicks) - written} already there)"
    )
    env = airflow_env(settings)
    logs = state_dir(settings) / "logs"
    if not prepare_airflow_db(env, logs / "airflow-db-migrate.log"):
        return 1
    # `airflow dags test` names its run after the wall clock, so the demo's runs are
    # the audit rows started after this point.
    demo_started = datetime.now(UTC)
    failed = []
    logical_dates = []
    for offset in range(args.days):
        day = args.start + timedelta(days=offset)
        # With an interval timetable, a run for logical date D covers the interval that
        # ends at D: to ingest day `day`, ask for the run closing it (day + 1).
        closing = day + timedelta(days=1)
        logical = datetime(closing.year, closing.month, closing.day, tzinfo=UTC).isoformat()
        log_path = logs / f"demo-ingest_shop-{day.isoformat()}.log"
        print(f"running ingest_shop for the interval {day} .. {day + timedelta(days=1)} (log: {log_path})", flush=True)
        code = _airflow(["dags", "test", "ingest_shop", logical], env, log_path)
        logical_dates.append(logical)
        if code != 0:
            failed.append((day, log_path))
    # `dags test` records a run's start as its logical date (the UI would show a run of
    # 2026-01-01 lasting months): record when each run really started instead.
    fix_log = logs / "demo-airflow-run-starts.log"
    if not _fix_demo_run_starts("ingest_shop", logical_dates, demo_started, env, fix_log):
        print(f"warning: could not set the start of every Airflow run; see {fix_log}", file=sys.stderr)
    rows = run_summary(settings, "shop", since=demo_started)
    print()
    print_summary(rows)
    print()
    problems = [r for r in rows if r["status"] != "published"]
    wanted = {(args.start + timedelta(days=i)).isoformat() for i in range(args.days)}
    for r in rows:
        if r["interval_start"] is not None and str(r["interval_start"])[:10] not in wanted:
            r = {**r, "status": "wrong interval", "error": f"interval {r['interval_start']} is not one of {sorted(wanted)}"}
            problems.append(r)
    expected = args.days * len(_source_tables(settings))
    if failed or problems or len(rows) != expected:
        for day, log_path in failed:
            print(f"error: the run for {day} failed; see {log_path}", file=sys.stderr)
        for r in problems:
            print(f"error: {r['table_name']} in {r['run_id']} ended as {r['status']}: {r['error']}", file=sys.stderr)
        if len(rows) != expected:
            print(f"error: expected {expected} table runs, found {len(rows)}", file=sys.stderr)
        return 1
    landed = landing_summary(settings, "shop", {r["run_id"] for r in rows}, since=demo_started)
    print("landing files taken (lockgate.landed_files):")
    print_landing_summary(landed)
    read = {(r["table_name"], r["interval_start"]) for r in landed}
    for r in rows:
        if r["table_name"] == DEMO_FILES_TABLE and (r["table_name"], r["interval_start"]) not in read:
            # Not an error: a run of a later interval (a scheduled one) may have taken them.
            print(f"note: shop.{DEMO_FILES_TABLE} read no landing file for {_fmt_time(r['interval_start'])} "
                  f"(none of {landing} was ready and untaken)")
    print()
    print("warehouse tables (rows, checksum):")
    for table, (count, digest) in fingerprints(settings, "shop").items():
        print(f"  shop.{table:<12} {count:>8,}  {digest}")
    print()
    where = f"PostgreSQL (Airflow connection '{settings.warehouse_conn_id}')" if settings.warehouse_conn_id else settings.warehouse
    print(f"warehouse : {where}  (try: .venv/bin/lockgate sql 'SELECT * FROM lockgate.runs')")
    print(f"lake      : {settings.lake_location}/raw/shop/<table>/<interval>/<run_id>/  (Parquet + _manifest.json)")
    print(f"quality   : {settings.lake_location}/quality/shop/<table>/<run_id>.json")
    print(f"data docs : {settings.lake_location}/quality/shop/docs/index.html (one page per validation)")
    print(f"landing   : {landing}/clicks/<day>/part-<n>.tsv.gz  (ledger: lockgate.landed_files)")
    print(f"logs      : {logs}")
    return 0


def _source_tables(settings: Settings) -> list[str]:
    from lockgate.config import load_source

    return [t.name for t in load_source(settings.sources_dir, "shop").tables]


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def write_env_file(path: Path, env: dict[str, str], prepend_path: Path | None = None) -> None:
    """Write ``env`` as a file a POSIX shell can source (``set -a; . FILE; set +a``).

    Every value is quoted with :func:`shlex.quote`, so any character round-trips. The
    file is created with mode 0600 before a byte is written (values may be connection
    URIs with passwords) and replaces ``path`` atomically."""
    lines = [
        "# Written by `lockgate airflow-env`. Load it with:  set -a; . <this file>; set +a",
        "# It may hold passwords (connection URIs): keep it private, never commit or print it.",
    ]
    for name, value in env.items():
        if not _ENV_NAME.fullmatch(name):
            raise ValueError(f"not an environment variable name: {name!r}")
        lines.append(f"{name}={shlex.quote(value)}")
    if prepend_path is not None:
        # `airflow standalone` starts its components as `airflow ...` by name.
        lines.append(f'PATH={shlex.quote(str(prepend_path))}"${{PATH:+:$PATH}}"')
    data = "\n".join(lines) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temp.unlink(missing_ok=True)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        os.fchmod(fd, 0o600)  # exactly 0600, whatever the umask
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(data)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def cmd_airflow_env(args: argparse.Namespace) -> int:
    settings = load_settings()
    env = airflow_env(settings)
    path = Path(args.output).expanduser().absolute() if args.output else airflow_env_path(settings)
    airflow_bin = Path(sys.executable).with_name("airflow")
    prepend = airflow_bin.parent if airflow_bin.exists() else None
    write_env_file(path, env, prepend)
    names = [*env, *(["PATH"] if prepend else [])]
    # The path alone on stdout (for `. "$(lockgate airflow-env)"`); names, never values.
    print(path)
    print(
        f"lockgate: wrote {', '.join(names)} to {path} (mode 0600; values are not shown). "
        f"Load them with: set -a; . {shlex.quote(str(path))}; set +a",
        file=sys.stderr,
    )
    return 0


def cmd_fingerprint(args: argparse.Namespace) -> int:
    for table, (count, digest) in fingerprints(load_settings(), args.source).items():
        print(f"{args.source}.{table}\t{count}\t{digest}")
    return 0


def cmd_sql(args: argparse.Namespace) -> int:
    """Run one read-only query against the warehouse and print the rows."""
    from lockgate import warehouse

    settings = load_settings()
    if getattr(args, "lake", False):
        return _show(args, warehouse.lake_catalog(settings))
    if not warehouse.exists(settings):
        print(f"error: no warehouse at {settings.warehouse} yet (run `make demo` first)", file=sys.stderr)
        return 2
    return _show(args, warehouse.connect(settings, read_only=True))


def _show(args: argparse.Namespace, session) -> int:
    from lockgate import warehouse

    with session as wh:
        try:
            print(wh.show(args.query, max_rows=args.max_rows))
        except warehouse.QueryError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    return 0


def cmd_lake_init(args: argparse.Namespace) -> int:
    """Make the lake ready: an S3 lake's bucket exists, with versioning on."""
    settings = load_settings()
    if settings.lake_is_local:
        Path(settings.lake_location).mkdir(parents=True, exist_ok=True)
        print(f"lake: local folder {settings.lake_location}")
        return 0
    from lockgate.lake import s3

    location = s3.parse_url("LOCKGATE_LAKE_ROOT", settings.lake_location)
    created = s3.ensure_bucket(location.bucket, settings.lake_conn_id)
    print(f"lake: {location.url} (bucket {'created' if created else 'exists'}, versioning on; "
          f"Airflow connection '{settings.lake_conn_id}')")  # fmt: skip
    return 0


def cmd_prune_lake(args: argparse.Namespace) -> int:
    """Apply the lake's retention to every table of a source."""
    from lockgate import lake
    from lockgate.config import load_source, parse_duration

    settings = load_settings()
    config = load_source(settings.sources_dir, args.source)
    keep = parse_duration(args.keep) if args.keep else config.raw_retention
    total = 0
    for table in config.tables:
        doomed = lake.prune(
            settings.lake_root, config.source, table.name, keep=keep, dry_run=args.dry_run, stage_root=settings.stage_root
        )
        total += len(doomed)
        for folder in doomed:
            print(f"{'would delete' if args.dry_run else 'deleted'} {folder}")
    print(f"{config.source}: {total} raw folder(s) older than {keep} and superseded"
          f"{' (dry run)' if args.dry_run else ''}; the newest version of every interval is kept")
    return 0


def cmd_suggest_suite(args: argparse.Namespace) -> int:
    """Propose a suite for a table from its source's catalog and statistics, print a
    review of each column (what was proposed and why, what was not and why) and write it."""
    import json
    import logging

    from lockgate import quality, suggest
    from lockgate.config import load_source
    from lockgate.sources import resolve_source

    logging.getLogger("great_expectations").setLevel(logging.WARNING)  # its import logs to stdout, a page of it
    settings = load_settings()
    config = load_source(settings.sources_dir, args.source)
    table = config.table(args.table)
    if table.files is not None:
        print(f"error: {config.source}.{table.name} reads files; suggest-suite samples a database table", file=sys.stderr)
        return 2
    if args.sample < 2:
        print(f"error: --sample must be at least 2 rows (got {args.sample})", file=sys.stderr)
        return 2
    target = settings.expectations_dir / config.source / f"{table.name}.json"
    if target.exists() and not args.force:
        print(f"error: {target} exists; review it, or pass --force to replace it", file=sys.stderr)
        return 2
    name = f"{config.source}.{table.name}"
    suggestion = suggest.suggest_suite(resolve_source(config.connection), table, name=name, sample_rows=args.sample)
    suite = suggestion.suite()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(suite, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    quality.load_suite(settings.expectations_dir, f"{config.source}/{table.name}")  # it must load
    print(f"{name}: {suggestion.profiled()}")
    print("\n".join(f"  {line}" for line in suggestion.summary()))
    print(f"wrote {target}: {len(suite['expectations'])} expectations; review them (meta.evidence says where each came from)")
    print(f"add `expectations: {config.source}/{table.name}` to the table in dags/sources/{config.source}.yml")
    return 0


def cmd_catalog(args: argparse.Namespace) -> int:
    """The lake's tables of a source: partitions, rows, schema versions, last update."""
    from lockgate.config import load_source
    from lockgate.lake.catalog import TableCatalog, current_partitions, render

    settings = load_settings()
    config = load_source(settings.sources_dir, args.source)
    tables = [
        TableCatalog(t.name, current_partitions(settings.lake_root, config.source, t.name, t.incremental))
        for t in config.tables
    ]
    print("\n".join(render(config.source, tables, partitions=args.partitions)))
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    print_summary(run_summary(load_settings(), args.source))
    return 0


#: The provider's "credentials retrieved from login and password" (an S3 lake) would land
#: in the commands' output (``lockgate fingerprint``/``sql`` print to stdout, as Airflow's log does).
_QUIET_LOGGERS = "airflow.providers.amazon.aws.utils.connection_wrapper=WARNING"


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("AIRFLOW__LOGGING__NAMESPACE_LEVELS", _QUIET_LOGGERS)
    parser = argparse.ArgumentParser(prog="lockgate", description="Lockgate batch ingestion")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="create the demo source and ingest it through Airflow")
    demo.add_argument("--scale", type=float, default=1.0)
    demo.add_argument("--days", type=int, default=3)
    demo.add_argument("--start", type=date.fromisoformat, default=date(2026, 1, 1))
    demo.add_argument("--recreate", action="store_true", help="build the demo source again")
    demo.set_defaults(func=cmd_demo)
    env = sub.add_parser(
        "airflow-env",
        help="write the environment for this project's Airflow to a private file; print its path",
    )
    env.add_argument("-o", "--output", help="file to write (default: <state dir>/airflow.env)")
    env.set_defaults(func=cmd_airflow_env)
    db = sub.add_parser("airflow-db", help="migrate the local Airflow metadata database (SQLite: WAL mode)")
    db.set_defaults(func=cmd_airflow_db)
    standalone = sub.add_parser(
        "airflow-standalone", help="run `airflow standalone` with a Spark Connect server for its tasks"
    )
    standalone.set_defaults(func=cmd_airflow_standalone)
    fp = sub.add_parser("fingerprint", help="row count and checksum of every warehouse table of a source")
    fp.add_argument("source")
    fp.set_defaults(func=cmd_fingerprint)
    runs = sub.add_parser("runs", help="the audit trail of a source")
    runs.add_argument("source")
    runs.set_defaults(func=cmd_runs)
    catalog = sub.add_parser("catalog", help="the lake's tables of a source: partitions, rows, schema, last update")
    catalog.add_argument("source")
    catalog.add_argument("--partitions", action="store_true", help="also list every partition")
    catalog.set_defaults(func=cmd_catalog)
    lake_init = sub.add_parser("lake-init", help="make the lake ready (an S3 lake: the bucket, versioning on)")
    lake_init.set_defaults(func=cmd_lake_init)
    prune = sub.add_parser("prune-lake", help="delete superseded raw versions older than the retention")
    prune.add_argument("source")
    prune.add_argument("--keep", help="retention, e.g. 30d (default: the source's raw_retention)")
    prune.add_argument("--dry-run", action="store_true")
    prune.set_defaults(func=cmd_prune_lake)
    suggest = sub.add_parser(
        "suggest-suite", help="propose an expectation suite from the source's catalog and statistics, for review"
    )
    suggest.add_argument("source")
    suggest.add_argument("table")
    suggest.add_argument("--sample", type=int, default=10_000,
                         help="rows to sample, spread over the table (default 10000)")  # fmt: skip
    suggest.add_argument("--force", action="store_true", help="replace an existing suite")
    suggest.set_defaults(func=cmd_suggest_suite)
    sql = sub.add_parser("sql", help="run a read-only SQL query against the warehouse")
    sql.add_argument("query")
    sql.add_argument("--lake", action="store_true",
                     help="query the lake's lake.<source>__<table> views in DuckDB (any warehouse)")
    sql.add_argument("--max-rows", type=int, default=40)
    sql.set_defaults(func=cmd_sql)
    args = parser.parse_args(argv)
    from lockgate.errors import LockgateError

    try:
        return args.func(args)
    except LockgateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
