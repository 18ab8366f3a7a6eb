"""The lake on S3: the location, the Airflow connection, and handles for the libraries
that move the bytes.

``LOCKGATE_LAKE_ROOT=s3://bucket/prefix`` puts the lake in a bucket; the credentials,
region and endpoint (``endpoint_url`` in the extra, for MinIO or a local server) come
only from the Airflow connection ``LOCKGATE_LAKE_CONN_ID`` (``aws`` type, default
``lockgate_lake``) through the Amazon provider's :class:`S3Hook`. They are handed to
s3fs (the lake's paths, through universal-pathlib) and to DuckDB's httpfs (the load, the
``lake.*`` views, ``lockgate sql``); nothing else reads them, and no message prints them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from lockgate.errors import ConfigError, LakeError

DEFAULT_CONN_ID = "lockgate_lake"


@dataclass(frozen=True)
class BucketLocation:
    bucket: str
    prefix: str

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")


def parse_url(variable: str, value: str) -> BucketLocation:
    """``s3://bucket[/prefix]``; anything else fails naming the variable, never echoing
    the value (a URL may carry a password)."""
    parts = urlsplit(value)
    if parts.scheme != "s3":
        raise ConfigError(f"{variable}: '{parts.scheme}://' locations are not supported; use a local path or s3://bucket/prefix")
    if "@" in parts.netloc or parts.password is not None or parts.username is not None:
        raise ConfigError(
            f"{variable}: the S3 location carries credentials; remove them (the value is not shown). Credentials "
            "come from the Airflow connection named by LOCKGATE_LAKE_CONN_ID"
        )
    if parts.query or parts.fragment:
        raise ConfigError(f"{variable}: the S3 location has a query or fragment; use s3://bucket/prefix")
    if not parts.netloc:
        raise ConfigError(f"{variable}: the S3 location names no bucket; use s3://bucket/prefix")
    return BucketLocation(parts.netloc, parts.path.strip("/"))


@dataclass(frozen=True)
class Access:
    """What the connection says, for the libraries that move bytes (never logged)."""

    conn_id: str
    key: str | None
    secret: str | None
    token: str | None
    region: str
    endpoint_url: str | None

    def fsspec_options(self) -> dict[str, Any]:
        client: dict[str, Any] = {"region_name": self.region}
        if self.endpoint_url:
            client["endpoint_url"] = self.endpoint_url
        options: dict[str, Any] = {"client_kwargs": client, "version_aware": True}
        if self.key:
            options.update(key=self.key, secret=self.secret, token=self.token)
        return options

    def pyarrow_options(self) -> dict[str, Any]:
        """Keyword arguments of pyarrow's ``S3FileSystem`` (path-style requests)."""
        options: dict[str, Any] = {"region": self.region}
        if self.key:
            options.update(access_key=self.key, secret_key=self.secret, session_token=self.token)
        if self.endpoint_url:
            endpoint = urlsplit(self.endpoint_url)
            options.update(endpoint_override=endpoint.netloc, scheme=endpoint.scheme)
        return options

    def duckdb_secret_sql(self, scope: str) -> str:
        """A temporary DuckDB secret for ``scope`` (this connection only, never on disk)."""
        fields = {"TYPE": "s3", "REGION": self.region, "URL_STYLE": "path", "SCOPE": scope}
        if self.key:
            fields.update(KEY_ID=self.key, SECRET=self.secret or "")
            if self.token:
                fields["SESSION_TOKEN"] = self.token
        else:
            fields["PROVIDER"] = "credential_chain"
        if self.endpoint_url:
            endpoint = urlsplit(self.endpoint_url)
            fields.update(ENDPOINT=endpoint.netloc, USE_SSL="true" if endpoint.scheme == "https" else "false")
        body = ", ".join(f"{k} {_sql_value(k, v)}" for k, v in fields.items())
        return f"CREATE OR REPLACE TEMPORARY SECRET lockgate_lake ({body})"


def _sql_value(key: str, value: str) -> str:
    if key in ("TYPE", "PROVIDER") or value in ("true", "false"):
        return value
    return "'" + value.replace("'", "''") + "'"


@functools.cache
def access(conn_id: str) -> Access:
    """Credentials, region and endpoint of an ``aws`` connection, through the provider."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    try:
        hook = S3Hook(aws_conn_id=conn_id)
        credentials = hook.get_credentials()
        endpoint = hook.conn_config.endpoint_url if hook.conn_config else None
        region = hook.conn_region_name or "us-east-1"
    except Exception as exc:  # AirflowNotFoundException, a bad extra, ...
        raise ConfigError(
            f"the lake's Airflow connection '{conn_id}' cannot be used ({type(exc).__name__}); define it as an "
            "'aws' connection (login: access key id, password: secret key, extra: endpoint_url, region_name)"
        ) from None
    return Access(conn_id, credentials.access_key, credentials.secret_key, credentials.token, region, endpoint)


@functools.cache
def checked_bucket(bucket: str, conn_id: str) -> None:
    """Fail at once, naming the bucket and the connection, when the bucket is missing or
    the endpoint does not answer (checked once per process)."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    info = access(conn_id)
    config = Config(connect_timeout=5, read_timeout=20, retries={"max_attempts": 2})
    client = S3Hook(aws_conn_id=conn_id, config=config).get_conn()
    where = f"lake bucket '{bucket}' (Airflow connection '{conn_id}'"
    where += f", endpoint {urlsplit(info.endpoint_url).netloc})" if info.endpoint_url else ")"
    try:
        client.head_bucket(Bucket=bucket)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        reason = "does not exist" if code in ("404", "NoSuchBucket", "NotFound") else f"refused access ({code})"
        raise LakeError(f"{where}: {reason}") from None
    except BotoCoreError as exc:
        raise LakeError(f"{where}: not reachable ({type(exc).__name__})") from None


def ensure_bucket(bucket: str, conn_id: str) -> bool:
    """Create the lake's bucket if it is missing and turn its versioning on, through the
    provider's hook; True when the bucket was created."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    from botocore.exceptions import BotoCoreError, ClientError

    hook = S3Hook(aws_conn_id=conn_id)
    try:
        created = not hook.check_for_bucket(bucket)
        if created:
            hook.create_bucket(bucket_name=bucket, region_name=access(conn_id).region)
        hook.get_conn().put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    except (BotoCoreError, ClientError) as exc:
        raise LakeError(f"lake bucket '{bucket}' (Airflow connection '{conn_id}'): cannot be set up ({type(exc).__name__})") from None
    checked_bucket.cache_clear()
    return created


def task_upload(folder, conn_id: str) -> tuple[dict[str, Any], str]:
    """What a Spark task needs to put its file under ``folder`` (an S3 run folder) itself:
    pyarrow ``S3FileSystem`` options and the folder as ``bucket/key`` — plain values, so
    the task unpickles them without importing Lockgate."""
    return access(conn_id).pyarrow_options(), folder.path


def root(location: BucketLocation, conn_id: str):
    """The lake's root as a path object (universal-pathlib over s3fs)."""
    from upath import UPath

    checked_bucket(location.bucket, conn_id)
    return UPath(location.url, **access(conn_id).fsspec_options())
