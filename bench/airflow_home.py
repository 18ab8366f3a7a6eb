"""A private Airflow deployment in ``bench/scratch``, configured the way the README tells
users to: the environment of ``lockgate airflow-env`` (SQLite metadata with a 60 s busy
timeout, the UI bound to 127.0.0.1, .venv/bin on PATH), migrated and switched to WAL
by ``lockgate airflow-db``'s own function, with its own dags and sources folders."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from benchlib import ROOT, VENV_BIN


@dataclass(frozen=True)
class AirflowHome:
    root: Path
    env: dict[str, str]

    @property
    def home(self) -> Path:
        return self.root / "airflow"

    @property
    def sources(self) -> Path:
        return self.root / "sources"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def warehouse(self) -> str:
        return self.env["LOCKGATE_WAREHOUSE"]

    @classmethod
    def create(cls, root: Path, expectations: Path, connections: dict[str, str]) -> AirflowHome:
        """A fresh deployment under ``root`` whose DAGs are the source files written with
        :meth:`write_source`; ``connections`` maps connection ids to URIs."""
        shutil.rmtree(root, ignore_errors=True)
        for folder in ("airflow", "dags", "sources", "logs"):
            (root / folder).mkdir(parents=True)
        expectations.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "dags" / "lockgate_dags.py", root / "dags" / "lockgate_dags.py")
        return cls(root, deployment_env(root, expectations, connections))

    def write_source(self, name: str, text: str) -> None:
        (self.sources / f"{name}.yml").write_text(text, encoding="utf-8")

    def migrate(self) -> None:
        """``airflow db migrate`` and WAL, as ``lockgate airflow-db`` does."""
        from lockgate.cli import prepare_airflow_db

        if not prepare_airflow_db(self.env, self.logs / "airflow-db-migrate.log"):
            raise RuntimeError(f"airflow db migrate failed; see {self.logs / 'airflow-db-migrate.log'}")

    def command(self, *args: str) -> list[str]:
        return [str(VENV_BIN / "airflow"), *args]

    def run(
        self, *args: str, log_name: str, timeout: float = 3600, extra_env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess:
        """An ``airflow`` command; its output goes to ``logs/<log_name>``."""
        env = {**self.env, **(extra_env or {})}
        with open(self.logs / log_name, "w", encoding="utf-8") as out:
            return subprocess.run(self.command(*args), env=env, stdout=out, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, timeout=timeout, check=False)  # fmt: skip


def deployment_env(root: Path, expectations: Path, connections: dict[str, str]) -> dict[str, str]:
    """``lockgate airflow-env``'s variables for a deployment in ``root``, on top of this
    environment less any AIRFLOW*/LOCKGATE_* variable of the calling shell."""
    from lockgate.cli import airflow_env
    from lockgate.settings import load_settings

    home = root / "airflow"
    settings = dataclasses.replace(
        load_settings(), sources_dir=root / "sources", expectations_dir=expectations,
        lake_location=str(root / "lake"), warehouse=str(root / "warehouse" / "warehouse.duckdb"),
    )  # fmt: skip
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "LOCKGATE_"))}
    env = {**base, **airflow_env(settings)}
    env.pop("AIRFLOW_CONN_SHOP_DB", None)
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db?timeout=60",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__CORE__DAGS_FOLDER": str(root / "dags"),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "LOCKGATE_STATE_DIR": str(root / "state"),
        # No Spark Connect server unless the measure starts one (not a developer's on 15002).
        "LOCKGATE_SPARK_CONNECT_PORT": "off",
        # `airflow standalone` starts its parts by name; `lockgate airflow-env` puts .venv/bin first too.
        "PATH": f"{VENV_BIN}{os.pathsep}{base.get('PATH', '')}",
    })  # fmt: skip
    env.update({f"AIRFLOW_CONN_{conn_id.upper()}": uri for conn_id, uri in connections.items()})
    return env
