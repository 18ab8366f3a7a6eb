"""The type mapping on both warehouses: every Spark type Lockgate maps (``typemap.duckdb_type``)
loads from Parquet into the DuckDB file and into PostgreSQL (DuckDB-built CSV, ``COPY``)
with its edge values intact, each column declared as the mapping says, and a reload of
the same batch is not drift while a retyped column is."""

from __future__ import annotations

import math
import re
import struct
from datetime import UTC, date, datetime
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from lockgate import warehouse
from lockgate.errors import SchemaDriftError
from lockgate.typemap import duckdb_type

INF, NAN = float("inf"), float("nan")
D38_MAX = Decimal("99999999999999999999.999999999999999999")
D12_MAX = Decimal("9999999999.99")
# (literals: unary minus would round to the context's 28 digits)
D38_MIN, D12_MIN = Decimal("-99999999999999999999.999999999999999999"), Decimal("-9999999999.99")
I64_MIN, I64_MAX = -(2**63), 2**63 - 1
I32_MIN, I32_MAX = -(2**31), 2**31 - 1
F32_MAX = struct.unpack("f", struct.pack("f", 3.4028234663852886e38))[0]
F32_TINY = struct.unpack("f", struct.pack("f", 1.401298464324817e-45))[0]  # the smallest subnormal

#: Strings that break CSV, COPY or array-literal quoting if any step gets it wrong.
NASTY = [
    "a,b,c", 'say "hi"', 'only"', "back\\slash \\\\ two \\", "new\nline\r\nCRLF\r", "\\N", "", "NULL", "null",
    "\\.", "line1\n\\.\nline3", "\t tab ' apostrophe", " padded ", "{not,an,array}", "{}", "Zoë 山田 🎉 \u200b é",
]  # fmt: skip
JSON_DOC = '{"a": [1, 2.5, null, true], "s": "q\\"uote, back\\\\slash\\nline", "u": "Zo\\u00eb", "o": {"k": ""}}'

