"""The raw lake in an S3 bucket (moto's server on 127.0.0.1): sealing by manifest-last,
replay by reference, retention, and the errors a user meets first."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from lockgate import lake
from lockgate.errors import ConfigError, LakeError
from lockgate.lake.catalog import current_partitions

from tests.conftest import S3_KEY, S3_SECRET

D1 = datetime(2026, 1, 1, tzinfo=UTC)
D2 = datetime(2026, 1, 2, tzinfo=UTC)
S3 = pytest.mark.parametrize("lake_env", ["s3"], indirect=True)


def _client(s3_server):
    return boto3.client(
        "s3", endpoint_url=s3_server.endpoint, aws_access_key_id=S3_KEY, aws_secret_access_key=S3_SECRET,
        region_name="us-east-1",
    )  # fmt: skip


def sealed(settings, run_id="r1", payload=b"parquet bytes", start=D1, end=D2):
    location = lake.RawLocation(settings.lake_root, "shop", "orders", start, end, run_id, stage_root=settings.stage_root)
    temp = location.temp_path()
    temp.mkdir(parents=True)
    (temp / "part-0.parquet").write_bytes(payload)
    files = [{"path": "part-0.parquet", "rows": 3, "bytes": len(payload), "sha256": lake.sha256_file(temp / "part-0.parquet")}]
    return location, lake.seal(location, temp, {"rows": 3, "files": files})


def _key(path) -> str:
    return path.path.split("/", 1)[1]


@S3
def test_a_sealed_version_is_objects_then_its_manifest(lake_env, s3_server):
    location, folder = sealed(lake_env)
    assert str(folder).startswith(f"s3://{s3_server.bucket}/") and not lake.is_local(folder)
    objects = _client(s3_server).list_object_versions(Bucket=s3_server.bucket, Prefix=_key(folder))["Versions"]
    written = {o["Key"].rsplit("/", 1)[1]: o["LastModified"] for o in objects}
    assert set(written) == {"part-0.parquet", "_manifest.json"}
    assert written["part-0.parquet"] <= written["_manifest.json"]
    manifest = lake.verify(folder)
    item = manifest["files"][0]
    assert item["etag"] and item["version_id"], "the manifest records which object version was sealed"
    assert not location.temp_path().exists(), "the local staging copy is gone once uploaded"
    assert lake.sealed_runs(lake_env.lake_root, "shop", "orders") == [folder]


@S3
def test_a_prefix_without_manifest_is_not_a_version(lake_env):
    location = lake.RawLocation(lake_env.lake_root, "shop", "orders", D1, D2, "r9")
    (location.path / "part-0.parquet").write_bytes(b"half an upload")
    assert lake.sealed_runs(lake_env.lake_root, "shop", "orders") == []
    with pytest.raises(LakeError, match="the extract did not finish"):
        lake.verify(location.path)


@S3
def test_an_object_rewritten_after_sealing_is_refused(lake_env):
    _, folder = sealed(lake_env)
    (folder / "part-0.parquet").write_bytes(b"parquet byteZ")  # same size, other bytes
    with pytest.raises(LakeError, match="rewritten after the folder was sealed"):
        lake.verify(folder)
    (folder / "part-0.parquet").unlink()
    with pytest.raises(LakeError, match="listed in the manifest is missing"):
        lake.verify(folder)


@S3
def test_replay_refers_to_the_sealed_objects_without_copying(lake_env, s3_server):
    _, first = sealed(lake_env)
    replay = lake.RawLocation(lake_env.lake_root, "shop", "orders", D1, D2, "replay", stage_root=lake_env.stage_root)
    folder = lake.link_version(replay, first, {"run_id": "replay", "replayed_from": str(first)})
    keys = [o["Key"] for o in _client(s3_server).list_objects_v2(Bucket=s3_server.bucket, Prefix=_key(folder))["Contents"]]
    assert [k.rsplit("/", 1)[1] for k in keys] == ["_manifest.json"], "no bytes copied"
    manifest = lake.verify(folder)
    assert lake.data_files(folder, manifest) == [str(first / "part-0.parquet")]
    assert lake.latest_per_interval(lake_env.lake_root, "shop", "orders") == [folder]


@S3
def test_retention_keeps_what_a_kept_replay_refers_to(lake_env):
    _, old = sealed(lake_env, "r1")
    replay = lake.RawLocation(lake_env.lake_root, "shop", "orders", D1, D2, "r2")
    current = lake.link_version(replay, old, {"run_id": "r2"})
    abandoned = lake.RawLocation(lake_env.lake_root, "shop", "orders", D2, D2 + timedelta(days=1), "r3").path
    (abandoned / "part-0.parquet").write_bytes(b"interrupted upload")
    later = datetime.now(UTC) + timedelta(days=40)
    assert lake.prune(lake_env.lake_root, "shop", "orders", keep=timedelta(days=30)) == []
    doomed = lake.prune(lake_env.lake_root, "shop", "orders", keep=timedelta(days=30), now=later)
    assert sorted(map(str, doomed)) == sorted([str(abandoned), str(old)])
    assert not (abandoned / "part-0.parquet").exists() and not (old / lake.MANIFEST).exists()
    assert lake.verify(current)["files"][0]["ref"], "the replay still reads the object it refers to"
    assert lake.sealed_runs(lake_env.lake_root, "shop", "orders") == [current]


@S3
def test_the_lake_views_read_s3_through_duckdb(lake_env):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from lockgate import warehouse

    location = lake.RawLocation(lake_env.lake_root, "shop", "orders", D1, D2, "r1", stage_root=lake_env.stage_root)
    temp = location.temp_path()
    temp.mkdir(parents=True)
    pq.write_table(pa.table({"order_id": [1, 2, 3]}), temp / "part-0.parquet")
    item = {"path": "part-0.parquet", "rows": 3, "bytes": (temp / "part-0.parquet").stat().st_size, "sha256": "-"}
    lake.seal(location, temp, {"rows": 3, "files": [item]})
    with warehouse.connect(lake_env) as conn:
        warehouse.refresh_lake_view(conn, "shop", "orders", current_partitions(lake_env.lake_root, "shop", "orders", True))
        assert conn.execute("SELECT sum(order_id) FROM lake.shop__orders").fetchone()[0] == 6
    # A later connection (`lockgate sql`) gets the secret again: the view still reads.
    with warehouse.connect(lake_env, read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM lake.shop__orders").fetchone()[0] == 3


def _settings_error(env: dict[str, str]) -> str:
    """What loading the settings says in a fresh process with ``env``."""
    code = "from lockgate.settings import load_settings; load_settings().lake_root"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    return done.stderr


def test_a_lake_url_with_credentials_is_refused_without_echoing_them(monkeypatch):
    from lockgate.settings import load_settings

    for url in (f"s3://{S3_KEY}:{S3_SECRET}@bucket/lake", f"s3://{S3_SECRET}@bucket/lake"):
        monkeypatch.setenv("LOCKGATE_LAKE_ROOT", url)
        with pytest.raises(ConfigError) as caught:
            load_settings()
        assert "LOCKGATE_LAKE_ROOT" in str(caught.value) and "credentials" in str(caught.value)
        assert S3_SECRET not in str(caught.value) and S3_KEY not in str(caught.value)
    monkeypatch.setenv("LOCKGATE_LAKE_ROOT", "https://bucket.example/lake")
    with pytest.raises(ConfigError, match="'https://' locations are not supported"):
        load_settings()


@S3
def test_a_missing_bucket_or_a_dead_endpoint_names_the_bucket_and_the_connection(lake_env, s3_server):
    import os

    env = {**os.environ, "LOCKGATE_LAKE_ROOT": "s3://no-such-bucket/lake", "LOCKGATE_LAKE_CONN_ID": "lockgate_lake"}
    stderr = _settings_error(env)
    assert "lake bucket 'no-such-bucket' (Airflow connection 'lockgate_lake'" in stderr and "does not exist" in stderr
    dead = json.loads(os.environ["AIRFLOW_CONN_LOCKGATE_LAKE"])
    dead["extra"]["endpoint_url"] = "http://127.0.0.1:9"  # nothing listens on the discard port
    env.update(LOCKGATE_LAKE_ROOT="s3://lockgate-lake/lake", LOCKGATE_LAKE_CONN_ID="dead_lake",
               AIRFLOW_CONN_DEAD_LAKE=json.dumps(dead))  # fmt: skip
    stderr = _settings_error(env)
    assert "lake bucket 'lockgate-lake' (Airflow connection 'dead_lake', endpoint 127.0.0.1:9): not reachable" in stderr
    assert S3_SECRET not in stderr


def test_lake_init_creates_a_versioned_bucket_once(s3_server):
    from lockgate.lake import s3

    assert s3.ensure_bucket("lockgate-init-test", "lockgate_lake") is True
    assert s3.ensure_bucket("lockgate-init-test", "lockgate_lake") is False
    versioning = _client(s3_server).get_bucket_versioning(Bucket="lockgate-init-test")
    assert versioning["Status"] == "Enabled"
