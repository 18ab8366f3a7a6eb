"""No command prints a secret: the mask, the logging filter, source errors, and
``lockgate airflow-env`` (a private env file; only its path and names are printed)."""

from __future__ import annotations

import logging
import os
import shutil
import stat
import subprocess
from urllib.parse import quote

import airflow.sdk  # noqa: F401 - Airflow configures logging on import: before caplog, not during a test
import pytest
from lockgate import cli, redact
from lockgate.errors import ConfigError
from lockgate.sources import JdbcSource, resolve_source

from tests.leaks import find, spellings

PASSWORD = "p%40ss'w@rd/x%2F"
OTHER = 'ä "q\\uote" +1 & <b>'  # non-ASCII, both quotes, backslash, space, HTML specials


# --- the mask -------------------------------------------------------------------------
@pytest.mark.parametrize("secret", [PASSWORD, OTHER])
def test_every_spelling_is_masked(secret):
    for name, form in spellings(secret).items():
        text = f"connect failed: postgresql://etl:{form}@db:5432/sales (try again)"
        masked = redact.mask(text, secret)
        assert not find(masked, secret), f"{name} ({form!r}) survived: {masked!r}"
        assert "***" in masked and masked.startswith("connect failed: postgresql://etl:")
        assert masked.endswith("@db:5432/sales (try again)")


def test_mixed_and_unusual_encodings_are_masked():
    secret = PASSWORD
    mixed = "p%2540ss%27w@rd%2fx%252F"  # some characters encoded, some not, any hex case
    entities = "p%40ss&#39;w&#x40;rd&#47;x%2F"
    py4j = "p%40ss\\'w@rd/x%2F"
    for text in (mixed, entities, py4j, "p%40ss'\"'\"'w@rd/x%2F", "p%40ss'\\''w@rd/x%2F"):
        assert redact.mask(f"<{text}>", secret) == "<***>", text


def test_the_mask_leaves_other_text_alone():
    text = "p%40ss w@rd password authentication failed for user \"etl\""
    assert redact.mask(text, PASSWORD) == text
    assert redact.mask(text, None) == text and redact.mask(text, "") == text


def test_the_scanner_finds_what_it_looks_for():
    """The leak tests would fail: each spelling they grep for is found."""
    for name, form in spellings(PASSWORD).items():
        assert find(f"x {form} y", PASSWORD), name
    assert not find("nothing to see", PASSWORD)


def test_registered_secrets_are_masked_in_lockgate_and_py4j_logs(caplog):
    redact.register(PASSWORD)
    caplog.set_level(logging.DEBUG)
    logging.getLogger("lockgate").info("uri %s", f"postgresql://u:{quote(PASSWORD, safe='')}@h/db")
    logging.getLogger("py4j.clientserver").debug("Command to send: c\no12\noption\nspassword\ns%s\ne\n", PASSWORD)
    try:
        raise RuntimeError(f"driver said {PASSWORD!r}")
    except RuntimeError:
        logging.getLogger("lockgate").exception("failed")
    text = caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    assert "***" in text
    assert not find(text, PASSWORD), find(text, PASSWORD)


def test_registered_secrets_reach_airflows_masker():
    from airflow.sdk._shared.secrets_masker import redact as airflow_redact

    secret = "an0ther%2Fp@ss'word"
    redact.register(secret)
    text = airflow_redact(f"postgres://u:{quote(secret, safe='')}@h/db and {secret}")
    assert not find(text, secret), text


# --- source errors ----------------------------------------------------------------------
def _source(password: str) -> JdbcSource:
    return JdbcSource("postgres", "jdbc:postgresql://db:5432/sales", user="etl", password=password,
                      database="sales", host="db", port=5432)  # fmt: skip


@pytest.mark.parametrize("name", list(spellings(PASSWORD)))
def test_source_errors_never_carry_the_password(name):
    from spark_jobs.extract import _explain_source_error

    form = spellings(PASSWORD)[name]
    error_type = type("Py4JJavaError", (Exception,), {"__module__": "py4j.protocol"})
    exc = error_type(f"FATAL: password authentication failed for postgresql://etl:{form}@db:5432/sales")
    exc._stackTrace = f"org.postgresql.util.PSQLException\nCaused by: java.sql.SQLException: bad login {form} for etl"
    message = str(_explain_source_error(exc, _source(PASSWORD), "orders"))
    assert "credentials were refused" in message and "***" in message
    assert not find(message, PASSWORD), find(message, PASSWORD)


