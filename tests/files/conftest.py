"""A landing zone in a local folder or in the session's S3 server (moto), and the four
stages run for an interval exactly as the DAG's tasks run them."""

from __future__ import annotations

import gzip
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from lockgate import pipeline, warehouse
from lockgate.config import SourceConfig, parse_source
from lockgate.pipeline import RunInfo

from tests.conftest import S3_KEY, S3_SECRET  # at collection: importing it later resets LOCKGATE_* variables

DAY0 = datetime(2026, 3, 1, tzinfo=UTC)
SOURCE = "web"
CLICKS_SCHEMA = {"event_id": "bigint", "user_id": "bigint", "page": "string", "amount": "decimal(10,2)",
                 "at": "timestamp"}  # fmt: skip


def day(n: int) -> datetime:
    return DAY0 + timedelta(days=n)


def tsv(rows: list[tuple], header: tuple = tuple(CLICKS_SCHEMA)) -> bytes:
    lines = ["\t".join(header), *("\t".join("" if v is None else str(v) for v in row) for row in rows)]
    return ("\n".join(lines) + "\n").encode()


def clicks(first: int, count: int, when: datetime) -> list[tuple]:
    return [(i, i % 7, f"/p/{i % 5}", f"{i % 100}.25", when.isoformat()) for i in range(first, first + count)]


@dataclass
class Landing:
    """The landing zone an application writes into."""

    location: str  # what the source file's `landing` says
    root: Any  # Path, or (client, bucket, prefix)
    s3: bool

    def drop(self, key: str, data: bytes, landed: datetime, *, compress: bool | None = None) -> None:
        if compress if compress is not None else key.endswith(".gz"):
            data = gzip.compress(data)
        if not self.s3:
            path = self.root / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            os.utime(path, (landed.timestamp(), landed.timestamp()))
            return
        client, bucket, prefix = self.root
        client.put_object(Bucket=bucket, Key=f"{prefix}/{key}", Body=data)

    def remove(self, key: str) -> None:
        if not self.s3:
            (self.root / key).unlink()
        else:
            client, bucket, prefix = self.root
            client.delete_object(Bucket=bucket, Key=f"{prefix}/{key}")


@pytest.fixture(params=["local", "s3"])
def landing(request, tmp_path: Path, lake_env, s3_server) -> Landing:
    """After ``lake_env`` (the settings it points at must be in place first)."""
    if request.param == "local":
        root = tmp_path / "landing"
        root.mkdir()
        return Landing(str(root), root, False)
    import boto3

    client = boto3.client("s3", endpoint_url=s3_server.endpoint, aws_access_key_id=S3_KEY,
                          aws_secret_access_key=S3_SECRET, region_name="us-east-1")  # fmt: skip
    client.create_bucket(Bucket="landing-zone") if "landing-zone" not in [
        b["Name"] for b in client.list_buckets()["Buckets"]
    ] else None
    prefix = f"drops-{uuid.uuid4().hex[:10]}"
    return Landing(f"s3://landing-zone/{prefix}", (client, "landing-zone", prefix), True)


def files_source(landing: Landing, **table: Any) -> SourceConfig:
    files = {"pattern": "clicks/*.tsv.gz", "schema": CLICKS_SCHEMA, "quiet_period": "0s", **table.pop("files", {})}
    spec = {"name": "clicks", "mode": "append", "files": files, **table}
    return parse_source({"source": SOURCE, "start_date": "2026-03-01", "landing": landing.location, "tables": [spec]},
                        "test")  # fmt: skip


def run_interval(config: SourceConfig, start: datetime | None, end: datetime | None, *, version: int = 0,
                 run_id: str | None = None, settings=None, **extra: Any) -> dict[str, Any]:  # fmt: skip
    """The four stages of every table for one interval, as the DAG's tasks run them."""
    run = RunInfo(run_id or f"scheduled__{(start or end).isoformat()}", start, end, run_created=end, version=version,
                  **extra)  # fmt: skip
    results = {}
    for table in config.tables:
        extracted = pipeline.extract_stage(config, table, run, settings=settings)
        validated = pipeline.validate_stage(config, table, run, extracted["raw_path"], settings=settings)
        loaded = pipeline.load_stage(config, table, run, extracted["raw_path"], settings=settings)
        pipeline.publish_stage(config, table, run, extracted["raw_path"], settings=settings)
        results[table.name] = {"extracted": extracted, "validated": validated, "loaded": loaded}
    return results


def rows(settings, sql: str) -> list[tuple]:
    with warehouse.connect(settings, read_only=True) as conn:
        return conn.execute(sql).fetchall()
