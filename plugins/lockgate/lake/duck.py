"""DuckDB reads (and writes quarantine files into) an S3 lake through its httpfs
extension, installed offline from the ``duckdb-extension-httpfs`` package, with a
temporary secret made from the lake's Airflow connection."""

from __future__ import annotations

import importlib
from pathlib import Path


def extension_file(package: str) -> Path:
    """The extension file a ``duckdb-extension-*`` PyPI package ships (for an offline
    ``INSTALL '<file>'``); the package is pinned to the installed duckdb's version."""
    import duckdb

    folder = Path(importlib.import_module(package).__file__).parent / "extensions" / f"v{duckdb.__version__}"
    found = sorted(folder.glob("*.duckdb_extension"))
    if not found:
        raise RuntimeError(f"{package} ships no extension for duckdb {duckdb.__version__} in {folder}")
    return found[0]


def install_sql(package: str, name: str, extension_dir: Path) -> str:
    """SQL that installs ``name`` from the file of ``package`` into ``extension_dir`` (not
    the user's ~/.duckdb) and loads it."""
    return f"SET extension_directory = '{extension_dir}'; INSTALL '{extension_file(package)}'; LOAD {name};"


def attach_lake(conn, settings) -> None:
    """Give a DuckDB connection read/write access to the settings' S3 lake (nothing for
    a local lake). The secret lives in this connection only."""
    if settings.lake_is_local:
        return
    from lockgate.lake import s3

    location = s3.parse_url("LOCKGATE_LAKE_ROOT", settings.lake_location)
    conn.execute(install_sql("duckdb_extension_httpfs", "httpfs", settings.stage_root / "duckdb_extensions"))
    conn.execute(s3.access(settings.lake_conn_id).duckdb_secret_sql(f"s3://{location.bucket}"))
