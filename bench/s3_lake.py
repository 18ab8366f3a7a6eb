"""The raw lake in S3 for ``lockgate_pipeline_s3``: moto's S3 server on 127.0.0.1 in this
process (threads), a versioned bucket, and the environment that points Lockgate at it
(``LOCKGATE_LAKE_ROOT=s3://…``, the ``aws`` connection with the endpoint, a local
staging folder). The server runs only while the measure does.

moto keeps the objects in this process's memory and serves them from Python over
loopback: the figure is the cost of the S3 code path (uploads at seal, downloads for
validation, DuckDB httpfs reads at load), not of a network to a real object store.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BUCKET = "lockgate-bench"
#: The lake's own connection id, so that a LOCKGATE_LAKE_CONN_ID of the caller's is not used.
CONN_ID = "lockgate_bench_lake"
KEY, SECRET, REGION = "lockgate-bench-key", "lockgate-bench-secret", "us-east-1"


def server_description() -> str:
    """What the results say of the S3 server (no address: it changes every run)."""
    import moto

    return f"moto {moto.__version__} ThreadedMotoServer on 127.0.0.1 in the bench process, versioned bucket"


@contextmanager
def moto_lake(staging: Path) -> Iterator[dict[str, str]]:
    """Start the server and the bucket; yield the lake's environment for a Lockgate job;
    then drop every object (moto would keep them in memory) and stop the server."""
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        client = boto3.client(
            "s3", endpoint_url=endpoint, aws_access_key_id=KEY, aws_secret_access_key=SECRET, region_name=REGION
        )
        client.create_bucket(Bucket=BUCKET)
        client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        connection = {"conn_type": "aws", "login": KEY, "password": SECRET,
                      "extra": {"endpoint_url": endpoint, "region_name": REGION}}  # fmt: skip
        yield {
            "LOCKGATE_LAKE_ROOT": f"s3://{BUCKET}/lake",
            "LOCKGATE_LAKE_CONN_ID": CONN_ID,
            f"AIRFLOW_CONN_{CONN_ID.upper()}": json.dumps(connection),
            "LOCKGATE_STAGING_DIR": str(staging),
        }
    finally:
        try:
            reset = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
            urllib.request.urlopen(reset, timeout=30).close()
        finally:
            server.stop()
