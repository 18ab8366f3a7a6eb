"""An ``id`` cursor (an ever-growing integer key) end to end on every engine: each
run reads from the watermark id to the highest id at read time; a reprocessed
interval reads again exactly the id range it read before (picking up changes made
there since); an empty read moves nothing; and an id taken by a source transaction
that was still open during a read is read once it commits — the watermark waits for
it — without a row read twice into the warehouse."""

from __future__ import annotations

import pytest
from lockgate import warehouse
from lockgate.config import parse_source

from tests.cursors.helpers import batch_ids, create
from tests.reprocessing.harness import SOURCE

pytestmark = pytest.mark.integration

SEQ = "CREATE TABLE {name} (id BIGINT PRIMARY KEY, note VARCHAR(40) NOT NULL)"


def _add(src, ids, note: str = "new") -> None:
    src.many("INSERT INTO seq (id, note) VALUES (%s, %s)", [(i, f"{note}{i}") for i in ids])


def _state(src, table: str = "seq"):
    with warehouse.connect(src.settings, read_only=True) as conn:
        runs = conn.execute(
            "SELECT slice_lo_id, slice_hi_id, slice_lo, slice_hi FROM lockgate.runs WHERE table_name = ? "
            "ORDER BY started_at",
            [table],
        ).fetchall()
        return warehouse.get_state(conn, SOURCE, table), runs


def test_id_cursor_reads_new_ids_and_reprocesses_the_same_range(src):
    create(src, "seq", SEQ, primary_key=["id"], mode="append", cursor="id", cursor_kind="id")
    _add(src, range(1, 51))
    assert batch_ids(src.run_interval("seq", 0)) == set(range(1, 51))
    _add(src, range(51, 81))
    assert batch_ids(src.run_interval("seq", 1)) == set(range(51, 81))

    # The source changes inside interval 0's range and grows: reprocessing interval 0
    # reads ids [1, 51) again — the change, not the new ids.
    src.sql("UPDATE seq SET note = 'changed' WHERE id = 10")
    _add(src, range(81, 91))
    assert batch_ids(src.run_interval("seq", 0)) == set(range(1, 51))
    assert batch_ids(src.run_interval("seq", 2)) == set(range(81, 91))
    assert batch_ids(src.run_interval("seq", 2)) == set(range(81, 91))  # reprocessed: the same range
    assert batch_ids(src.run_interval("seq", 3)) == set()  # nothing new
    _add(src, [95, 91])
    assert batch_ids(src.run_interval("seq", 4)) == {91, 95}
    src.assert_converged("seq")

    state, runs = _state(src)
    assert state.watermark == 96 and state.cursor_max == "95"
    assert runs[0][:2] == (None, 51) and runs[1][:2] == (51, 81) and runs[2][:2] == (None, 51)
    assert runs[5][:2] == (91, 91)  # the empty read: [91, 91) read nothing, deleted nothing
    assert all(r[2] is None and r[3] is None for r in runs)  # no time bounds for an id cursor


def test_id_cursor_with_merge_and_a_full_refresh(src):
    create(src, "seq", SEQ, primary_key=["id"], mode="merge", cursor="id", cursor_kind="id")
    _add(src, range(1, 21))
    src.run_interval("seq", 0)
    src.sql("UPDATE seq SET note = 'late' WHERE id = 3")
    _add(src, range(21, 26))
    assert batch_ids(src.run_interval("seq", 1)) == set(range(21, 26))
    assert batch_ids(src.run_interval("seq", 1, full_refresh=True)) == set(range(1, 26))
    src.assert_converged("seq")
    assert _state(src)[0].watermark == 26


def test_an_id_cursor_is_a_whole_number_with_no_time_settings():
    table = {"name": "seq", "primary_key": ["id"], "mode": "append", "cursor": "id", "cursor_kind": "id"}
    base = {"source": "s", "connection": "c", "schedule": "@daily", "start_date": "2026-01-01"}
    for extra in ({"lookback": "1h"}, {"freshness": "1d"}):
        with pytest.raises(Exception, match="'id' slices by id, not by time"):
            parse_source({**base, "tables": [{**table, **extra}]}, "s.yml")


def test_an_id_cursor_on_a_text_column_is_refused_naming_the_value(pg_source):
    src = pg_source
    create(src, "seq", "CREATE TABLE {name} (id BIGINT PRIMARY KEY, code TEXT NOT NULL)",
           primary_key=["id"], mode="append", cursor="code", cursor_kind="id")  # fmt: skip
    src.sql("INSERT INTO seq VALUES (1, 'A-1')")
    with pytest.raises(Exception, match=r"whole-number cursor column \(got the value 'A-1'\)"):
        src.run_interval("seq", 0)


@pytest.fixture(params=["postgres", "mariadb"])
def server(request):
    return request.getfixturevalue({"postgres": "pg_source", "mariadb": "maria_source"}[request.param])


def _second_connection(src):
    if src.engine == "postgres":
        import psycopg

        return psycopg.connect(host="127.0.0.1", user="postgres", dbname=src.database)
    import pymysql

    return pymysql.connect(host="127.0.0.1", user="root", password="", database=src.database, autocommit=False)


def test_an_id_taken_by_an_open_transaction_is_read_once_it_commits(server):
    """Ids come from the table's sequence (identity / AUTO_INCREMENT). A writer takes id
    3 and stays open while id 4 commits and a run reads up to 4: the run must not move
    the watermark past 3, or id 3 would be lost when it commits."""
    src = server
    serial = "BIGINT GENERATED BY DEFAULT AS IDENTITY" if src.engine == "postgres" else "BIGINT AUTO_INCREMENT"
    create(src, "seq", f"CREATE TABLE {{name}} (id {serial} PRIMARY KEY, note VARCHAR(40) NOT NULL)",
           primary_key=["id"], mode="append", cursor="id", cursor_kind="id")  # fmt: skip
    src.sql("INSERT INTO seq (note) VALUES ('a'), ('b')")
    assert batch_ids(src.run_interval("seq", 0)) == {1, 2}

    writer = _second_connection(src)
    try:
        with writer.cursor() as cur:
            cur.execute("INSERT INTO seq (note) VALUES ('slow')")  # id 3, not committed
            src.sql("INSERT INTO seq (note) VALUES ('fast')")  # id 4, committed
            assert batch_ids(src.run_interval("seq", 1)) == {4}
            assert _state(src)[0].watermark == 3  # the first read (up to 3) was made before the writer began
            assert batch_ids(src.run_interval("seq", 2)) == {4}  # still open: read again from 3
        writer.commit()
    finally:
        writer.close()
    assert batch_ids(src.run_interval("seq", 3)) == {3, 4}
    assert _state(src)[0].watermark == 5
    src.assert_converged("seq")
    with warehouse.connect(src.settings, read_only=True) as conn:
        assert conn.execute(f"SELECT count(*), count(DISTINCT id) FROM {SOURCE}.seq").fetchone() == (4, 4)
