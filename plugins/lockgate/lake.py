"""The raw lake: immutable Parquet folders, one per run, sealed by a manifest.

Layout (see DESIGN.md)::

    lake/raw/<source>/<table>/<interval_start>_<interval_end>/<run_id>/part-*.parquet
                                                                     /_manifest.json

A folder is written under a ``.tmp-`` name and renamed into place only once every
file and the manifest are on disk, so a reader never sees half a folder, and a
folder with a manifest is complete by construction. The manifest records rows,
schema, cursor range and a SHA-256 per file; :func:`verify` checks them before a
load, so a damaged or partial extract is never loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from lockgate.errors import LakeError

MANIFEST = "_manifest.json"
FORMAT_VERSION = 1


#: Characters a run id may keep in its folder name; everything else (dots, separators,
#: ``:`` and ``+`` of timestamps, ...) becomes ``_`` and the name gets a hash suffix.
_KEEP = re.compile(r"[^A-Za-z0-9_=-]+")
_SLUG_CHARS = 80


def run_folder(run_id: str, version: int = 0) -> str:
    """The one folder name of a run id (and reprocess version) inside its interval.

    Always a single path component: no ``.`` or ``..``, no separator, at most ~100
    characters. Collision-free: a run id kept as it is contains only ``[A-Za-z0-9_=-]``
    and has no ``~``; any other id is shortened to a slug plus ``~`` and 16 hex digits of
    its SHA-256, so two ids never share a folder. Version ``n > 0`` (the run's
    ``n``-th clear, a deliberate reprocess) adds ``~v<n>``.
    """
    slug = _KEEP.sub("_", run_id)
    name = slug
    if slug != run_id or len(run_id) > _SLUG_CHARS or not run_id:
        digest = hashlib.sha256(run_id.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        name = f"{slug[:_SLUG_CHARS]}~{digest}"
    return name if version == 0 else f"{name}~v{int(version)}"


def stamp(value: datetime | None) -> str:
    if value is None:
        return "none"
    return value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


@dataclass(frozen=True)
class RawLocation:
    lake_root: Path
    source: str
    table: str
    interval_start: datetime | None
    interval_end: datetime | None
    run_id: str
    #: 0 for a run's first read; the run's clear number for a deliberate reprocess.
    version: int = 0

    @property
    def folder_name(self) -> str:
        return run_folder(self.run_id, self.version)

    @property
    def table_dir(self) -> Path:
        return self.lake_root / "raw" / self.source / self.table

    @property
    def interval_dir(self) -> Path:
        return self.table_dir / f"{stamp(self.interval_start)}_{stamp(self.interval_end)}"

    @property
    def path(self) -> Path:
        return self.interval_dir / self.folder_name

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST

    def temp_path(self) -> Path:
        return self.interval_dir / f".tmp-{self.folder_name}-{os.getpid()}"

    @property
    def partial_path(self) -> Path:
        """Chunks of an unfinished extract of this run; kept across retries (the checkpoint)."""
        return self.interval_dir / f".partial-{self.folder_name}"


def plan_path(lake_root: Path, source: str, table: str, run_id: str, version: int = 0) -> Path:
    """Where the extract plan of one run version is kept (beside the interval folders:
    a manual run's interval comes from its plan)."""
    return lake_root / "raw" / source / table / "_plans" / f"{run_folder(run_id, version)}.json"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(payload, handle, indent=2, sort_keys=True, default=str)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def seal(location: RawLocation, temp_dir: Path, manifest: dict[str, Any]) -> Path:
    """Write the manifest into ``temp_dir`` and move it into place atomically.

    If another attempt sealed the same run first, its folder wins and ours is dropped
    (both came from the same run, and the first one is already what others may read).
    """
    manifest = {**manifest, "format_version": FORMAT_VERSION, "sealed_at": datetime.now(UTC).isoformat()}
    write_json_atomic(temp_dir / MANIFEST, manifest)
    _fsync_dir(temp_dir)
    try:
        os.rename(temp_dir, location.path)
    except OSError:
        if (location.path / MANIFEST).exists():
            shutil.rmtree(temp_dir, ignore_errors=True)
            return location.path
        if location.path.exists():  # an unsealed leftover: replace it
            shutil.rmtree(location.path)
            os.rename(temp_dir, location.path)
        else:
            raise
    _fsync_dir(location.interval_dir)
    return location.path


def read_manifest(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LakeError(f"{folder}: no {MANIFEST}; the extract did not finish") from None
    except json.JSONDecodeError as exc:
        raise LakeError(f"{path}: manifest is not valid JSON ({exc})") from None


def data_files(folder: str | Path, manifest: dict[str, Any]) -> list[str]:
    return [str(Path(folder) / item["path"]) for item in manifest["files"]]


def verify(folder: str | Path, *, checksums: bool = True) -> dict[str, Any]:
    """Return the manifest if every file it lists is present and intact."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    for item in manifest["files"]:
        path = folder / item["path"]
        if not path.exists():
            raise LakeError(f"{folder}: file {item['path']} listed in the manifest is missing")
        if path.stat().st_size != item["bytes"]:
            raise LakeError(f"{folder}: file {item['path']} has {path.stat().st_size} bytes, manifest says {item['bytes']}")
        if checksums and sha256_file(path) != item["sha256"]:
            raise LakeError(f"{folder}: file {item['path']} does not match its SHA-256 in the manifest")
    return manifest


def sealed_runs(lake_root: Path, source: str, table: str) -> list[Path]:
    """Every sealed raw folder of a table, oldest interval first."""
    base = lake_root / "raw" / source / table
    if not base.exists():
        return []
    return sorted(p.parent for p in base.glob(f"*/*/{MANIFEST}") if not p.parent.name.startswith(".tmp-"))


def latest_per_interval(lake_root: Path, source: str, table: str) -> list[Path]:
    """The newest sealed folder of each interval: the lake's current version of the table."""
    newest: dict[Path, tuple[str, Path]] = {}
    for folder in sealed_runs(lake_root, source, table):
        sealed_at = read_manifest(folder).get("sealed_at", "")
        current = newest.get(folder.parent)
        if current is None or sealed_at > current[0]:
            newest[folder.parent] = (sealed_at, folder)
    return [folder for _, folder in sorted(newest.values(), key=lambda item: str(item[1]))]


def clean_temp(location: RawLocation) -> None:
    """Remove unsealed leftovers of earlier attempts of this run (a crashed write)."""
    if not location.interval_dir.exists():
        return
    for leftover in location.interval_dir.glob(f".tmp-{location.folder_name}-*"):
        shutil.rmtree(leftover, ignore_errors=True)


def sealed_versions(lake_root: Path, source: str, table: str, interval_dir_name: str | None = None) -> list[Path]:
    """Sealed folders of a table (of one interval folder when given), oldest seal first."""
    folders = [
        f for f in sealed_runs(lake_root, source, table) if interval_dir_name is None or f.parent.name == interval_dir_name
    ]
    return sorted(folders, key=lambda f: read_manifest(f).get("sealed_at", ""))


def link_version(location: RawLocation, version: Path, extra: dict[str, Any]) -> Path:
    """Seal ``location`` as a copy of a stored version, without copying bytes.

    The data files are hard links (the lake is immutable, so sharing them is safe);
    the new manifest repeats the stored one and records where it came from.
    """
    stored = verify(version)
    location.interval_dir.mkdir(parents=True, exist_ok=True)
    temp = location.temp_path()
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir(parents=True)
    for item in stored["files"]:
        source_file = Path(version) / item["path"]
        target = temp / item["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source_file, target)
        except OSError:  # another file system: copy instead
            shutil.copy2(source_file, target)
    for item in stored.get("keys", {}).get("files", []):
        target = temp / item["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(Path(version) / item["path"], target)
    manifest = {k: v for k, v in stored.items() if k not in ("sealed_at", "format_version")}
    manifest.update(extra)
    return seal(location, temp, manifest)


def prune(lake_root: Path, source: str, table: str, *, keep: timedelta, now: datetime | None = None,
          dry_run: bool = False) -> list[Path]:
    """Retention: delete raw versions older than ``keep`` that a newer version of the same
    interval supersedes, and abandoned unsealed folders older than ``keep``.

    The newest sealed version of every interval is never deleted: the warehouse can
    always be rebuilt from the lake (replay). Returns what was (or would be) deleted.
    """
    now = now or datetime.now(UTC)
    cutoff = now - keep
    base = lake_root / "raw" / source / table
    doomed: list[Path] = []
    current = set(latest_per_interval(lake_root, source, table))
    for folder in sealed_runs(lake_root, source, table):
        sealed_at = read_manifest(folder).get("sealed_at")
        if folder not in current and sealed_at and datetime.fromisoformat(sealed_at) < cutoff:
            doomed.append(folder)
    if base.exists():
        for leftover in [*base.glob("*/.tmp-*"), *base.glob("*/.partial-*")]:
            if datetime.fromtimestamp(leftover.stat().st_mtime, UTC) < cutoff:
                doomed.append(leftover)
        # A plan outlives its folder only as long as a retry could still need it.
        kept = {f.name for f in sealed_runs(lake_root, source, table) if f not in doomed}
        kept |= {p.name.removeprefix(".partial-") for p in base.glob("*/.partial-*") if p not in doomed}
        for plan in base.glob("_plans/*.json"):
            if plan.stem not in kept and datetime.fromtimestamp(plan.stat().st_mtime, UTC) < cutoff:
                doomed.append(plan)
    if not dry_run:
        for folder in doomed:
            if folder.is_dir():
                shutil.rmtree(folder)
            else:
                folder.unlink()
    return sorted(doomed)