def test_a_malformed_connection_uri_is_not_echoed(monkeypatch):
    # An unencoded '/' ends the authority: the parser then complains about a "port"
    # that is a piece of the password.
    monkeypatch.setenv("AIRFLOW_CONN_LEAKY", "postgres://etl:pa/ssw0rd@db:5432/sales")
    with pytest.raises(ConfigError) as info:
        resolve_source("leaky")
    message = str(info.value)
    assert "AIRFLOW_CONN_LEAKY is malformed" in message
    assert "'pa'" not in message and "ssw0rd" not in message


# --- lockgate airflow-env ---------------------------------------------------------------
@pytest.fixture
def state(tmp_path, monkeypatch):
    monkeypatch.setenv("LOCKGATE_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def test_airflow_env_prints_names_never_values(state, monkeypatch, capsys):
    uri = f"postgres://etl:{quote(PASSWORD, safe='')}@db.example:5432/shop"
    monkeypatch.setenv("AIRFLOW_CONN_SHOP_DB", uri)
    assert cli.main(["airflow-env"]) == 0
    out, err = capsys.readouterr()
    path = state / "airflow.env"
    assert out.strip() == str(path)
    assert "AIRFLOW_CONN_SHOP_DB" in err and "AIRFLOW__API__HOST" in err and "PATH" in err
    assert not find(out + err, PASSWORD), find(out + err, PASSWORD)
    assert uri not in out + err and "db.example" not in out + err  # no value at all
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert find(path.read_text(), PASSWORD)  # ... it is in the file, which only its owner reads


def test_airflow_env_file_is_private_whatever_the_umask_and_the_old_file(state, tmp_path, capsys):
    target = tmp_path / "elsewhere" / "airflow.env"
    target.parent.mkdir()
    target.write_text("old\n")
    target.chmod(0o644)
    old_umask = os.umask(0)
    try:
        assert cli.main(["airflow-env", "-o", str(target)]) == 0
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert "AIRFLOW_HOME=" in target.read_text()
    assert [p.name for p in target.parent.iterdir()] == ["airflow.env"]  # no temporary file left


def test_airflow_env_carries_what_airflow_standalone_needs(state, monkeypatch, capsys):
    monkeypatch.delenv("AIRFLOW_HOME", raising=False)
    monkeypatch.delenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", raising=False)
    monkeypatch.delenv("AIRFLOW__API__HOST", raising=False)
    cli.main(["airflow-env"])
    path = capsys.readouterr().out.strip()
    script = f'set -a; . "{path}"; set +a; printf "%s\\n" "$AIRFLOW__API__HOST" "$AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" "$PATH"'
    host, conn, path_var = subprocess.run(
        ["bash", "-c", script], env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert host == "127.0.0.1"
    assert conn == f"sqlite:///{state / 'airflow'}/airflow.db?timeout=60"
    first = path_var.split(":")[0]
    assert os.access(os.path.join(first, "airflow"), os.X_OK) and path_var.endswith(":/usr/bin:/bin")


VALUES = {
    "QUOTES": "it's \"quoted\" '' \"\"",
    "DOLLAR": "$HOME ${HOME} $(touch pwned) `touch pwned2` \\$ \\",
    "SPACES": "  leading and trailing  ",
    "NEWLINES": "line 1\nline 2\n\nend\n",
    "MIXED": "p%40ss'w@rd/x%2F;|&<>*?[]{}~#!ä€",
    "EMPTY": "",
}


@pytest.mark.parametrize("shell", ["bash", "sh"])
def test_the_env_file_round_trips_any_value(tmp_path, shell):
    if shutil.which(shell) is None:
        pytest.skip(f"no {shell}")
    path = tmp_path / "x.env"
    env = {f"AIRFLOW_CONN_{k}": v for k, v in VALUES.items()}
    cli.write_env_file(path, env)
    for name, value in env.items():
        proc = subprocess.run(
            [shell, "-c", f'set -a; . "{path}"; set +a; printf %s "${name}"'],
            cwd=tmp_path, env={"PATH": "/usr/bin:/bin"}, capture_output=True, check=True,
        )  # fmt: skip
        assert proc.stdout.decode() == value, name
        assert proc.stderr == b""
    assert not any(p.name.startswith("pwned") for p in tmp_path.iterdir())  # nothing was executed
    # exported, so a child process (airflow) sees them
    child = subprocess.run(
        [shell, "-c", f'set -a; . "{path}"; set +a; env'], env={"PATH": "/usr/bin:/bin"}, capture_output=True,
        check=True,
    ).stdout.decode()
    assert "AIRFLOW_CONN_MIXED=p%40ss'w@rd/x%2F;" in child


def test_the_env_file_refuses_a_name_a_shell_would_run(tmp_path):
    with pytest.raises(ValueError):
        cli.write_env_file(tmp_path / "x.env", {"X;touch pwned": "1"})
