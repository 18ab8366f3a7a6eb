"""Where things are in the lake: folder names of runs and intervals (see DESIGN.md)::

    lake/raw/<source>/<table>/<interval_start>_<interval_end>/<run_id>/part-*.parquet
                                                                     /_manifest.json
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from lockgate.lake.storage import LakePath

MANIFEST = "_manifest.json"

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


def lake_root_of(folder: LakePath) -> LakePath:
    """The lake root of a run folder (``<root>/raw/<source>/<table>/<interval>/<run>``)."""
    return folder.parent.parent.parent.parent.parent


@dataclass(frozen=True)
class RawLocation:
    lake_root: LakePath
    source: str
    table: str
    interval_start: datetime | None
    interval_end: datetime | None
    run_id: str
    #: 0 for a run's first read; the run's clear number for a deliberate reprocess.
    version: int = 0
    #: A local folder where the extract assembles its files (the lake itself when it is
    #: local, so sealing is a rename; an S3 lake's files are uploaded from here).
    stage_root: Path | None = None

    @property
    def folder_name(self) -> str:
        return run_folder(self.run_id, self.version)

    @property
    def table_dir(self) -> LakePath:
        return self.lake_root / "raw" / self.source / self.table

    @property
    def interval_name(self) -> str:
        return f"{stamp(self.interval_start)}_{stamp(self.interval_end)}"

    @property
    def interval_dir(self) -> LakePath:
        return self.table_dir / self.interval_name

    @property
    def path(self) -> LakePath:
        return self.interval_dir / self.folder_name

    @property
    def manifest_path(self) -> LakePath:
        return self.path / MANIFEST

    @property
    def stage_interval_dir(self) -> Path:
        root = self.stage_root if self.stage_root is not None else self.lake_root
        return root / "raw" / self.source / self.table / self.interval_name

    def temp_path(self) -> Path:
        return self.stage_interval_dir / f".tmp-{self.folder_name}-{os.getpid()}"

    @property
    def partial_path(self) -> Path:
        """Chunks of an unfinished extract of this run; kept across retries (the checkpoint)."""
        return self.stage_interval_dir / f".partial-{self.folder_name}"


def plan_path(lake_root: LakePath, source: str, table: str, run_id: str, version: int = 0) -> LakePath:
    """Where the extract plan of one run version is kept (beside the interval folders:
    a manual run's interval comes from its plan)."""
    return lake_root / "raw" / source / table / "_plans" / f"{run_folder(run_id, version)}.json"