# (column, Spark type as the manifest gives it, Parquet type, values, DuckDB column type,
#  PostgreSQL format_type). Each column's values are padded with NULL to the batch's rows;
#  the last row is NULL in every column but id.
COLUMNS = [
    ("c_dec38", "decimal(38,18)", pa.decimal128(38, 18),
     [D38_MAX, D38_MIN, Decimal("-0.000000000000000001"), Decimal("0E-18"),
      Decimal("12345678901234567890.123456789012345678"), Decimal("-1.500000000000000000")],
     "DECIMAL(38,18)", "numeric(38,18)"),
    ("c_dec12", "decimal(12,2)", pa.decimal128(12, 2),
     [D12_MAX, D12_MIN, Decimal("-0.01"), Decimal("0.00"), Decimal("0.10")], "DECIMAL(12,2)", "numeric(12,2)"),
    ("c_tstz", "timestamp", pa.timestamp("us", tz="UTC"),
     [datetime(1969, 12, 31, 23, 59, 59, 999999, UTC), datetime(1900, 1, 1, 0, 0, 0, 1, UTC), datetime(1, 1, 1, tzinfo=UTC),
      datetime(9999, 12, 31, 23, 59, 59, 999999, UTC), datetime(2026, 3, 29, 1, 30, 0, 123456, UTC),
      datetime(1970, 1, 1, tzinfo=UTC), datetime(1582, 10, 4, 12, tzinfo=UTC)],
     "TIMESTAMP WITH TIME ZONE", "timestamp with time zone"),
    ("c_ntz", "timestamp_ntz", pa.timestamp("us"),
     [datetime(1969, 7, 20, 20, 17, 40, 123456), datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59, 999999),
      datetime(2000, 2, 29, 12), datetime(1970, 1, 1), datetime(1959, 12, 31, 23, 59, 59, 1)],
     "TIMESTAMP", "timestamp without time zone"),
    ("c_date", "date", pa.date32(),
     [date(1, 1, 1), date(1969, 12, 31), date(9999, 12, 31), date(2000, 2, 29), date(1970, 1, 1)], "DATE", "date"),
    ("c_double", "double", pa.float64(),
     [INF, -INF, NAN, 5e-324, 1.7976931348623157e308, -0.0, 0.30000000000000004, -2.2250738585072014e-308, 1e-300,
      123456789012345.67],
     "DOUBLE", "double precision"),
    ("c_float", "float", pa.float32(), [INF, -INF, NAN, F32_TINY, F32_MAX, -0.0, 0.1, -F32_MAX, 16777217.0], "FLOAT", "real"),
    ("c_tinyint", "tinyint", pa.int8(), [-128, 127, 0, -1], "TINYINT", "smallint"),
    ("c_smallint", "smallint", pa.int16(), [-32768, 32767, 0, -1], "SMALLINT", "smallint"),
    ("c_int", "int", pa.int32(), [I32_MIN, I32_MAX, 0, -1], "INTEGER", "integer"),
    ("c_bigint", "bigint", pa.int64(), [I64_MIN, I64_MAX, 0, -1], "BIGINT", "bigint"),
    ("c_bool", "boolean", pa.bool_(), [True, False, None, True], "BOOLEAN", "boolean"),
    ("c_binary", "binary", pa.binary(),
     [b"\x00", b"\x00\x00\xff\xfe", b"", b"\x80\x81 not utf-8 \xc3\x28", b'a,b"c\\d\ne', b"\\N", None, bytes(range(256)),
      b"\\x00", b"{}"],
     "BLOB", "bytea"),
    ("c_string", "string", pa.string(), [*NASTY, None], "VARCHAR", "text"),
    ("c_arr_str", "array<string>", pa.list_(pa.string()),
     [["a,b", 'q"uote', "back\\slash", "new\nline", "\\N", "", None, "NULL", "{brace}", " padded ", "Zoë 🎉"],
      [], None, [None], [""], ["\\"], ['"'], ["\\.", "line1\n\\.\nline3"], ["NULL", None, "null"], NASTY,
      ["{a,b}", "a}b", "{", ","], ["\\\\", '\\"', '"\\']],
     "VARCHAR[]", "text[]"),
    ("c_arr_bigint", "array<bigint>", pa.list_(pa.int64()), [[I64_MIN, I64_MAX, None, 0], [], None, [None]],
     "BIGINT[]", "bigint[]"),
    ("c_arr_int", "array<int>", pa.list_(pa.int32()), [[I32_MIN, I32_MAX, -1], [None, 7], []], "INTEGER[]", "integer[]"),
    ("c_arr_dec", "array<decimal(38,18)>", pa.list_(pa.decimal128(38, 18)),
     [[D38_MAX, D38_MIN, Decimal("-0.000000000000000001"), None], [], [Decimal("0E-18")]],
     "DECIMAL(38,18)[]", "numeric(38,18)[]"),
    ("c_arr_tstz", "array<timestamp>", pa.list_(pa.timestamp("us", tz="UTC")),
     [[datetime(1969, 12, 31, 23, 59, 59, 999999, UTC), datetime(1, 1, 1, tzinfo=UTC), None,
       datetime(2026, 1, 1, 0, 0, 0, 1, UTC)], []],
     "TIMESTAMP WITH TIME ZONE[]", "timestamp with time zone[]"),
    ("c_arr_ntz", "array<timestamp_ntz>", pa.list_(pa.timestamp("us")),
     [[datetime(1969, 7, 20, 20, 17, 40, 123456), None], []], "TIMESTAMP[]", "timestamp without time zone[]"),
    ("c_arr_binary", "array<binary>", pa.list_(pa.binary()),
     [[b"\x00", b"\xff\xfe\x00", b"", None, b'"\\,{}', b"\\N"], [], [None]], "BLOB[]", "bytea[]"),
    ("c_arr_double", "array<double>", pa.list_(pa.float64()),
     [[INF, -INF, NAN, 5e-324, -0.0, None, 1.7976931348623157e308, 0.30000000000000004]], "DOUBLE[]",
     "double precision[]"),
    ("c_arr_date", "array<date>", pa.list_(pa.date32()), [[date(1, 1, 1), None, date(9999, 12, 31)], []],
     "DATE[]", "date[]"),
    ("c_arr_bool", "array<boolean>", pa.list_(pa.bool_()), [[True, False, None], []], "BOOLEAN[]", "boolean[]"),
    # A PostgreSQL source's integer[][] (Spark reads the declared dimensions). PostgreSQL
    # arrays are rectangular, and format_type does not show dimensions.
    ("c_arr_grid", "array<array<int>>", pa.list_(pa.list_(pa.int32())),
     [[[1, 2], [3, 4]], [[None, I32_MIN]], [], [[I32_MAX]]], "INTEGER[][]", "integer[]"),
    # JSON and UUID source columns arrive as strings.
    ("c_json", "string", pa.string(), [JSON_DOC, "[]", "null", '""'], "VARCHAR", "text"),
    ("c_uuid", "string", pa.string(), ["123e4567-e89b-12d3-a456-426614174000", "00000000-0000-0000-0000-000000000000"],
     "VARCHAR", "text"),
]  # fmt: skip

