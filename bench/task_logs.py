"""Where a task's time goes, from the timestamps of its log lines.

A log is read as timed lines (Airflow's console format ``2026-…Z [info ] event`` or
its JSON task-log lines). A task's time is cut into segments at *markers*: the first
line matching a marker's pattern after the previous marker ends the segment named
after that marker. A marker missing from the log merges its segment into the next.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

_CONSOLE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z?)\s+(.*)$")


@dataclass(frozen=True)
class LogLine:
    at: datetime
    text: str


@dataclass(frozen=True)
class Marker:
    """``label`` names the time from the previous marker up to the first line matching ``pattern``."""

    label: str
    pattern: str


@dataclass
class Segment:
    label: str
    seconds: float


@dataclass
class TaskBreakdown:
    task_id: str
    seconds: float
    segments: list[Segment] = field(default_factory=list)


#: Lockgate's own log lines in each stage's task, in order (the same in ``airflow dags test``
#: output and in a scheduler's task logs); each names the time up to it.
STAGE_MARKERS = {
    "extract": [
        Marker("imports, OpenLineage START event", r"OpenLineage `START`"),
        Marker("plan the slice (reads lockgate.state: DuckDB warehouse file)", r": (extracting|resuming the stored plan of) slice"),
        Marker("Spark session start", r"Spark Connect session at .* \(ready in|Spark session started in this process"),
        Marker("plan: counts, column types, key histogram", r": planned in "),
        Marker("read source + write Parquet (chunks)", r"chunk \d+/\d+ done"),
        Marker("checksum the files", r"checksummed in"),
        Marker("seal the lake folder, audit row (DuckDB warehouse write)", r": extracted \d+ rows"),
    ],
    "validate": [
        Marker("import Great Expectations", r"Multiple declarations of metric"),
        Marker("read the manifest and suite, check the schema", r": validated by GX on (pandas|duckdb|spark) "),
        Marker("GX validation (scans) + report + Data Docs", r": quality report"),
    ],
    "load": [Marker("DuckDB load (one transaction)", r": loaded \d+ rows \(|already loaded")],
    "publish": [Marker("watermark, audit row, lake view, asset event", r": published; watermark")],
}  # fmt: skip
RETURNED = Marker("return value", r"Done\. Returned value")


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def read_console_log(path: Path) -> list[LogLine]:
    """Timed lines of a console log (lines without a timestamp, such as the JVM's, are kept
    with the time of the line before them)."""
    lines: list[LogLine] = []
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        match = _CONSOLE.match(raw)
        if match:
            lines.append(LogLine(parse_time(match.group(1)), match.group(2)))
        elif lines and raw.strip():
            lines.append(LogLine(lines[-1].at, raw))
    return lines


def read_json_log(path: Path) -> list[LogLine]:
    """Timed lines of an Airflow 3 task log file (one JSON object a line)."""
    lines = []
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            entry = json.loads(raw)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and entry.get("timestamp"):
            text = f"{entry.get('event', '')} [{entry.get('logger', '')}]"
            lines.append(LogLine(parse_time(str(entry["timestamp"])), text))
    return lines


def between(lines: list[LogLine], start: str, end: str) -> list[LogLine]:
    """The lines from the first matching ``start`` to the first matching ``end`` after it."""
    first = next((i for i, line in enumerate(lines) if re.search(start, line.text)), None)
    if first is None:
        return []
    last = next((i for i in range(first, len(lines)) if re.search(end, lines[i].text)), len(lines) - 1)
    return lines[first:last + 1]


def segments(lines: list[LogLine], markers: list[Marker], rest: str | None = None) -> list[Segment]:
    """Cut the time from the first line at each marker found in order; ``rest`` names the
    time from the last marker found to the last line."""
    if not lines:
        return []
    previous, index, out = lines[0].at, 0, []
    for marker in markers:
        found = next((i for i in range(index, len(lines)) if re.search(marker.pattern, lines[i].text)), None)
        if found is None:
            continue
        out.append(Segment(marker.label, round((lines[found].at - previous).total_seconds(), 3)))
        previous, index = lines[found].at, found + 1
    if rest is not None:
        out.append(Segment(rest, round((lines[-1].at - previous).total_seconds(), 3)))
    return out


def first_match(lines: list[LogLine], pattern: str) -> datetime | None:
    return next((line.at for line in lines if re.search(pattern, line.text)), None)
