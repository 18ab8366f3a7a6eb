"""The tables Lockgate keeps in the warehouse: the audit trail, watermarks, key
snapshots, the landing ledger and schema history. Plain SQL both warehouses accept."""

DDL = """
CREATE SCHEMA IF NOT EXISTS lockgate;
CREATE TABLE IF NOT EXISTS lockgate.runs (
    source VARCHAR NOT NULL,
    table_name VARCHAR NOT NULL,
    run_id VARCHAR NOT NULL,
    mode VARCHAR,
    interval_start TIMESTAMPTZ,
    interval_end TIMESTAMPTZ,
    slice_lo TIMESTAMPTZ,
    slice_hi TIMESTAMPTZ,
    raw_path VARCHAR,
    source_rows BIGINT,
    rows_extracted BIGINT,
    rows_validated BIGINT,
    rows_loaded BIGINT,
    rows_quarantined BIGINT,
    rules_evaluated INTEGER,
    rules_failed INTEGER,
    validation_status VARCHAR,
    quality_report VARCHAR,
    status VARCHAR NOT NULL,
    error VARCHAR,
    extract_seconds DOUBLE PRECISION,
    validate_seconds DOUBLE PRECISION,
    load_seconds DOUBLE PRECISION,
    started_at TIMESTAMPTZ,
    updated_at TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS lockgate.state (
    source VARCHAR NOT NULL,
    table_name VARCHAR NOT NULL,
    watermark TIMESTAMPTZ,
    cursor_max VARCHAR,
    last_run_id VARCHAR,
    updated_at TIMESTAMPTZ
);
-- Rows behind the watermark that a still-open source transaction may yet commit:
-- the next run that reaches past reread_until re-reads from reread_from.
ALTER TABLE lockgate.state ADD COLUMN IF NOT EXISTS reread_from TIMESTAMPTZ;
ALTER TABLE lockgate.state ADD COLUMN IF NOT EXISTS reread_until TIMESTAMPTZ;
ALTER TABLE lockgate.runs ADD COLUMN IF NOT EXISTS safe_hi TIMESTAMPTZ;
ALTER TABLE lockgate.runs ADD COLUMN IF NOT EXISTS rows_deleted BIGINT;
ALTER TABLE lockgate.runs ADD COLUMN IF NOT EXISTS rules_passed INTEGER;
-- One audit row per run *version*: 0 as scheduled, n after the run's n-th clear.
ALTER TABLE lockgate.runs ADD COLUMN IF NOT EXISTS version INTEGER DEFAULT 0;
-- When the batch's rows were read from the source (a replay keeps the original time).
ALTER TABLE lockgate.runs ADD COLUMN IF NOT EXISTS read_at TIMESTAMPTZ;
ALTER TABLE lockgate.runs ADD COLUMN IF NOT EXISTS replayed_from VARCHAR;
-- Source rows skipped because their cursor is NULL (null_cursor: exclude).
ALTER TABLE lockgate.runs ADD COLUMN IF NOT EXISTS rows_null_cursor BIGINT;
-- Slices, safe points and watermarks of an id cursor are ids, not times (*_id columns).
ALTER TABLE lockgate.runs ADD COLUMN IF NOT EXISTS slice_lo_id BIGINT;
ALTER TABLE lockgate.runs ADD COLUMN IF NOT EXISTS slice_hi_id BIGINT;
ALTER TABLE lockgate.runs ADD COLUMN IF NOT EXISTS safe_hi_id BIGINT;
-- Checks across runs (lockgate.cross_run): the batch's measures and the outcome.
ALTER TABLE lockgate.runs ADD COLUMN IF NOT EXISTS freshness_lag_seconds DOUBLE PRECISION;
ALTER TABLE lockgate.runs ADD COLUMN IF NOT EXISTS null_counts VARCHAR;
ALTER TABLE lockgate.runs ADD COLUMN IF NOT EXISTS cross_run_status VARCHAR;
ALTER TABLE lockgate.runs ADD COLUMN IF NOT EXISTS cross_run_checks VARCHAR;
ALTER TABLE lockgate.state ADD COLUMN IF NOT EXISTS watermark_id BIGINT;
ALTER TABLE lockgate.state ADD COLUMN IF NOT EXISTS reread_from_id BIGINT;
ALTER TABLE lockgate.state ADD COLUMN IF NOT EXISTS reread_until_id BIGINT;
-- Delete propagation: the newest key snapshot applied to each table. Flags and deletes
-- only move forward in snapshot time: an older key snapshot (a run that finished late,
-- a replay) is not applied. Its own table: save_state rewrites lockgate.state rows.
CREATE TABLE IF NOT EXISTS lockgate.key_snapshots (
    source VARCHAR NOT NULL,
    table_name VARCHAR NOT NULL,
    keys_read_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS lockgate.landed_files (
    source VARCHAR NOT NULL,
    table_name VARCHAR NOT NULL,
    file_key VARCHAR NOT NULL,
    size BIGINT NOT NULL,
    modified TIMESTAMPTZ NOT NULL,
    etag VARCHAR,
    sha256 VARCHAR,
    interval_start TIMESTAMPTZ,
    interval_end TIMESTAMPTZ,
    run_id VARCHAR NOT NULL,
    version INTEGER NOT NULL,
    rows_in BIGINT,
    rows_parsed BIGINT,
    rows_rejected BIGINT,
    status VARCHAR NOT NULL,
    taken_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS lockgate.schema_history (
    source VARCHAR NOT NULL,
    table_name VARCHAR NOT NULL,
    column_name VARCHAR NOT NULL,
    change VARCHAR NOT NULL,
    old_type VARCHAR,
    new_type VARCHAR,
    run_id VARCHAR,
    changed_at TIMESTAMPTZ
);
"""
