"""The raw lake's versions: immutable Parquet folders, one per run, sealed by a manifest.

A folder is complete when its manifest exists; readers ignore folders without one. The
manifest records rows, schema, cursor range and, per file, its size and SHA-256 (and in
an S3 lake the object's ETag and version id); :func:`verify` checks them before a load,
so a damaged or partial extract is never loaded.

Sealing: in a local lake the folder is written under a ``.tmp-`` name and renamed into
place once every file and the manifest are on disk. S3 has no rename: the files are
uploaded into the run's prefix, then the manifest, last.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lockgate.errors import LakeError
from lockgate.lake import storage
from lockgate.lake.layout import MANIFEST, RawLocation, lake_root_of
from lockgate.lake.storage import LakePath, is_local, lake_path

FORMAT_VERSION = 1


def sha256_file(path: LakePath) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _stamped(manifest: dict[str, Any]) -> dict[str, Any]:
    return {**manifest, "format_version": FORMAT_VERSION, "sealed_at": datetime.now(UTC).isoformat()}


def seal(
    location: RawLocation, temp_dir: Path, manifest: dict[str, Any], *, uploaded: set[str] | frozenset[str] = frozenset()
) -> LakePath:
    """Make ``temp_dir`` (a finished local folder) the run's sealed version; in S3, the
    files named in ``uploaded`` are already in the run's folder (the Spark tasks that
    wrote them put them there).

    If another attempt sealed the same run first, its folder wins and ours is dropped
    (both came from the same run, and the first one is already what others may read).
    """
    if not is_local(location.path):
        return _seal_remote(location, temp_dir, manifest, uploaded)
    storage.write_json_atomic(temp_dir / MANIFEST, _stamped(manifest))
    storage.fsync_dir(temp_dir)
    location.interval_dir.mkdir(parents=True, exist_ok=True)
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
    storage.fsync_dir(location.interval_dir)
    return location.path


def _seal_remote(location: RawLocation, temp_dir: Path, manifest: dict[str, Any], uploaded) -> LakePath:
    """Upload the files not yet in the run's prefix, then the manifest with each object's
    ETag and version id: the manifest's presence is the seal."""
    if location.manifest_path.exists():
        shutil.rmtree(temp_dir, ignore_errors=True)
        return location.path
    items = [*manifest["files"], *manifest.get("keys", {}).get("files", [])]
    # A task's upload may be gone (an earlier attempt's, since overwritten): put the file again.
    stored = {i["path"]: _stored(location.path / i["path"]) for i in items if i["path"] in uploaded}
    storage.upload([(temp_dir / i["path"], location.path / i["path"]) for i in items if not stored.get(i["path"])])
    for item in items:
        obj = stored.get(item["path"]) or storage.stat(location.path / item["path"])
        if obj.size != item["bytes"]:  # a task's upload that is not the file it wrote
            raise LakeError(f"{location.path}: object {item['path']} has {obj.size} bytes, the file written has {item['bytes']}")
        item.update(etag=obj.etag, version_id=obj.version_id)
    storage.write_json_atomic(location.manifest_path, _stamped(manifest))
    shutil.rmtree(temp_dir, ignore_errors=True)
    return location.path


def _stored(path: LakePath) -> storage.StoredObject | None:
    try:
        return storage.stat(path)
    except FileNotFoundError:
        return None


def read_manifest(folder: str | LakePath) -> dict[str, Any]:
    path = lake_path(folder) / MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LakeError(f"{folder}: no {MANIFEST}; the extract did not finish") from None
    except json.JSONDecodeError as exc:
        raise LakeError(f"{path}: manifest is not valid JSON ({exc})") from None


def _file_path(folder: LakePath, item: dict[str, Any]) -> LakePath:
    """Where a listed file's bytes are: in the folder, or (a replay in an S3 lake) the
    object of the version it was sealed from, by reference."""
    return lake_root_of(folder) / item["ref"] if item.get("ref") else folder / item["path"]


def data_files(folder: str | LakePath, manifest: dict[str, Any]) -> list[str]:
    folder = lake_path(folder)
    return [str(_file_path(folder, item)) for item in manifest["files"]]


def key_files(folder: str | LakePath, manifest: dict[str, Any]) -> list[str]:
    folder = lake_path(folder)
    return [str(_file_path(folder, item)) for item in manifest.get("keys", {}).get("files", [])]


