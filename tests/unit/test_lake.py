"""The raw lake: sealed folders are immutable and verified; damage is detected and named."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from lockgate import lake
from lockgate.errors import LakeError

D1 = datetime(2026, 1, 1, tzinfo=UTC)
D2 = datetime(2026, 1, 2, tzinfo=UTC)


def sealed(tmp_path, run_id="scheduled__2026-01-01T00:00:00+00:00", payload=b"parquet bytes"):
    location = lake.RawLocation(tmp_path, "shop", "orders", D1, D2, run_id)
    temp = location.temp_path()
    temp.mkdir(parents=True)
    (temp / "part-0.parquet").write_bytes(payload)
    files = [{"path": "part-0.parquet", "rows": 3, "bytes": len(payload), "sha256": lake.sha256_file(temp / "part-0.parquet")}]
    return location, lake.seal(location, temp, {"rows": 3, "files": files})


def test_layout_follows_the_design(tmp_path):
    location, folder = sealed(tmp_path)
    interval = tmp_path / "raw/shop/orders/20260101T000000Z_20260102T000000Z"
    assert folder.parent == interval and folder.name.startswith("scheduled__2026-01-01T00_00_00_00_00~")
    assert not list(folder.parent.glob(".tmp-*"))
    manifest = lake.verify(folder)
    assert manifest["rows"] == 3 and manifest["format_version"] == lake.FORMAT_VERSION and manifest["sealed_at"]


def test_corruption_is_detected(tmp_path):
    _, folder = sealed(tmp_path)
    (folder / "part-0.parquet").write_bytes(b"parquet byteZ")  # same size, different content
    assert lake.verify(folder, checksums=False)
    with pytest.raises(LakeError, match="part-0.parquet does not match its SHA-256"):
        lake.verify(folder)
    (folder / "part-0.parquet").write_bytes(b"short")
    with pytest.raises(LakeError, match="has 5 bytes, manifest says 13"):
        lake.verify(folder, checksums=False)
    (folder / "part-0.parquet").unlink()
    with pytest.raises(LakeError, match="listed in the manifest is missing"):
        lake.verify(folder)


def test_unsealed_folder_is_not_a_run(tmp_path):
    location = lake.RawLocation(tmp_path, "shop", "orders", D1, D2, "r1")
    location.path.mkdir(parents=True)
    with pytest.raises(LakeError, match="the extract did not finish"):
        lake.verify(location.path)
    assert lake.sealed_runs(tmp_path, "shop", "orders") == []


def test_a_second_seal_of_the_same_run_keeps_the_first(tmp_path):
    location, first = sealed(tmp_path)
    original = lake.read_manifest(first)
    temp = location.temp_path()
    temp.mkdir()
    (temp / "part-0.parquet").write_bytes(b"other")
    assert lake.seal(location, temp, {"rows": 99, "files": []}) == first
    assert lake.read_manifest(first) == original and not temp.exists()


def test_latest_per_interval_picks_the_newest_sealed_run(tmp_path):
    sealed(tmp_path, "run_a")
    _, newer = sealed(tmp_path, "run_b")
    assert lake.sealed_runs(tmp_path, "shop", "orders") == sorted([newer.parent / "run_a", newer])
    assert lake.latest_per_interval(tmp_path, "shop", "orders") == [newer]


def test_clean_temp_removes_only_this_runs_leftovers(tmp_path):
    location = lake.RawLocation(tmp_path, "shop", "orders", D1, D2, "r1")
    other = lake.RawLocation(tmp_path, "shop", "orders", D1, D2, "r2")
    location.temp_path().mkdir(parents=True)
    other.temp_path().mkdir(parents=True)
    lake.clean_temp(location)
    assert not location.temp_path().exists() and other.temp_path().exists()


def test_retention_keeps_the_newest_version_of_every_interval(tmp_path):
    from datetime import timedelta

    _, old = sealed(tmp_path, run_id="r1")
    _, new = sealed(tmp_path, run_id="r2", payload=b"newer parquet")
    abandoned = new.parent / ".partial-r3"
    abandoned.mkdir()
    plans = {r: lake.plan_path(tmp_path, "shop", "orders", r) for r in ("r1", "r2", "r3", "r4")}
    for plan in plans.values():
        lake.write_json_atomic(plan, {"run_id": plan.stem})
    later = datetime.now(UTC) + timedelta(days=40)
    assert lake.prune(tmp_path, "shop", "orders", keep=timedelta(days=30)) == []  # nothing old enough
    doomed = lake.prune(tmp_path, "shop", "orders", keep=timedelta(days=30), now=later, dry_run=True)
    # The plans of pruned folders go with them (r3's partial is pruned too; r4 never sealed).
    assert doomed == sorted([old, abandoned, plans["r1"], plans["r3"], plans["r4"]]) and old.exists()
    assert lake.prune(tmp_path, "shop", "orders", keep=timedelta(days=30), now=later) == doomed
    assert not old.exists() and not abandoned.exists() and plans["r2"].exists() and not plans["r1"].exists()
    assert lake.verify(new)  # the current version stays, whatever its age
    assert lake.latest_per_interval(tmp_path, "shop", "orders") == [new]


HOSTILE_RUN_IDS = [
    "..", ".", "...", "../..", "a/b", "../../raw", "/etc", "a\\b", "", " ", "~", "x~v1", "manual__1~v1",
    "a:b", "a+b", "a_b", "ünï", "😀", "x" * 250, "x" * 251, ".hidden", "-rf", "a\nb", "a*b?[c]",
]


def test_every_run_id_maps_to_one_distinct_folder_inside_its_interval(tmp_path):
    folders = {}
    for run_id in HOSTILE_RUN_IDS:
        for version in (0, 1, 2):
            location = lake.RawLocation(tmp_path, "shop", "orders", D1, D2, run_id, version)
            name = location.folder_name
            assert name not in (".", "..") and "/" not in name and "\\" not in name and "." not in name, name
            assert 0 < len(name) <= 110 and name.isascii() and name.isprintable(), name
            assert location.path.parent == location.interval_dir
            assert location.path.resolve().parent == location.interval_dir.resolve()
            assert location.partial_path.parent == location.interval_dir
            folders.setdefault(name, []).append((run_id, version))
    clashes = {n: ids for n, ids in folders.items() if len(ids) > 1}
    assert not clashes


def test_plain_run_ids_keep_their_name():
    assert lake.run_folder("manual_1") == "manual_1"
    assert lake.run_folder("manual_1", 2) == "manual_1~v2"
    assert lake.run_folder("manual_1~v2") != lake.run_folder("manual_1", 2)
