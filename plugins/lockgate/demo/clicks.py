"""The demo's files landing zone: the shop's web application writes its click stream as
gzip TSV files, ``clicks/<YYYY-MM-DD>/part-<n>.tsv.gz``, one file per six hours of a day.

Each file has a header and the columns of the ``clicks`` table in ``dags/sources/shop.yml``
(``event_id``, ``session_id``, ``customer_id``, ``event``, ``page``, ``product_id``,
``at``); customer and product ids are ones the demo database has (a third of the
sessions are anonymous: no ``customer_id``), ``at`` is ISO 8601 UTC with ``Z``. A file's
modification time is set to just before the end of its six hours, so a daily run
takes exactly that day's files (a run takes the ready files that landed before its
interval's end).

The files are a function of the day, the database's customers and products and the
seed only — not of how many days are written at once — and the gzip stream carries no
time stamp, so writing them again gives the same bytes and the same modification time:
the landing ledger (``lockgate.landed_files``) sees the same uploads and takes none of
them again. A file is written under a hidden temporary name with its final time and
renamed into place, so the landing zone never holds half a file.
"""

from __future__ import annotations

import gzip
import os
import random
import sqlite3
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

COLUMNS = ("event_id", "session_id", "customer_id", "event", "page", "product_id", "at")
FILES_PER_DAY = 4
#: Share of a day's events in each six-hour file (nights are quiet).
FILE_WEIGHTS = (0.08, 0.27, 0.37, 0.28)
#: Events per day per customer of the database (8,000 customers at scale 1: 12,000 a day).
EVENTS_PER_CUSTOMER = 1.5
MIN_EVENTS_PER_DAY = 40
ANONYMOUS = 0.35
EVENTS = ("page_view", "search", "add_to_cart", "checkout")
SEARCHES = ["Gießkanne", "café crème", "Hängematte", "sac à dos", "Kaffebryggare", "wok", "Zelt", "puzzle",
            "poésie", "sartén"]  # fmt: skip
#: The application closes a file this long before its six hours end (and wrote its
#: last event a minute before that).
CLOSE_BEFORE = timedelta(minutes=1)
LAST_EVENT_BEFORE = timedelta(minutes=2)


@dataclass(frozen=True)
class ClickFile:
    """One file of the landing zone as the generator left it."""

    key: str  # the path under the landing zone, with '/'
    rows: int
    modified: datetime
    written: bool  # False: it was there already, byte for byte


def file_key(day: date, part: int) -> str:
    return f"clicks/{day.isoformat()}/part-{part}.tsv.gz"


def shop_ids(db: str | os.PathLike[str]) -> tuple[list[int], list[tuple[int, str]]]:
    """The customer ids and the (product id, category) pairs of the demo database."""
    with sqlite3.connect(f"file:{Path(db)}?mode=ro", uri=True) as conn:
        customers = [r[0] for r in conn.execute("SELECT customer_id FROM customers ORDER BY customer_id")]
        products = [(r[0], r[1]) for r in conn.execute("SELECT product_id, category FROM products ORDER BY product_id")]
    if not customers or not products:
        raise ValueError(f"{db}: the demo database has no customers or no products")
    return customers, products


