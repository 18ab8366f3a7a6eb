"""The landing zone of a files table: a local folder or an S3 prefix (read through the
source's Airflow ``aws`` connection), the files its glob matches, and which of them are
ready: an application may still be writing a file, so a file is taken only once a
marker object is in its folder or once it has not changed for a quiet period."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from lockgate.config import FilesConfig, SourceConfig, TableConfig
from lockgate.errors import ConfigError, LakeError
from lockgate.settings import Settings


@dataclass(frozen=True)
class LandedFile:
    """One file in the landing zone as listed (before it is read)."""

    key: str  # the path under the landing zone, with '/'
    size: int
    modified: datetime
    etag: str | None  # S3's ETag; None in a folder

    def identity(self) -> tuple[str, int, str]:
        """What makes this the same upload: a re-uploaded file changes size, time or ETag."""
        return self.key, self.size, self.etag or self.modified.isoformat()


def landing_location(settings: Settings, config: SourceConfig, table: TableConfig) -> str:
    spec = _spec(table)
    location = spec.landing or config.landing or ""
    if location.startswith("s3://"):
        return location.rstrip("/")
    if "://" in location:
        raise ConfigError(f"{config.source}.{table.name}: landing '{location.split('://')[0]}://' is not supported")
    path = Path(location).expanduser()
    return str(path if path.is_absolute() else (settings.landing_root or settings.project_root / "landing") / path)


def landing_root(settings: Settings, config: SourceConfig, table: TableConfig) -> Any:
    """The landing zone as a path object (``Path``, or an S3 path over s3fs)."""
    location = landing_location(settings, config, table)
    if not location.startswith("s3://"):
        return Path(location)
    from upath import UPath

    from lockgate.lake import s3

    conn_id = config.landing_conn_id or settings.lake_conn_id
    bucket = s3.parse_url("landing", location)
    s3.checked_bucket(bucket.bucket, conn_id)
    return UPath(bucket.url, **s3.access(conn_id).fsspec_options())


def _spec(table: TableConfig) -> FilesConfig:
    if table.files is None:
        raise ConfigError(f"table '{table.name}' does not read files")
    return table.files


def list_files(root: Any, spec: FilesConfig) -> list[LandedFile]:
    """The files under ``root`` that match the table's glob, oldest first (markers and
    hidden files excluded)."""
    if isinstance(root, Path) and not root.is_dir():
        raise LakeError(f"landing zone {root} does not exist")
    if not isinstance(root, Path):
        root.fs.invalidate_cache()  # s3fs keeps listings: a run must see what landed since
    found = []
    for path in root.glob(spec.pattern):
        key = _key(root, path)
        name = key.rsplit("/", 1)[-1]
        if name.startswith((".", "_")):
            continue
        info = _info(path)
        if info is not None:
            found.append(LandedFile(key, *info))
    return sorted(found, key=lambda f: (f.modified, f.key))


def _key(root: Any, path: Any) -> str:
    return str(path).removeprefix(str(root)).lstrip("/")


def _info(path: Any) -> tuple[int, datetime, str | None] | None:
    if isinstance(path, Path):
        if not path.is_file():
            return None
        stat = path.stat()
        return stat.st_size, datetime.fromtimestamp(stat.st_mtime, UTC), None
    info = path.fs.info(path.path)
    if info.get("type") != "file":
        return None
    modified = info.get("LastModified") or info.get("last_modified")
    etag = str(info.get("ETag") or "").strip('"') or None
    return int(info["size"]), modified.astimezone(UTC), etag


def ready(files: list[LandedFile], root: Any, spec: FilesConfig, now: datetime) -> list[LandedFile]:
    """The files no application is still writing: with a ``ready_marker``, those whose
    folder has the marker; otherwise those unchanged for ``quiet_period``."""
    if spec.ready_marker:
        folders = {f.key.rpartition("/")[0] for f in files}
        if not isinstance(root, Path):
            root.fs.invalidate_cache()
        marked = {d for d in folders if (root / d / spec.ready_marker if d else root / spec.ready_marker).exists()}
        return [f for f in files if f.key.rpartition("/")[0] in marked]
    quiet: timedelta = spec.quiet_period
    return [f for f in files if f.modified <= now - quiet]


def key_present(settings: Settings, config: SourceConfig, table: TableConfig, key: str) -> bool:
    """Is ``key`` (``*`` matches any characters) in the table's landing zone?"""
    root = landing_root(settings, config, table)
    if not isinstance(root, Path):
        root.fs.invalidate_cache()
    return any(True for _ in root.glob(key)) if "*" in key else (root / key).exists()
