"""Retention: which raw versions ``lockgate prune-lake`` deletes, in a local or an S3 lake."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from lockgate.lake import storage
from lockgate.lake.layout import MANIFEST
from lockgate.lake.storage import LakePath
from lockgate.lake.versions import latest_per_interval, read_manifest, sealed_runs


def _superseded(lake_root: LakePath, source: str, table: str, cutoff: datetime) -> list[LakePath]:
    """Sealed versions older than the cutoff that a newer version of their interval supersedes."""
    current = {str(f) for f in latest_per_interval(lake_root, source, table)}
    doomed = []
    for folder in sealed_runs(lake_root, source, table):
        sealed_at = read_manifest(folder).get("sealed_at")
        if str(folder) not in current and sealed_at and datetime.fromisoformat(sealed_at) < cutoff:
            doomed.append(folder)
    return doomed


def _unsealed(base: LakePath, cutoff: datetime) -> list[LakePath]:
    """Abandoned attempts older than the cutoff: local ``.tmp-``/``.partial-`` folders, and
    S3 run prefixes whose upload stopped before the manifest."""
    if not base.exists():
        return []
    if storage.is_local(base):
        leftovers = [*base.glob("*/.tmp-*"), *base.glob("*/.partial-*")]
    else:
        leftovers = [
            run for interval in base.iterdir() if interval.name != "_plans" and interval.is_dir()
            for run in interval.iterdir() if run.is_dir() and not (run / MANIFEST).exists()
        ]  # fmt: skip
    return [p for p in leftovers if storage.modified(p) < cutoff]


def _referenced(lake_root: LakePath, source: str, table: str, doomed: set[str]) -> set[str]:
    """Objects that kept versions use by reference (replays in an S3 lake)."""
    refs = set()
    for folder in sealed_runs(lake_root, source, table):
        if str(folder) not in doomed:
            manifest = read_manifest(folder)
            for item in [*manifest["files"], *manifest.get("keys", {}).get("files", [])]:
                if item.get("ref"):
                    refs.add(str(lake_root / item["ref"]))
    return refs


def _delete_version(folder: LakePath, keep: set[str]) -> None:
    if not keep or storage.is_local(folder):
        storage.remove(folder)
        return
    manifest = read_manifest(folder)
    items = [*manifest["files"], *manifest.get("keys", {}).get("files", [])]
    storage.remove(folder / MANIFEST)  # unsealed first: readers stop seeing it
    storage.remove_many([folder / i["path"] for i in items if not i.get("ref") and str(folder / i["path"]) not in keep])


def prune(
    lake_root: LakePath, source: str, table: str, *, keep: timedelta, now: datetime | None = None,
    dry_run: bool = False, stage_root: Path | None = None,
) -> list[LakePath]:  # fmt: skip
    """Delete raw versions older than ``keep`` that a newer version of the same interval
    supersedes, and abandoned unsealed attempts older than ``keep`` (in the lake, and in
    the local staging folder of an S3 lake).

    The newest sealed version of every interval is never deleted: the warehouse can
    always be rebuilt from the lake (replay). An object a kept version refers to is
    kept. Returns what was (or would be) deleted.
    """
    cutoff = (now or datetime.now(UTC)) - keep
    base = lake_root / "raw" / source / table
    versions = _superseded(lake_root, source, table, cutoff)
    leftovers = _unsealed(base, cutoff)
    if stage_root is not None and str(stage_root) != str(lake_root):
        leftovers += _unsealed(stage_root / "raw" / source / table, cutoff)
    doomed = [*versions, *leftovers]
    # A plan outlives its folder only as long as a retry could still need it.
    gone = {str(p) for p in doomed}
    kept = {f.name for f in sealed_runs(lake_root, source, table) if str(f) not in gone}
    stage = stage_root / "raw" / source / table if stage_root is not None else base
    partials = [*stage.glob("*/.partial-*"), *(base.glob("*/.partial-*") if storage.is_local(base) else [])]
    kept |= {p.name.removeprefix(".partial-") for p in partials if str(p) not in gone}
    if base.exists():
        for plan in base.glob("_plans/*.json"):
            if plan.stem not in kept and storage.modified(plan) < cutoff:
                doomed.append(plan)
    if not dry_run:
        refs = _referenced(lake_root, source, table, {str(v) for v in versions})
        for path in doomed:
            _delete_version(path, refs) if path in versions else storage.remove(path)
    return sorted(doomed, key=str)