ROWS = max(len(c[3]) for c in COLUMNS) + 1
SCHEMA = [{"name": "id", "type": "bigint"}] + [{"name": c[0], "type": c[1]} for c in COLUMNS]
NAMES = [c["name"] for c in SCHEMA]


def f32(value: float | None) -> float | None:
    """A float as the float32 it is stored as (``real`` comes back as its shortest text)."""
    return None if value is None else struct.unpack("f", struct.pack("f", value))[0]


def column_values(values: list) -> list:
    return values + [None] * (ROWS - len(values))


def expected_rows() -> list[tuple]:
    cols = [list(range(1, ROWS + 1))]
    for name, _, _, values, _, _ in COLUMNS:
        padded = column_values(values)
        cols.append([f32(v) for v in padded] if name == "c_float" else padded)
    return list(zip(*cols, strict=True))


def write_batch(path) -> str:
    arrays = {"id": pa.array(range(1, ROWS + 1), pa.int64())}
    for name, _, arrow, values, _, _ in COLUMNS:
        arrays[name] = pa.array(column_values(values), arrow)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(arrays), path)
    return str(path)


def load(wh, files, schema=SCHEMA, run="r1"):
    wh.execute("BEGIN TRANSACTION")
    result = warehouse.load_files(
        wh, source="src", table="types", mode="full", files=files, schema=schema, primary_key=["id"],
        cursor=None, slice_lo=None, slice_hi=None, full_slice=True, run_id=run,
    )  # fmt: skip
    wh.execute("COMMIT")
    return result


def fetch(wh) -> list[tuple]:
    # psycopg reads a real from its shortest text ('1e-45') as that float64: widen it in
    # the warehouse instead (exact on both), so the float32 itself is compared.
    columns = ", ".join("CAST(c_float AS DOUBLE PRECISION)" if n == "c_float" else warehouse.q(n) for n in NAMES)
    return [tuple(plain(v) for v in row) for row in wh.execute(f"SELECT {columns} FROM src.types ORDER BY id").fetchall()]


