"""Build the demo OLTP database ``shop``: customers, products, orders, order items, payments.

The data is deterministic for a given ``(scale, seed, start, days)``, so two builds are
byte-for-byte the same rows and two ``make demo`` runs can be compared. Every cursor
(``created_at``/``updated_at``) lies inside ``[start, start + days)``, so ingesting the
``days`` daily intervals that follow ``start`` sees every row exactly once per table.

Realism that matters for ingestion: 64-bit integers (loyalty points above 2**31),
NUMERIC(12,2) money, booleans stored as 0/1, dates and microsecond timestamps stored as
text the way SQLite applications do, NULLs in optional columns and non-ASCII names.
The file is written to a temporary path and moved into place, so a crash never leaves
a half-built source behind.
"""

from __future__ import annotations

import os
import random
import sqlite3
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

TABLES = ("customers", "products", "orders", "order_items", "payments")
BASE_COUNTS = {"customers": 8_000, "products": 1_200, "orders": 30_000}

SCHEMA = """
CREATE TABLE customers (
    customer_id      INTEGER PRIMARY KEY,
    email            TEXT NOT NULL UNIQUE,
    full_name        TEXT NOT NULL,
    country          TEXT NOT NULL,
    city             TEXT,
    loyalty_points   BIGINT NOT NULL,
    marketing_opt_in BOOLEAN NOT NULL,
    birth_date       DATE,
    created_at       TIMESTAMP NOT NULL,
    updated_at       TIMESTAMP NOT NULL
);
CREATE TABLE products (
    product_id   INTEGER PRIMARY KEY,
    sku          TEXT NOT NULL UNIQUE,
    name         TEXT NOT NULL,
    category     TEXT NOT NULL,
    unit_price   NUMERIC(10,2) NOT NULL,
    active       BOOLEAN NOT NULL,
    description  TEXT,
    created_at   TIMESTAMP NOT NULL,
    updated_at   TIMESTAMP NOT NULL
);
CREATE TABLE orders (
    order_id         INTEGER PRIMARY KEY,
    customer_id      INTEGER NOT NULL REFERENCES customers(customer_id),
    status           TEXT NOT NULL,
    currency         TEXT NOT NULL,
    total_amount     NUMERIC(12,2) NOT NULL,
    shipping_country TEXT NOT NULL,
    note             TEXT,
    created_at       TIMESTAMP NOT NULL,
    updated_at       TIMESTAMP NOT NULL
);
CREATE TABLE order_items (
    order_item_id INTEGER PRIMARY KEY,
    order_id      INTEGER NOT NULL REFERENCES orders(order_id),
    product_id    INTEGER NOT NULL REFERENCES products(product_id),
    quantity      INTEGER NOT NULL,
    unit_price    NUMERIC(10,2) NOT NULL,
    discount      NUMERIC(10,2),
    created_at    TIMESTAMP NOT NULL
);
CREATE TABLE payments (
    payment_id  INTEGER PRIMARY KEY,
    order_id    INTEGER NOT NULL REFERENCES orders(order_id),
    method      TEXT NOT NULL,
    amount      NUMERIC(12,2) NOT NULL,
    status      TEXT NOT NULL,
    paid_at     TIMESTAMP,
    created_at  TIMESTAMP NOT NULL,
    updated_at  TIMESTAMP NOT NULL
);
CREATE INDEX customers_updated_at ON customers(updated_at);
CREATE INDEX products_updated_at ON products(updated_at);
CREATE INDEX orders_updated_at ON orders(updated_at);
CREATE INDEX orders_customer_id ON orders(customer_id);
CREATE INDEX order_items_created_at ON order_items(created_at);
CREATE INDEX order_items_order_id ON order_items(order_id);
CREATE INDEX payments_updated_at ON payments(updated_at);
CREATE INDEX payments_order_id ON payments(order_id);
"""

