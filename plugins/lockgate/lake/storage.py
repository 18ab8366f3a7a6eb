"""The few operations the lake needs that behave differently in a local folder and in
an S3 bucket. Everything else is the path API both share (``/``, ``exists``, ``glob``,
``read_text``): a local lake is a :class:`pathlib.Path`, an S3 lake a universal-pathlib
``S3Path`` over s3fs.

Local writes are atomic by rename; an S3 ``PUT`` is atomic by itself (an object appears
whole or not at all), and S3 has no rename, so a folder is sealed by writing its manifest
last (:mod:`lockgate.lake.versions`).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from upath import UPath

#: A lake location: a local path, or an S3 object or prefix (universal-pathlib's S3Path).
LakePath: TypeAlias = "Path | UPath"


def is_local(path: LakePath) -> bool:
    return isinstance(path, Path)


def lake_path(value: str | os.PathLike[str] | LakePath) -> LakePath:
    """A lake location from a path object or its text (``s3://…`` or a local path), as
    the stages pass raw folders and reports between tasks."""
    if isinstance(value, Path) or hasattr(value, "protocol"):
        return value
    text = str(value)
    if text.startswith("s3://"):
        from lockgate.lake import s3
        from lockgate.settings import load_settings

        settings = load_settings()
        root = settings.lake_root
        if is_local(root):
            from lockgate.errors import LakeError

            raise LakeError(f"{text}: an S3 lake location, but LOCKGATE_LAKE_ROOT is a local folder")
        location = s3.parse_url("lake location", text)
        return type(root)(location.url, **root.storage_options)
    return Path(text)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_bytes_atomic(path: LakePath, data: bytes) -> None:
    """Readers see the old content or the new, never a part."""
    if not is_local(path):
        path.write_bytes(data)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def write_json_atomic(path: LakePath, payload: dict[str, Any]) -> None:
    write_bytes_atomic(path, json.dumps(payload, indent=2, sort_keys=True, default=str).encode("utf-8"))


def remove(path: LakePath) -> None:
    """Delete a file or a folder (an S3 prefix) and everything under it; absent is fine."""
    if is_local(path):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        return
    try:
        path.fs.rm(path.path, recursive=True)
    except FileNotFoundError:
        pass


def remove_many(paths: list[LakePath]) -> None:
    """Delete S3 objects in batches (one request per thousand), local files one by one."""
    remote = [p for p in paths if not is_local(p)]
    for p in paths:
        if is_local(p):
            remove(p)
    if remote:
        remote[0].fs.rm([p.path for p in remote])


@dataclass(frozen=True)
class StoredObject:
    """An object as the store reports it: size, and on S3 its ETag and version id."""

    size: int
    modified: datetime
    etag: str | None = None
    version_id: str | None = None


def stat(path: LakePath) -> StoredObject:
    if is_local(path):
        st = path.stat()
        return StoredObject(st.st_size, datetime.fromtimestamp(st.st_mtime, UTC))
    info = path.fs.info(path.path)
    modified = info.get("LastModified") or datetime.now(UTC)
    return StoredObject(int(info["size"]), modified, (info.get("ETag") or "").strip('"') or None, info.get("VersionId"))


def upload(files: list[tuple[Path, LakePath]]) -> None:
    """Put finished local files into an S3 lake (concurrent uploads)."""
    if files:
        files[0][1].fs.put([str(local) for local, _ in files], [target.path for _, target in files])


def modified(path: LakePath) -> datetime:
    """When a file, or the newest object under a prefix, was last written."""
    if is_local(path) or path.is_file():
        return stat(path).modified
    infos = path.fs.find(path.path, detail=True).values()
    return max((i.get("LastModified") for i in infos if i.get("LastModified")), default=datetime.now(UTC))


def move_in(local: Path, target: LakePath) -> LakePath:
    """Move a finished local file or folder into the lake: a rename in a local lake (an
    existing folder target raises :class:`OSError`), an upload in S3."""
    if is_local(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(local, target)
        return target
    target.fs.put(str(local), target.path, recursive=local.is_dir())
    shutil.rmtree(local) if local.is_dir() else local.unlink()
    return target


@contextmanager
def local_copies(files: list[str], folder: Path) -> Iterator[list[str]]:
    """The files as local paths for a reader that only reads local files (Spark here has
    no ``s3a``): S3 objects are downloaded into ``folder`` and removed afterwards."""
    paths = [lake_path(f) for f in files]
    if all(is_local(p) for p in paths):
        yield [str(p) for p in paths]
        return
    folder.mkdir(parents=True, exist_ok=True)
    local = [folder / f"part-{i:05d}.parquet" for i in range(len(paths))]
    try:
        paths[0].fs.get([p.path for p in paths], [str(p) for p in local])
        yield [str(p) for p in local]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