def day_files(day: date, customers: list[int], products: list[tuple[int, str]], seed: int = 42) -> list[tuple[str, bytes, datetime, int]]:  # fmt: skip
    """The files of one day: ``(key, gzip bytes, modification time, rows)`` each."""
    rng = random.Random(f"lockgate-demo-clicks:{seed}:{day.isoformat()}")
    per_day = max(MIN_EVENTS_PER_DAY, round(EVENTS_PER_CUSTOMER * len(customers)))
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
    span = timedelta(hours=24 // FILES_PER_DAY)
    first_id = int(day.strftime("%Y%m%d")) * 10_000_000  # 64-bit ids: 202601010000001, ...
    out = []
    next_id = first_id
    for part, weight in enumerate(FILE_WEIGHTS):
        start = midnight + part * span
        last = start + span - LAST_EVENT_BEFORE
        events = _events(rng, start, last, max(1, round(per_day * weight)), customers, products)
        lines = ["\t".join(COLUMNS)]
        for number, (at, session, customer, event, page, product) in enumerate(events, start=next_id + 1):
            stamp = at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            lines.append("\t".join((str(number), session, _text(customer), event, page, _text(product), stamp)))
        next_id += len(events)
        data = gzip.compress(("\n".join(lines) + "\n").encode("utf-8"), compresslevel=6, mtime=0)
        out.append((file_key(day, part), data, start + span - CLOSE_BEFORE, len(events)))
    return out


def _text(value: int | None) -> str:
    return "" if value is None else str(value)  # an empty field is NULL


def _events(rng: random.Random, start: datetime, last: datetime, count: int, customers: list[int],
            products: list[tuple[int, str]]) -> list[tuple]:  # fmt: skip
    """``count`` events of sessions that start in ``[start, last)``, in time order."""
    window_us = int((last - start).total_seconds() * 1_000_000)
    events: list[tuple] = []
    while len(events) < count:
        session = f"{rng.getrandbits(64):016x}"
        customer = None if rng.random() < ANONYMOUS else rng.choice(customers)
        at = start + timedelta(microseconds=rng.randrange(window_us))
        product_id, category = rng.choice(products)
        steps = rng.choices([1, 2, 3, 4, 6, 9], weights=[22, 25, 20, 15, 12, 6])[0]
        for step in range(min(steps, count - len(events))):
            if step == 0:
                kind, page, product = "page_view", rng.choice(["/", f"/c/{category}", f"/p/{product_id}"]), None
                if page.startswith("/p/"):
                    product = product_id
            else:
                kind = rng.choices(EVENTS, weights=[60, 15, 18, 7])[0]
                if kind == "page_view":
                    product_id, category = rng.choice(products)
                    page, product = f"/p/{product_id}", product_id
                elif kind == "search":
                    page, product = f"/search?q={rng.choice(SEARCHES)}", None
                elif kind == "add_to_cart":
                    page, product = "/cart", product_id
                else:
                    page, product = "/checkout", None
            if at >= last:
                break
            events.append((at, session, customer, kind, page, product))
            at += timedelta(seconds=rng.randint(3, 240), microseconds=rng.randrange(1_000_000))
    return sorted(events, key=lambda e: (e[0], e[1]))


def write_clicks(landing: str | os.PathLike[str], db: str | os.PathLike[str], *, start: date = date(2026, 1, 1),
                 days: int = 3, seed: int = 42) -> list[ClickFile]:  # fmt: skip
    """Write the click-stream files of the ``days`` days from ``start`` into the landing
    zone folder ``landing``, with ids from the demo database ``db``; files that are
    there byte for byte are kept (their modification time is put back if it moved)."""
    if days < 1:
        raise ValueError(f"days must be at least 1 (got {days})")
    root = Path(landing)
    customers, products = shop_ids(db)
    written = []
    for offset in range(days):
        for key, data, modified, rows in day_files(start + timedelta(days=offset), customers, products, seed):
            written.append(ClickFile(key, rows, modified, _put(root / key, data, modified)))
    return written


def _put(path: Path, data: bytes, modified: datetime) -> bool:
    """Put ``data`` at ``path`` with the modification time ``modified`` (whole seconds);
    returns whether the bytes were written (False: they were there already)."""
    stamp = modified.timestamp()
    path.parent.mkdir(parents=True, exist_ok=True)
    same = path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data
    if not same:
        temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # hidden: never listed as a landing file
        try:
            temp.write_bytes(data)
            os.utime(temp, (stamp, stamp))
            os.replace(temp, path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
    elif path.stat().st_mtime != stamp:
        os.utime(path, (stamp, stamp))
    return not same
