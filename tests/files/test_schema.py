"""Declared or inferred schemas, and drift (issue 16, item 1): an added column is
followed and recorded in lockgate.schema_history; a breaking change fails, naming it."""

from __future__ import annotations

import pytest
from lockgate.config import parse_source
from lockgate.errors import ConfigError, SchemaDriftError

from tests.files.conftest import day, rows, run_interval


def _source(landing, **files):
    spec = {"pattern": "events/*.csv", "format": "csv", "quiet_period": 0, **files}
    return parse_source({"source": "app", "start_date": "2026-03-01", "landing": landing,
                         "tables": [{"name": "events", "mode": "append", "files": spec}]}, "app.yml")  # fmt: skip


def _drop(root, name: str, text: str, n: int) -> None:
    import os

    path = root / "events" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    stamp = day(n).timestamp() + 3600
    os.utime(path, (stamp, stamp))


def test_inferred_types_follow_an_added_column_and_refuse_a_changed_type(lake_env, tmp_path):
    root = tmp_path / "landing"
    config = _source(str(root))
    _drop(root, "a.csv", 'id,name,score\n1,"Ann, B.",1.5\n2,Bob,2\n', 0)
    run_interval(config, day(0), day(1))
    columns = rows(lake_env, "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'app' "
                             "AND table_name = 'events' ORDER BY ordinal_position")  # fmt: skip
    assert columns == [("id", "BIGINT"), ("name", "VARCHAR"), ("score", "DOUBLE"), ("_lockgate_file", "VARCHAR")]
    assert rows(lake_env, "SELECT name FROM app.events WHERE id = 1") == [("Ann, B.",)]
    _drop(root, "b.csv", "id,name,score,country\n3,Cy,3.5,FR\n", 1)
    run_interval(config, day(1), day(2))
    history = rows(lake_env, "SELECT column_name, change, new_type FROM lockgate.schema_history WHERE table_name = 'events'")
    assert ("country", "added", "VARCHAR") in history
    assert rows(lake_env, "SELECT id, country FROM app.events ORDER BY id") == [(1, None), (2, None), (3, "FR")]
    _drop(root, "c.csv", "id,name,score,country\nfour,Di,4,DE\n", 2)
    with pytest.raises(SchemaDriftError, match=r"app\.events: .*id"):
        run_interval(config, day(2), day(3))
    assert rows(lake_env, "SELECT count(*) FROM app.events") == [(3,)]


def test_a_declared_schema_reads_files_without_a_header(lake_env, tmp_path):
    root = tmp_path / "landing"
    config = _source(str(root), header=False, schema={"id": "int", "day": "date", "ok": "boolean"}, null_marker="NA")
    _drop(root, "a.csv", "1,2026-03-01,true\n2,NA,false\n", 0)
    run_interval(config, day(0), day(1))
    assert rows(lake_env, "SELECT id, day, ok FROM app.events ORDER BY id")[1] == (2, None, False)


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"pattern": "/abs/*.csv"}, "glob under the landing zone"),
        ({"schema": {"id": "uuid"}}, "unknown file column type 'uuid'"),
        ({"delimiter": ";;"}, "delimiter"),
        ({"schema": {"_lockgate_file": "string"}}, "Lockgate's own"),
        ({"header": False}, "without a header line need a declared 'schema'"),
    ],
)
def test_bad_file_settings_are_named(files, message):
    with pytest.raises(ConfigError, match=message):
        _source("/landing", **files)


def test_a_files_table_needs_a_landing_zone_and_no_full_mode():
    with pytest.raises(ConfigError, match="give 'landing'"):
        parse_source({"source": "app", "start_date": "2026-03-01",
                      "tables": [{"name": "events", "files": {"pattern": "*.csv"}, "mode": "append"}]}, "app.yml")  # fmt: skip
    with pytest.raises(ConfigError, match="loads each file once"):
        parse_source({"source": "app", "start_date": "2026-03-01", "landing": "/x",
                      "tables": [{"name": "events", "files": {"pattern": "*.csv"}, "mode": "full"}]}, "app.yml")  # fmt: skip
