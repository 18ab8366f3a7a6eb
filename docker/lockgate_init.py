#!/usr/bin/env python
"""The one-shot ``lockgate-init`` service of docker-compose.yml (installed as ``lockgate-init``).

1. Checks that every folder Lockgate and Airflow write to exists on the shared volume,
   owned by this uid and writable (the image creates them so; an old volume may not be):
   the lake's staging folder (``LOCKGATE_STAGING_DIR``), or the lake itself when
   ``LOCKGATE_LAKE_ROOT`` is a local folder rather than ``s3://`` (the minio-init
   service makes the bucket), the warehouse's folder, the state, the landing zones'
   root (``LOCKGATE_LANDING_ROOT``) and Airflow's home.
2. ``airflow db migrate``.
3. Builds the demo source ``shop`` once, at the path ``AIRFLOW_CONN_SHOP_DB`` names
   (the same file ``lockgate demo`` would build: :func:`lockgate.cli.demo_db_path`),
   and writes its click-stream files into its landing zone (the same files, byte for
   byte and with the same times, every time: the ledger takes none of them twice).
4. Writes the Simple auth manager's password file from ``AIRFLOW_ADMIN_PASSWORD``
   (mode 0600), so the admin logs in with the password from ``.env``.

Exits non-zero with one line naming what is wrong; the services that depend on it do
not start then.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def fail(message: str) -> None:
    print(f"lockgate-init: {message}", file=sys.stderr)
    raise SystemExit(1)


def writable_dirs(env: dict[str, str]) -> list[Path]:
    """The folders the stack writes to (tests/unit/test_compose.py checks the image creates them)."""
    lake = env["LOCKGATE_LAKE_ROOT"]
    # An S3 lake is assembled in the staging folder, then uploaded; a local one in place.
    if "://" in lake and not env.get("LOCKGATE_STAGING_DIR"):
        fail("LOCKGATE_STAGING_DIR is not set: an S3 lake's extracts need a folder on the shared volume")
    return [
        Path(env["LOCKGATE_STAGING_DIR"]) if "://" in lake else Path(lake),
        Path(env["LOCKGATE_WAREHOUSE"]).parent,
        Path(env["LOCKGATE_STATE_DIR"]),
        *([Path(env["LOCKGATE_LANDING_ROOT"])] if "://" not in env.get("LOCKGATE_LANDING_ROOT", "://") else []),
        Path(env["AIRFLOW_HOME"]),
        Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]).parent,
    ]


def check_dirs(env: dict[str, str]) -> None:
    uid = os.getuid()
    for folder in writable_dirs(env):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            fail(f"cannot create {folder} as uid {uid}: {exc}")
        owner = folder.stat().st_uid
        if owner != uid or not os.access(folder, os.W_OK):
            fail(
                f"{folder} belongs to uid {owner}, not to uid {uid} that every Lockgate container runs as; "
                "the volume predates this image: remove it (docker compose down -v) or chown it"
            )


def build_demo_source(env: dict[str, str]) -> None:
    from lockgate.cli import demo_db_path, demo_landing_path
    from lockgate.demo.clicks import write_clicks
    from lockgate.demo.shop_db import create_shop_db
    from lockgate.settings import load_settings

    settings = load_settings()
    db = demo_db_path(settings)
    conn = env.get("AIRFLOW_CONN_SHOP_DB", "")
    if conn != f"sqlite:///{db}":
        fail(f"AIRFLOW_CONN_SHOP_DB must be sqlite:///{db} (the demo source this service builds)")
    if db.exists():
        print(f"lockgate-init: demo source {db} kept")
    else:
        counts = create_shop_db(db)
        print(f"lockgate-init: demo source {db} built ({sum(counts.values()):,} rows)")
    landing = demo_landing_path(settings)
    clicks = write_clicks(landing, db)  # the days create_shop_db fills by default
    print(f"lockgate-init: demo landing zone {landing} ({len(clicks)} click-stream files, "
          f"{sum(f.written for f in clicks)} written)")


def write_passwords(env: dict[str, str]) -> None:
    path = Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
    password = env.get("AIRFLOW_ADMIN_PASSWORD", "")
    if not password:
        fail("AIRFLOW_ADMIN_PASSWORD is empty; set it in .env (python3 docker/make_env.py)")
    users = [item.split(":")[0] for item in env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"].split(",") if item]
    temp = path.with_name(f".{path.name}.tmp")
    temp.unlink(missing_ok=True)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump({user: password for user in users}, out)
        out.write("\n")
    os.replace(temp, path)
    print(f"lockgate-init: Airflow login {', '.join(users)} (password: AIRFLOW_ADMIN_PASSWORD in .env)")


def main() -> None:
    env = dict(os.environ)
    check_dirs(env)
    if subprocess.run(["airflow", "db", "migrate"], check=False).returncode != 0:
        fail("airflow db migrate failed (see above)")
    build_demo_source(env)
    write_passwords(env)


if __name__ == "__main__":
    main()
