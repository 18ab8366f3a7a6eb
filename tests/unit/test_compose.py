"""Structural checks of the container stack: docker-compose.yml and docker/Dockerfile.

No container engine is needed: the files are parsed and the facts that would break
the stack (or expose it) are asserted. ``yaml.safe_load`` resolves the ``<<: *anchor``
merge keys, so every service is checked as Compose would see it.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "docker" / "Dockerfile"
PYPROJECT = ROOT / "pyproject.toml"

REQUIRED_SERVICES = {
    "postgres",
    "minio",
    "minio-init",
    "spark-master",
    "spark-worker",
    "spark-connect",
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
}
AIRFLOW_RUNTIME_SERVICES = (
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
)
HEALTHCHECKED_SERVICES = ("postgres", "minio", "spark-master", "airflow-apiserver")
JDBC_PACKAGES = ("libpostgresql-jdbc-java", "libmariadb-java", "libxerial-sqlite-jdbc-java")
DEFAULT_RE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*:?-([^}]*)\}")


def _with_defaults(text: str) -> str:
    """Replace ``${VAR:-default}`` by its default, as Compose does when VAR is unset."""
    return DEFAULT_RE.sub(lambda m: m.group(1), text)


def _command(service: dict) -> str:
    cmd = service.get("command", "")
    return " ".join(cmd) if isinstance(cmd, list) else str(cmd)


def _environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


@pytest.fixture(scope="module")
def compose() -> dict:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict), "docker-compose.yml must be a mapping"
    return data


@pytest.fixture(scope="module")
def services(compose) -> dict[str, dict]:
    return compose["services"]


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return DOCKERFILE.read_text()


@pytest.fixture(scope="module")
def project_deps() -> list[str]:
    return tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]


def test_compose_spec_without_version_key(compose):
    assert "version" not in compose


def test_required_services_exist(services):
    missing = REQUIRED_SERVICES - set(services)
    assert not missing, f"services missing from docker-compose.yml: {sorted(missing)}"


def test_every_published_port_is_bound_to_localhost(services):
    checked = 0
    for name, service in services.items():
        for port in service.get("ports", []):
            checked += 1
            if isinstance(port, dict):  # long syntax
                assert port.get("host_ip") == "127.0.0.1", f"{name}: port {port} not bound to 127.0.0.1"
            else:
                assert str(port).startswith("127.0.0.1:"), f"{name}: port {port!r} not bound to 127.0.0.1"
    assert checked >= 4  # apiserver, minio API + console, spark-connect at least


def test_every_published_port_names_a_host_address(services):
    # A bare container port ("8080") would be published on every interface.
    for name, service in services.items():
        for port in service.get("ports", []):
            if not isinstance(port, dict):
                assert str(port).count(":") >= 2, f"{name}: port {port!r} lacks a host address"


def test_every_image_is_pinned(services):
    images = {name: s["image"] for name, s in services.items() if "image" in s}
    assert images
    for name, image in images.items():
        image = _with_defaults(image)
        assert "@sha256:" in image or ":" in image.rsplit("/", 1)[-1], f"{name}: image {image!r} has no tag"
        tag = image.rsplit("/", 1)[-1].split("@", 1)[0].partition(":")[2]
        assert tag and tag != "latest", f"{name}: image {image!r} is not pinned"


def test_services_without_image_are_built_from_the_dockerfile(services):
    for name, service in services.items():
        if "image" not in service or name.startswith("airflow-"):
            build = service.get("build")
            assert build, f"{name}: neither an image nor a build"
            assert build["dockerfile"] == "docker/Dockerfile", name
            assert (ROOT / build.get("context", ".") / build["dockerfile"]).is_file()


@pytest.mark.parametrize("name", AIRFLOW_RUNTIME_SERVICES)
def test_airflow_services_wait_for_postgres_and_init(services, name):
    depends_on = services[name]["depends_on"]
    assert isinstance(depends_on, dict), f"{name}: depends_on needs conditions"
    assert depends_on["postgres"]["condition"] == "service_healthy"
    assert depends_on["airflow-init"]["condition"] == "service_completed_successfully"


def test_airflow_init_migrates_after_postgres_is_healthy(services):
    init = services["airflow-init"]
    assert "db migrate" in _command(init)
    assert init["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "airflow-init" not in init["depends_on"]


def test_airflow_services_share_the_common_configuration(services):
    envs = [_environment(services[name]) for name in ("airflow-init", *AIRFLOW_RUNTIME_SERVICES)]
    for env in envs:
        assert env == envs[0], "the Airflow services must share one environment"
    env = envs[0]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("@postgres/airflow")
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "false"
    assert env["AIRFLOW__CORE__AUTH_MANAGER"].endswith("simple_auth_manager.SimpleAuthManager")
    assert _with_defaults(env["LOCKGATE_SPARK_REMOTE"]) == "sc://spark-connect:15002"
    assert env["LOCKGATE_LAKE_ROOT"] == "/opt/lockgate/lake"
    assert env["LOCKGATE_WAREHOUSE"].startswith("/opt/lockgate/warehouse/")
    assert "/opt/airflow/plugins" in env["PYTHONPATH"].split(":")
    for name in ("airflow-init", *AIRFLOW_RUNTIME_SERVICES):
        build = services[name]["build"]
        assert build["dockerfile"] == "docker/Dockerfile", name
        targets = {v.split(":")[1] for v in services[name]["volumes"] if v.startswith("./")}
        assert {"/opt/airflow/dags", "/opt/airflow/plugins", "/opt/airflow/spark_jobs"} <= targets, name


def test_lake_connection_points_at_minio(services):
    env = _environment(services["airflow-scheduler"])
    conn = json.loads(_with_defaults(env["AIRFLOW_CONN_LOCKGATE_LAKE"]))
    assert conn["conn_type"] == "aws"
    assert conn["extra"]["endpoint_url"] == "http://minio:9000"


def test_credentials_come_from_variables(services):
    for name, var in (
        ("minio", "MINIO_ROOT_USER"),
        ("minio", "MINIO_ROOT_PASSWORD"),
        ("postgres", "POSTGRES_PASSWORD"),
    ):
        value = _environment(services[name])[var]
        assert value.startswith("${" + var + ":-"), f"{name}: {var} is hard-coded"


@pytest.mark.parametrize("name", HEALTHCHECKED_SERVICES)
def test_healthchecks(services, name):
    test = services[name]["healthcheck"]["test"]
    assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name}: healthcheck {test!r}"


def test_postgres_healthcheck_and_warehouse_init(services):
    postgres = services["postgres"]
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    mounts = {v.split(":")[0]: v.split(":")[1] for v in postgres["volumes"]}
    assert mounts["./docker/postgres-init.sql"].startswith("/docker-entrypoint-initdb.d/")
    init_sql = (ROOT / "docker" / "postgres-init.sql").read_text()
    assert "CREATE DATABASE warehouse" in init_sql
    assert "postgres-data" in mounts


def test_apiserver_healthcheck_uses_the_v2_monitor_endpoint(services):
    assert "/api/v2/monitor/health" in " ".join(services["airflow-apiserver"]["healthcheck"]["test"])
    assert "api-server" in _command(services["airflow-apiserver"])


def test_named_volumes_for_state(compose, services):
    volumes = compose["volumes"]
    for name, target in (("postgres", "/var/lib/postgresql/data"), ("minio", "/data")):
        named = [v.split(":")[0] for v in services[name]["volumes"] if v.split(":")[1] == target]
        assert named and named[0] in volumes, f"{name}: {target} is not on a named volume"


def test_minio_serves_with_console(services):
    command = _command(services["minio"])
    assert command.startswith("server /data") and "--console-address :9001" in command


def test_minio_init_creates_versioned_lake_bucket(services):
    init = services["minio-init"]
    script = _command(init)
    assert re.search(r"mc mb\b.*\S+/lockgate-lake\b", script)
    assert re.search(r"mc version enable \S+/lockgate-lake\b", script)
    assert init["depends_on"]["minio"]["condition"] == "service_healthy"


def test_spark_cluster_topology(services):
    master = _command(services["spark-master"])
    assert "org.apache.spark.deploy.master.Master" in master
    worker = _command(services["spark-worker"])
    assert "org.apache.spark.deploy.worker.Worker" in worker
    assert "spark://spark-master:7077" in worker


def test_spark_connect_binds_to_the_master(services):
    connect = services["spark-connect"]
    argv = connect["command"] if isinstance(connect["command"], list) else shlex.split(connect["command"])
    assert argv[0].endswith("start-connect-server.sh")
    assert argv[argv.index("--master") + 1] == "spark://spark-master:7077"
    assert any(str(p).endswith(":15002") for p in connect.get("ports", []))


def test_spark_images_share_one_version(services):
    images = {_with_defaults(services[n]["image"]) for n in ("spark-master", "spark-worker", "spark-connect")}
    assert len(images) == 1, f"Spark services must run one Spark version: {images}"


def test_spark_servers_match_the_pyspark_client(services, project_deps):
    # A Spark Connect client talks to a server of its own version.
    pins = [re.fullmatch(r"pyspark(?:\[[a-z,]+\])?==(\S+)", dep) for dep in project_deps]
    client = next(m.group(1) for m in pins if m)
    assert _with_defaults(services["spark-connect"]["image"]) == f"apache/spark:{client}"


def test_lake_volume_is_shared_by_airflow_and_spark(services):
    env = _environment(services["airflow-scheduler"])
    lake = env["LOCKGATE_LAKE_ROOT"]
    for name in ("airflow-scheduler", "spark-connect", "spark-worker"):
        mounts = [str(v).split(":")[1] for v in services[name].get("volumes", []) if ":" in str(v)]
        assert lake in mounts, f"{name} does not mount the lake at {lake}"


def test_dockerfile_installs_java_and_the_jdbc_drivers(dockerfile):
    assert "openjdk-17-jre-headless" in dockerfile
    for package in JDBC_PACKAGES:
        assert re.search(rf"^\s*{re.escape(package)}\b", dockerfile, re.M), f"{package} not installed"
    assert "rm -rf /var/lib/apt/lists/*" in dockerfile
    assert re.search(r"^ENV JAVA_HOME=\S+", dockerfile, re.M)
    assert re.search(r"^ENV PYTHONPATH=/opt/airflow/plugins:/opt/airflow\b", dockerfile, re.M)


def test_dockerfile_airflow_version_matches_pyproject(dockerfile, project_deps):
    pins = [re.fullmatch(r"apache-airflow==(\S+)", dep) for dep in project_deps]
    versions = [m.group(1) for m in pins if m]
    assert len(versions) == 1, "pyproject.toml must pin apache-airflow==X exactly once"
    base = re.search(r"^FROM\s+apache/airflow:(\S+?)-python(\S+)", dockerfile, re.M)
    assert base, "the Dockerfile must build FROM apache/airflow:<version>-python<x.y>"
    assert base.group(1) == versions[0]
    assert base.group(2) == "3.11"


def test_dockerfile_mirrors_the_dependency_pins(dockerfile, project_deps):
    for dep in project_deps:
        assert f'"{dep}"' in dockerfile, f"Dockerfile does not install {dep!r} as pinned in pyproject.toml"


def test_dockerfile_runs_as_airflow_and_copies_the_project(dockerfile):
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.M)
    assert users[-1] == "airflow"
    copies = re.findall(r"^COPY\s+(?:--\S+\s+)*(.+)$", dockerfile, re.M)
    sources = {src for line in copies for src in line.split()[:-1]}
    for required in ("pyproject.toml", "uv.lock", "plugins/", "dags/", "spark_jobs/"):
        assert required in sources, f"Dockerfile does not COPY {required}"
    for src in sources:
        if not any(ch in src for ch in "*?["):
            assert (ROOT / src).exists(), f"COPY source {src} does not exist"