def _check_file(folder: LakePath, item: dict[str, Any], checksums: bool) -> None:
    path = _file_path(folder, item)
    try:
        obj = storage.stat(path)
    except FileNotFoundError:
        raise LakeError(f"{folder}: file {item['path']} listed in the manifest is missing") from None
    if obj.size != item["bytes"]:
        raise LakeError(f"{folder}: file {item['path']} has {obj.size} bytes, manifest says {item['bytes']}")
    if item.get("etag") and obj.etag != item["etag"]:
        raise LakeError(
            f"{folder}: object {item['path']} was rewritten after the folder was sealed (ETag {obj.etag}, sealed "
            f"{item['etag']}, version {item.get('version_id')}); restore that version or replay another"
        )
    if checksums and is_local(path) and sha256_file(path) != item["sha256"]:
        raise LakeError(f"{folder}: file {item['path']} does not match its SHA-256 in the manifest")


def verify(folder: str | LakePath, *, checksums: bool = True) -> dict[str, Any]:
    """Return the manifest if every file it lists is present and intact: size and
    SHA-256 in a local lake; size and the sealed object's ETag in S3 (the store computes
    it from the bytes, so it changes with them, and nothing is downloaded to check)."""
    folder = lake_path(folder)
    manifest = read_manifest(folder)
    for item in [*manifest["files"], *manifest.get("keys", {}).get("files", [])]:
        _check_file(folder, item, checksums)
    return manifest


def sealed_runs(lake_root: LakePath, source: str, table: str) -> list[LakePath]:
    """Every sealed raw folder of a table, oldest interval first."""
    base = lake_root / "raw" / source / table
    if not base.exists():
        return []
    folders = [p.parent for p in base.glob(f"*/*/{MANIFEST}") if not p.parent.name.startswith(".tmp-")]
    return sorted(folders, key=str)


def latest_per_interval(lake_root: LakePath, source: str, table: str) -> list[LakePath]:
    """The newest sealed folder of each interval: the lake's current version of the table."""
    newest: dict[str, tuple[str, LakePath]] = {}
    for folder in sealed_runs(lake_root, source, table):
        sealed_at = read_manifest(folder).get("sealed_at", "")
        current = newest.get(str(folder.parent))
        if current is None or sealed_at > current[0]:
            newest[str(folder.parent)] = (sealed_at, folder)
    return [folder for _, folder in sorted(newest.values(), key=lambda item: str(item[1]))]


def clean_temp(location: RawLocation) -> None:
    """Remove unsealed leftovers of earlier attempts of this run (a crashed write)."""
    if not location.stage_interval_dir.exists():
        return
    for leftover in location.stage_interval_dir.glob(f".tmp-{location.folder_name}-*"):
        shutil.rmtree(leftover, ignore_errors=True)


def sealed_versions(
    lake_root: LakePath, source: str, table: str, interval_dir_name: str | None = None
) -> list[LakePath]:
    """Sealed folders of a table (of one interval folder when given), oldest seal first."""
    folders = [
        f for f in sealed_runs(lake_root, source, table) if interval_dir_name is None or f.parent.name == interval_dir_name
    ]
    return sorted(folders, key=lambda f: read_manifest(f).get("sealed_at", ""))


def _relative(path: LakePath, root: LakePath) -> str:
    return str(path)[len(str(root)):].lstrip("/")


def link_version(location: RawLocation, version: LakePath, extra: dict[str, Any]) -> LakePath:
    """Seal ``location`` as a copy of a stored version, without copying bytes.

    Local lake: the data files are hard links (the lake is immutable, so sharing them is
    safe). S3: the new manifest refers to the stored version's objects (``ref``, with
    their ETags and version ids). The new manifest repeats the stored one and records
    where it came from.
    """
    version = lake_path(version)
    stored = verify(version)
    manifest = {k: v for k, v in stored.items() if k not in ("sealed_at", "format_version")}
    manifest.update(extra)
    if not is_local(location.path):
        root = location.lake_root
        for item in [*manifest["files"], *manifest.get("keys", {}).get("files", [])]:
            item["ref"] = item.get("ref") or _relative(version / item["path"], root)
        if not location.manifest_path.exists():
            storage.write_json_atomic(location.manifest_path, _stamped(manifest))
        return location.path
    location.interval_dir.mkdir(parents=True, exist_ok=True)
    temp = location.temp_path()
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir(parents=True)
    for item in [*stored["files"], *stored.get("keys", {}).get("files", [])]:
        target = temp / item["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(version / item["path"], target)
        except OSError:  # another file system: copy instead
            shutil.copy2(version / item["path"], target)
    return seal(location, temp, manifest)
