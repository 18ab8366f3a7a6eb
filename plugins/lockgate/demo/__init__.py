"""The demo source: an embedded SQLite web-shop database built by ``make demo``."""