FIRST_NAMES = [
    "Anna", "Björn", "Chloé", "Dmitri", "Elif", "François", "Gülşen", "Hiroshi", "Inés", "Jürgen",
    "Katarzyna", "Łukasz", "Maëlle", "Nuño", "Óscar", "Paweł", "Quentin", "Renée", "Søren", "Tomáš",
    "Ulla", "Vérène", "Wojciech", "Xiaoming", "Yusuf", "Zoë", "Amélie", "Ahmed", "Sofía", "Mikko",
    "Emma", "Liam", "Olivia", "Noah", "Mia", "Lucas", "Zsófia", "Ágnes", "Dương", "Priyanka",
]
LAST_NAMES = [
    "Müller", "García", "Nguyễn", "O'Brien", "Kowalski", "Dubois", "Rossi", "Janssen", "Silva",
    "Öztürk", "Novák", "Andersson", "Smith", "Jones", "Fernández", "Østergaard", "Łęcki", "Dvořák",
    "Tanaka", "Kim", "Ivanova", "Papadopoulos", "Virtanen", "Horváth", "Brontë", "Saint-Éloi",
    "van der Berg", "Jørgensen", "Žukauskas", "Çelik",
]
PLACES = {
    "DE": ["Berlin", "München", "Köln", "Düsseldorf", "Hamburg"],
    "FR": ["Paris", "Orléans", "Besançon", "Nîmes", "Lyon"],
    "ES": ["Madrid", "A Coruña", "Cádiz", "Málaga", "Sevilla"],
    "SE": ["Göteborg", "Malmö", "Stockholm", "Umeå", "Västerås"],
    "PL": ["Kraków", "Łódź", "Gdańsk", "Poznań", "Wrocław"],
    "TR": ["İstanbul", "İzmir", "Eskişehir", "Ankara", "Muğla"],
    "JP": ["東京", "大阪", "京都", "札幌", "福岡"],
    "US": ["New York", "Chicago", "San José", "Austin", "Seattle"],
    "GB": ["London", "Manchester", "Leeds", "Glasgow", "Cardiff"],
    "CZ": ["Praha", "Brno", "Plzeň", "Olomouc", "České Budějovice"],
}
CATEGORIES = {
    "books": ["Roman", "Kochbuch", "Atlas", "Poésie", "Manga", "Guía"],
    "coffee": ["Espresso", "Café crème", "Filterkaffee", "Kaffebryggare", "Mokka"],
    "garden": ["Gießkanne", "Sécateur", "Hängematte", "Blumentopf", "Rasenmäher"],
    "kitchen": ["Pfanne", "Couteau", "Sartén", "Kniv", "Wok"],
    "outdoor": ["Zelt", "Sac à dos", "Schlafsack", "Stirnlampe", "Kompass"],
    "toys": ["Bausteine", "Peluche", "Puzzle", "Kreisel", "Drachen"],
}
ADJECTIVES = ["Classic", "Öko", "Grand", "Mini", "Pro", "Léger", "Robust", "Smart", "Deluxe", "Naturel"]
ORDER_STATUSES = (["placed"] * 3 + ["paid"] * 4 + ["shipped"] * 5 + ["delivered"] * 10
                  + ["cancelled"] * 2 + ["refunded"])
CURRENCIES = {"EUR": 0.55, "USD": 0.2, "GBP": 0.12, "SEK": 0.08, "JPY": 0.05}
METHODS = ["card"] * 6 + ["paypal"] * 3 + ["bank_transfer", "klarna", "gift_card"]
NOTES = ["Bitte klingeln 🔔", "Laisser devant la porte", "Regalo — sin factura", "Leave with neighbour",
         "置き配希望", "Ring twice", "Ne pas plier ✉️"]
CENT = Decimal("0.01")