def plain(value):
    """The documented differences of the drivers: psycopg may give ``bytea`` as a memoryview."""
    if isinstance(value, memoryview):
        return bytes(value)
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def same(a, b) -> bool:
    """Exactly equal: NaN equals NaN, -0.0 is not 0.0, a Decimal keeps its scale, a
    timestamp its zone (or lack of one), a bool is not an int."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, Decimal):
        return a == b and a.as_tuple().exponent == b.as_tuple().exponent
    if isinstance(a, datetime):
        return a == b and (a.tzinfo is None) == (b.tzinfo is None)
    return a == b


def differences(got: list[tuple], want: list[tuple]) -> list[str]:
    assert len(got) == len(want)
    out = []
    for g, w in zip(got, want, strict=True):
        for name, gv, wv in zip(NAMES, g, w, strict=True):
            if not same(gv, wv):
                out.append(f"id {w[0]} {name}: got {gv!r}, want {wv!r}")
    return out


def test_the_columns_cover_every_mapped_spark_type():
    simple = {"bigint", "int", "smallint", "tinyint", "string", "boolean", "double", "float", "date", "timestamp",
              "timestamp_ntz", "binary"}  # fmt: skip
    declared = {c[1] for c in COLUMNS}
    assert simple <= declared
    assert any(t.startswith("decimal(") for t in declared) and any(t.startswith("array<") for t in declared)
    # The table's DuckDB column types are the mapping's.
    assert {c[0]: duckdb_type(c[1]) for c in COLUMNS} == {c[0]: c[4] for c in COLUMNS}


def test_every_value_round_trips_exactly(conn, tmp_path):
    result = load(conn, [write_batch(tmp_path / "types.parquet")])
    assert (result["rows_staged"], result["rows_loaded"], result["rows_after"]) == (ROWS, ROWS, ROWS)
    assert differences(fetch(conn), expected_rows()) == []


def test_columns_are_declared_as_the_mapping_says(conn, tmp_path):
    load(conn, [write_batch(tmp_path / "types.parquet")])
    duck = {"id": "BIGINT", **{c[0]: c[4] for c in COLUMNS}}
    if conn.kind == "postgres":
        # PostgreSQL has no one-byte integer: TINYINT is a smallint, and reported as one.
        assert conn.columns("src", "types") == {**duck, "c_tinyint": "SMALLINT"}
        native = dict(
            conn.execute(
                "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
                "WHERE a.attrelid = 'src.types'::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"
            ).fetchall()
        )
        assert native == {"id": "bigint", **{c[0]: c[5] for c in COLUMNS}}
    else:
        assert conn.columns("src", "types") == duck


def test_a_second_load_of_the_same_batch_is_not_drift(conn, tmp_path):
    files = [write_batch(tmp_path / "types.parquet")]
    assert load(conn, files)["schema_changes"] == ["created types"]
    before = warehouse.table_fingerprint(conn, "src", "types")
    warehouse.check_schema(conn, "src", "types", SCHEMA)  # the DAG's check before a load
    again = load(conn, files, run="r2")
    assert again["schema_changes"] == [] and again["rows_after"] == ROWS
    assert warehouse.table_fingerprint(conn, "src", "types") == before
    assert differences(fetch(conn), expected_rows()) == []
    assert conn.execute("SELECT count(*) FROM lockgate.schema_history").fetchone()[0] == 0


RETYPES = [
    ("c_int", "bigint", "INTEGER", "BIGINT"),
    ("c_tinyint", "int", {"duckdb": "TINYINT", "postgres": "SMALLINT"}, "INTEGER"),
    ("c_dec12", "decimal(12,3)", "DECIMAL(12,2)", "DECIMAL(12,3)"),
    ("c_dec38", "double", "DECIMAL(38,18)", "DOUBLE"),
    ("c_tstz", "timestamp_ntz", "TIMESTAMP WITH TIME ZONE", "TIMESTAMP"),
    ("c_binary", "string", "BLOB", "VARCHAR"),
    ("c_string", "array<string>", "VARCHAR", "VARCHAR[]"),
    ("c_arr_str", "array<bigint>", "VARCHAR[]", "BIGINT[]"),
    ("c_arr_dec", "array<decimal(38,10)>", "DECIMAL(38,18)[]", "DECIMAL(38,10)[]"),
    ("c_arr_int", "array<array<int>>", "INTEGER[]", "INTEGER[][]"),
    ("c_arr_grid", "array<int>", "INTEGER[][]", "INTEGER[]"),
]


@pytest.mark.parametrize(("column", "new", "old_type", "new_type"), RETYPES, ids=[f"{r[0]}-{r[1]}" for r in RETYPES])
def test_a_retyped_column_is_drift(conn, tmp_path, column, new, old_type, new_type):
    load(conn, [write_batch(tmp_path / "types.parquet")])
    before = warehouse.table_fingerprint(conn, "src", "types")
    schema = [{**c, "type": new} if c["name"] == column else c for c in SCHEMA]
    old = old_type[conn.kind] if isinstance(old_type, dict) else old_type
    message = f"column '{column}' changed type from {old} to {new_type}"
    with pytest.raises(SchemaDriftError, match=re.escape(message)):
        warehouse.check_schema(conn, "src", "types", schema)
    conn.execute("BEGIN TRANSACTION")
    with pytest.raises(SchemaDriftError, match=re.escape(message)):
        warehouse.load_files(
            conn, source="src", table="types", mode="full", files=[], schema=schema, primary_key=["id"],
            cursor=None, slice_lo=None, slice_hi=None, full_slice=True, run_id="r2",
        )  # fmt: skip
    conn.execute("ROLLBACK")
    assert warehouse.table_fingerprint(conn, "src", "types") == before
    assert conn.columns("src", "types")[column] == old
