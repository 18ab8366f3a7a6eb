"""HTML of the Lockgate page: an overview of every source and one page per source.

Plain server-rendered HTML with inline CSS and SVG charts: it loads nothing from the
internet and renders inside the Airflow UI's frame. Every value is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from html import escape
from urllib.parse import urlencode

from lockgate.ui.charts import rows_chart
from lockgate.ui.status import RunPoint, SourceStatus, TableStatus

CSS = """
body{font:14px/1.4 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:16px;color:#1d2733;background:#fff}
h1{font-size:20px;margin:0 0 4px} h2{font-size:17px;margin:24px 0 6px} h3{font-size:15px;margin:14px 0 4px}
table{border-collapse:collapse;margin:4px 0 10px} td,th{padding:3px 10px 3px 0;text-align:left;vertical-align:top}
th{font-weight:600;color:#4a5868;border-bottom:1px solid #d5dbe2} td.num{text-align:right;font-variant-numeric:tabular-nums}
.muted{color:#6b7785} .ok{color:#2f7d4f} .bad{color:#c0392b} .warn{color:#b9770e}
.card{border:1px solid #d5dbe2;border-radius:8px;padding:10px 14px;margin:12px 0;max-width:980px}
figure{margin:6px 0} figcaption{font-size:12px;color:#4a5868}
.key{margin-left:10px} .key i{display:inline-block;width:10px;height:10px;margin-right:4px;vertical-align:middle}
svg.chart{max-width:680px;height:auto;font-size:10px;fill:#4a5868} pre{white-space:pre-wrap;font-size:12px;margin:4px 0}
details summary{cursor:pointer;color:#35577d} a{color:#245c9c}
"""


def page(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>{body}</body></html>"
    )


def human_age(seconds: float | None) -> str:
    if seconds is None:
        return "never loaded"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours = minutes // 60
    if hours < 48:
        return f"{hours} h {minutes % 60} min"
    return f"{hours // 24} d {hours % 24} h"


def _time(value: datetime | int | None) -> str:
    """A time, or an id cursor's position (``id 1234``)."""
    if isinstance(value, int):
        return f"id {value}"
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "—"


def _status_class(status: str | None) -> str:
    if status in ("published", "loaded", "passed", "success"):
        return "ok"
    if status in ("failed", "error"):
        return "bad"
    return "warn"


def docs_link(prefix: str, dag_id: str, table: str, run: RunPoint) -> str:
    query = urlencode({"table": table, "run_id": run.run_id, "version": run.version})
    return f"{prefix}/dags/{escape(dag_id)}/docs?{escape(query)}"


def overview(prefix: str, sources: Sequence[SourceStatus]) -> str:
    """Every source the user may see, one row per table: freshness and the last run."""
    if not sources:
        return page("Lockgate", "<h1>Lockgate</h1><p class='muted'>No sources are configured.</p>")
    cards = [_overview_card(prefix, s) for s in sources]
    return page("Lockgate", "<h1>Lockgate ingestion</h1>" + LEGEND + "".join(cards))


LEGEND = (
    "<p class='muted legend'>Freshness: how far the newest cursor value in the warehouse is behind now "
    "(tables without a cursor: the age of the newest loaded snapshot). Rows per run: extracted from the "
    "source, loaded into the warehouse, set aside by a quarantine rule.</p>"
)


def _overview_card(prefix: str, source: SourceStatus) -> str:
    rows = "".join(
        f"<tr><td>{escape(t.name)}</td><td>{escape(t.mode)}</td><td>{human_age(t.lag_seconds)}</td>"
        f"<td class='num'>{t.rows_in_last_run:,}</td>"
        f"<td class='{_status_class(t.last_run.status if t.last_run else None)}'>"
        f"{escape(t.last_run.status) if t.last_run else '—'}</td></tr>"
        for t in source.tables
    )
    note = f"<p class='warn'>{escape(source.warehouse_note)}</p>" if source.warehouse_note else ""
    return (
        f"<div class='card source' data-source='{escape(source.source)}'>"
        f"<h2><a href='{prefix}/dags/{escape(source.dag_id)}'>{escape(source.source)}</a> "
        f"<span class='muted'>{escape(source.dag_id)} · {escape(source.schedule)}</span></h2>{note}"
        "<table><tr><th>table</th><th>mode</th><th>freshness (lag)</th><th>rows loaded, last run</th>"
        f"<th>last run</th></tr>{rows}</table>"
        + rows_chart(_all_runs(source), title="rows per table run")
        + "</div>"
    )


def _all_runs(source: SourceStatus) -> list[RunPoint]:
    runs = [r for t in source.tables for r in t.runs]
    return sorted(runs, key=lambda r: r.started_at or datetime.min)[-60:]


def source_page(prefix: str, source: SourceStatus) -> str:
    note = f"<p class='warn'>{escape(source.warehouse_note)}</p>" if source.warehouse_note else ""
    head = (
        f"<p><a href='{prefix}/'>← all sources</a> · <a href='/dags/{escape(source.dag_id)}' target='_top'>"
        f"Airflow DAG {escape(source.dag_id)}</a></p>"
        f"<h1>{escape(source.source)}</h1><p class='muted'>{escape(source.description)} · schedule "
        f"{escape(source.schedule)}</p>{note}"
    )
    tables = "".join(_table_card(prefix, source.dag_id, t) for t in source.tables)
    return page(f"Lockgate · {source.source}", head + LEGEND + tables)


def _table_card(prefix: str, dag_id: str, table: TableStatus) -> str:
    return (
        f"<div class='card table' data-table='{escape(table.name)}'><h2>{escape(table.name)} "
        f"<span class='muted'>{escape(table.mode)}"
        + (f" on {escape(table.cursor)}" if table.cursor else "")
        + "</span></h2>"
        + _checkpoint(table)
        + rows_chart(table.runs, title=f"rows per run of {table.name}")
        + _last_error(table)
        + _runs_table(prefix, dag_id, table)
        + _lake_table(table)
        + _schema_table(table)
        + "</div>"
    )


def _checkpoint(table: TableStatus) -> str:
    state = table.state
    reread = (
        f"{_time(state.reread_from)} … until a run reaches {_time(state.reread_until)}"
        if state.reread_from else "none"
    )
    return (
        "<table class='checkpoint'>"
        f"<tr><th>freshness (lag)</th><td class='freshness'>{human_age(table.lag_seconds)}</td></tr>"
        f"<tr><th>newest cursor loaded</th><td>{escape(str(state.cursor_max or '—'))}</td></tr>"
        f"<tr><th>watermark</th><td>{_time(state.watermark)}</td></tr>"
        f"<tr><th>pending re-read window</th><td>{reread}</td></tr></table>"
    )


def _last_error(table: TableStatus) -> str:
    if not table.last_error:
        return ""
    return f"<h3 class='bad'>Last error</h3><pre class='error'>{escape(table.last_error[:4000])}</pre>"


def _grid(css_class: str, headers: Sequence[str], rows: str) -> str:
    """A table with a header row; ``rows`` is already-escaped ``<tr>`` HTML."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    return f"<table class='{css_class}'><tr>{head}</tr>{rows}</table>"


RUN_COLUMNS = (
    "run", "interval", "status", "extracted", "loaded", "quarantined", "validation", "across runs", "seconds", "",
)  # fmt: skip


def _runs_table(prefix: str, dag_id: str, table: TableStatus) -> str:
    if not table.runs:
        return ""
    rows = "".join(_run_row(prefix, dag_id, table.name, r) for r in reversed(table.runs[-15:]))
    failed = "".join(f"<li>{escape(rule)}</li>" for rule in table.failed_rules)
    failed_html = f"<p>Failed rules in the last run:</p><ul class='failed-rules'>{failed}</ul>" if failed else ""
    last = table.runs[-1]
    notes = "".join(f"<li>{escape(note)}</li>" for note in last.cross_run_notes)
    notes_html = f"<p>Checks across runs in the last run:</p><ul class='cross-run'>{notes}</ul>" if notes else ""
    return "<h3>Runs</h3>" + failed_html + notes_html + _grid("runs", RUN_COLUMNS, rows)


def _run_row(prefix: str, dag_id: str, table: str, run: RunPoint) -> str:
    validation = run.validation_status or "—"
    if run.rules_failed:
        validation += f" ({run.rules_failed} failed)"
    docs = f"<a href='{docs_link(prefix, dag_id, table, run)}'>Data Docs</a>" if run.validation_status else ""
    replay = f" <span class='muted'>replay of {escape(run.replayed_from)}</span>" if run.replayed_from else ""
    return (
        f"<tr><td>{escape(run.label)}{replay}</td><td>{_time(run.interval_start)}</td>"
        f"<td class='{_status_class(run.status)}'>{escape(run.status)}</td>"
        f"<td class='num'>{run.rows_extracted:,}</td><td class='num'>{run.rows_loaded:,}</td>"
        f"<td class='num'>{run.rows_quarantined:,}</td>"
        f"<td class='{_status_class(run.validation_status)}'>{escape(validation)}</td>"
        f"{_cross_run_cell(run)}<td class='num'>{run.seconds:.1f}</td><td>{docs}</td></tr>"
    )


def _cross_run_cell(run: RunPoint) -> str:
    """The outcome of the checks across runs; the anomalies in the cell's tooltip."""
    status = run.cross_run_status or "—"
    title = escape("\n".join(run.cross_run_notes)) if run.cross_run_notes else ""
    css = _status_class(status) if run.cross_run_status not in (None, "skipped") else "muted"
    return f"<td class='{css} cross-run' title='{title}'>{escape(status)}</td>"


def _lake_table(table: TableStatus) -> str:
    if not table.lake_versions:
        return ""
    rows = "".join(
        f"<tr><td>{escape(i.interval)}</td><td class='num'>{len(i.versions)}</td><td>"
        + "<br>".join(
            f"{escape(v.folder)} · {v.rows:,} rows · sealed {escape(v.sealed_at[:19])}"
            + (f" · replay of {escape(str(v.replayed_from))}" if v.replayed_from else "")
            for v in i.versions
        )
        + "</td></tr>"
        for i in table.lake_versions
    )
    return (
        "<details class='lake'><summary>Raw lake versions per interval</summary>"
        + _grid("lake-versions", ("interval", "versions", "folders"), rows) + "</details>"
    )


def _schema_table(table: TableStatus) -> str:
    if not table.schema_history:
        return "<p class='muted schema'>Schema: no change since the table was created.</p>"
    rows = "".join(
        f"<tr><td>{_time(c.changed_at)}</td><td>{escape(c.column)}</td><td>{escape(c.change)}</td>"
        f"<td>{escape(c.old_type or '—')} → {escape(c.new_type or '—')}</td><td>{escape(c.run_id or '')}</td></tr>"
        for c in table.schema_history
    )
    return (
        "<details class='schema' open><summary>Schema history</summary>"
        + _grid("schema-history", ("when", "column", "change", "type", "run"), rows) + "</details>"
    )