def _ts(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


class _Clock:
    """Random instants inside the demo window, never at or past its end."""

    def __init__(self, rng: random.Random, start: date, days: int) -> None:
        self.rng = rng
        self.start = datetime(start.year, start.month, start.day)
        self.end = self.start + timedelta(days=days)
        self.span_us = days * 86_400 * 1_000_000

    def any(self) -> datetime:
        return self.start + timedelta(microseconds=self.rng.randrange(self.span_us))

    def after(self, moment: datetime, max_minutes: int) -> datetime:
        later = moment + timedelta(microseconds=self.rng.randrange(max_minutes * 60_000_000 + 1))
        return min(later, self.end - timedelta(microseconds=1))


def _money(rng: random.Random, lo: float, hi: float) -> Decimal:
    return Decimal(str(round(rng.uniform(lo, hi), 2))).quantize(CENT)


def _customers(rng: random.Random, clock: _Clock, n: int) -> Iterator[tuple]:
    countries = list(PLACES)
    for customer_id in range(1, n + 1):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        country = rng.choice(countries)
        city = None if rng.random() < 0.05 else rng.choice(PLACES[country])
        # A few power users have more points than a 32-bit integer can hold.
        points = rng.randrange(3_000_000_000, 9_000_000_000) if rng.random() < 0.01 else rng.randrange(0, 50_000)
        birth = None if rng.random() < 0.10 else date(1940, 1, 1) + timedelta(days=rng.randrange(0, 30_000))
        created = clock.any()
        updated = clock.after(created, 24 * 60) if rng.random() < 0.3 else created
        local = "".join(ch for ch in f"{first}.{last}".lower() if ch.isascii() and (ch.isalnum() or ch == "."))
        yield (
            customer_id,
            f"{local or 'user'}.{customer_id}@example.com",
            f"{first} {last}",
            country,
            city,
            points,
            1 if rng.random() < 0.4 else 0,
            birth.isoformat() if birth else None,
            _ts(created),
            _ts(updated),
        )


def _products(rng: random.Random, clock: _Clock, n: int) -> list[tuple]:
    categories = list(CATEGORIES)
    rows = []
    for product_id in range(1, n + 1):
        category = rng.choice(categories)
        name = f"{rng.choice(ADJECTIVES)} {rng.choice(CATEGORIES[category])} {product_id}"
        created = clock.any()
        rows.append(
            (
                product_id,
                f"{category[:3].upper()}-{product_id:06d}",
                name,
                category,
                _money(rng, 1.5, 450.0),
                0 if rng.random() < 0.08 else 1,
                None if rng.random() < 0.25 else f"{name} — qualité garantie, größe M",
                _ts(created),
                _ts(clock.after(created, 12 * 60) if rng.random() < 0.2 else created),
            )
        )
    return rows


def _orders(
    rng: random.Random, clock: _Clock, n: int, customers: int, products: list[tuple]
) -> tuple[list[tuple], list[tuple], list[tuple]]:
    currencies, weights = list(CURRENCIES), list(CURRENCIES.values())
    countries = list(PLACES)
    orders, items, payments = [], [], []
    item_id = payment_id = 0
    for order_id in range(1, n + 1):
        created = clock.any()
        status = rng.choice(ORDER_STATUSES)
        total = Decimal("0.00")
        for _ in range(rng.choices([1, 2, 3, 4, 5, 6], weights=[30, 25, 20, 12, 8, 5])[0]):
            item_id += 1
            product = rng.choice(products)
            quantity = rng.randint(1, 10) if rng.random() < 0.1 else rng.randint(1, 3)
            price = product[4]
            discount = None if rng.random() < 0.7 else (price * Decimal(rng.choice([5, 10, 15, 20])) / 100).quantize(CENT)
            total += price * quantity - (discount or 0) * quantity
            items.append((item_id, order_id, product[0], quantity, price, discount, _ts(created)))
        updated = clock.after(created, 36 * 60) if status != "placed" else created
        orders.append(
            (
                order_id,
                rng.randint(1, customers),
                status,
                rng.choices(currencies, weights=weights)[0],
                total.quantize(CENT),
                rng.choice(countries),
                rng.choice(NOTES) if rng.random() < 0.05 else None,
                _ts(created),
                _ts(updated),
            )
        )
        if status == "placed":
            continue
        attempts = 2 if rng.random() < 0.05 else 1
        for attempt in range(attempts):
            payment_id += 1
            p_created = clock.after(created, 30)
            if attempt < attempts - 1:
                p_status, paid = "failed", None
            elif status == "refunded":
                p_status, paid = "refunded", clock.after(p_created, 10)
            elif status == "cancelled":
                p_status, paid = "authorized", None
            else:
                p_status, paid = "captured", clock.after(p_created, 10)
            p_updated = max(p_created, paid) if paid else p_created
            payments.append(
                (
                    payment_id,
                    order_id,
                    rng.choice(METHODS),
                    total.quantize(CENT),
                    p_status,
                    _ts(paid) if paid else None,
                    _ts(p_created),
                    _ts(clock.after(p_updated, 60) if rng.random() < 0.1 else p_updated),
                )
            )
    return orders, items, payments


def create_shop_db(
    path: str | os.PathLike[str],
    *,
    scale: float = 1.0,
    seed: int = 42,
    start: date = date(2026, 1, 1),
    days: int = 3,
    recreate: bool = True,
) -> dict[str, int]:
    """Create the demo database at ``path`` and return the row count of each table.

    Args:
        path: SQLite file to create (its folder is created too).
        scale: multiplies the row counts; 1.0 gives about 145,000 rows in all.
        seed: random seed; the same arguments always give the same rows.
        start: first day of the window every ``created_at``/``updated_at`` falls in.
        days: length of that window in days.
        recreate: replace an existing file; when False an existing file is kept.
    """
    if scale <= 0:
        raise ValueError(f"scale must be positive (got {scale})")
    if days < 1:
        raise ValueError(f"days must be at least 1 (got {days})")
    target = Path(path)
    if target.exists() and not recreate:
        with sqlite3.connect(target) as conn:
            return {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in TABLES}
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    temp.unlink(missing_ok=True)
    rng = random.Random(seed)
    clock = _Clock(rng, start, days)
    counts = {name: max(1, round(n * scale)) for name, n in BASE_COUNTS.items()}
    sqlite3.register_adapter(Decimal, str)
    try:
        conn = sqlite3.connect(temp)
        try:
            conn.executescript(SCHEMA)
            conn.executemany("INSERT INTO customers VALUES (?,?,?,?,?,?,?,?,?,?)",
                             _customers(rng, clock, counts["customers"]))
            products = _products(rng, clock, counts["products"])
            conn.executemany("INSERT INTO products VALUES (?,?,?,?,?,?,?,?,?)", products)
            orders, items, payments = _orders(rng, clock, counts["orders"], counts["customers"], products)
            conn.executemany("INSERT INTO orders VALUES (?,?,?,?,?,?,?,?,?)", orders)
            conn.executemany("INSERT INTO order_items VALUES (?,?,?,?,?,?,?)", items)
            conn.executemany("INSERT INTO payments VALUES (?,?,?,?,?,?,?,?)", payments)
            conn.commit()
            result = {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in TABLES}
        finally:
            conn.close()
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return result
