"""Waiting for files instead of failing (issue 16, item 2): a sensor task before a files
table's extract — the Amazon provider's deferrable S3KeySensor for an S3 landing zone,
a rescheduling sensor for a folder."""

from __future__ import annotations

import boto3
from lockgate.config import parse_source
from lockgate.dag_factory import build_dag
from lockgate.landing.zone import key_present

from tests.conftest import S3_KEY, S3_SECRET


def _config(landing: str, key: str = "clicks/{{ ds }}/_SUCCESS"):
    files = {"pattern": "clicks/*/*.tsv.gz", "ready_marker": "_SUCCESS", "wait_for": {"key": key, "timeout": "2h"}}
    return parse_source({"source": "web", "start_date": "2026-03-01", "landing": landing,
                         "tables": [{"name": "clicks", "mode": "append", "files": files}]}, "web.yml")  # fmt: skip


def test_an_s3_landing_zone_waits_with_the_deferrable_s3_key_sensor(lake_env, s3_server):
    dag = build_dag(_config("s3://landing-wait/drops", key="clicks/2026-03-01/_SUCCESS"))
    sensor = dag.get_task("clicks.wait_for_files")
    assert type(sensor).__name__ == "S3KeySensor" and sensor.deferrable and sensor.timeout == 7200
    assert sensor.bucket_key == "s3://landing-wait/drops/clicks/2026-03-01/_SUCCESS"
    assert "clicks.extract" in sensor.downstream_task_ids
    client = boto3.client("s3", endpoint_url=s3_server.endpoint, aws_access_key_id=S3_KEY,
                          aws_secret_access_key=S3_SECRET, region_name="us-east-1")  # fmt: skip
    client.create_bucket(Bucket="landing-wait")
    assert sensor.poke({}) is False  # through the lake's connection and its endpoint
    client.put_object(Bucket="landing-wait", Key="drops/clicks/2026-03-01/_SUCCESS", Body=b"")
    assert sensor.poke({}) is True


def test_a_folder_waits_with_a_rescheduling_sensor(lake_env, tmp_path):
    config = _config(str(tmp_path / "landing"))
    dag = build_dag(config)
    sensor = dag.get_task("clicks.wait_for_files")
    assert sensor.mode == "reschedule" and sensor.timeout == 7200
    assert list(sensor.op_args) == ["clicks/{{ ds }}/_SUCCESS"] and "clicks.extract" in sensor.downstream_task_ids
    table = config.tables[0]
    assert not key_present(lake_env, config, table, "clicks/2026-03-01/_SUCCESS")
    (tmp_path / "landing" / "clicks" / "2026-03-01").mkdir(parents=True)
    (tmp_path / "landing" / "clicks" / "2026-03-01" / "_SUCCESS").touch()
    assert key_present(lake_env, config, table, "clicks/2026-03-01/_SUCCESS")
    assert key_present(lake_env, config, table, "clicks/*/_SUCCESS")
