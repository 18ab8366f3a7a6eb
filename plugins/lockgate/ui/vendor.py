"""Serve Great Expectations Data Docs pages without the internet.

GX's page templates load Bootstrap, jQuery, bootstrap-table, Vega, Font Awesome and
more from public CDNs (and two logo images from GX's S3 bucket), so on an offline
machine the pages render unstyled. Those exact files are vendored under
:data:`VENDOR_DIR` (``static/vendor/<package>/<version>/...``, each with its licence;
see ``static/vendor/README.md``). :func:`rewrite_data_docs` points a page at them, and
:func:`external_urls` lists whatever a page would still fetch from the internet.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

VENDOR_DIR: Path = Path(__file__).resolve().parent / "static" / "vendor"

#: Every asset URL GX 1.24's Data Docs templates load → its file, relative to VENDOR_DIR.
#: Floating CDN versions (``vega@5``) are pinned to the newest release in that range.
CDN_MAP: dict[str, str] = {
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css":
        "bootstrap/4.3.1/dist/css/bootstrap.min.css",
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js":
        "bootstrap/4.3.1/dist/js/bootstrap.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css":
        "bootstrap-table/1.19.1/dist/bootstrap-table.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js":
        "bootstrap-table/1.19.1/dist/bootstrap-table.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js":
        "bootstrap-table/1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js",
    # The unminified and the minified file of the same release: one vendored copy.
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css":
        "bootstrap-table/1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css":
        "bootstrap-table/1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css":
        "bootstrap-datepicker/1.9.0/dist/css/bootstrap-datepicker.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js":
        "bootstrap-datepicker/1.9.0/dist/js/bootstrap-datepicker.min.js",
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css":
        "@forevolve/bootstrap-dark/1.1.0/dist/css/bootstrap-prefers-dark.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css":
        "@fortawesome/fontawesome-free/6.6.0/css/all.min.css",
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery/3.7.1/dist/jquery.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js":
        "popper.js/1.12.9/dist/umd/popper.min.js",
    "https://cdn.jsdelivr.net/npm/vega@5": "vega/5.33.1/build/vega.min.js",
    "https://cdn.jsdelivr.net/npm/vega-lite@5": "vega-lite/5.23.0/build/vega-lite.min.js",
    "https://cdn.jsdelivr.net/npm/vega-embed@6": "vega-embed/6.29.0/build/vega-embed.min.js",
    # GX's navbar logo; its dark-theme variant exists only on S3, the light one stands in.
    "https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/logo-long.png":
        "great-expectations/1.24.1/images/logo-long.png",
    "https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/full_logo_dark.png":
        "great-expectations/1.24.1/images/logo-long.png",
}  # fmt: skip

_URL = re.compile(r"""https?://[^\s"'()<>]+""")
_CSS_URL = re.compile(r"""url\(\s*(['"]?)(.*?)\1\s*\)""", re.IGNORECASE)
_ASSET_ATTRS = {"script": "src", "img": "src", "link": "href"}


def _vendored(url: str) -> str | None:
    """CDN_MAP's file for ``url``, ignoring a query or fragment (GX adds ``?d=<id>``)."""
    return CDN_MAP.get(url) or CDN_MAP.get(re.split(r"[?#]", url, maxsplit=1)[0])


def rewrite_data_docs(html: str, static_prefix: str) -> str:
    """``html`` with every known CDN URL replaced by ``<static_prefix>/vendor/<file>``.

    Unknown URLs are left as they are (see :func:`external_urls`).
    """
    prefix = static_prefix.rstrip("/")

    def swap(match: re.Match[str]) -> str:
        relative = _vendored(match.group(0))
        return f"{prefix}/vendor/{relative}" if relative else match.group(0)

    return _URL.sub(swap, html)


class _AssetRefs(HTMLParser):
    """Collects ``<script src>``, ``<img src>`` and ``<link href>`` values."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        wanted = _ASSET_ATTRS.get(tag)
        self.refs += [value for name, value in attrs if name == wanted and value]


def external_urls(html: str) -> list[str]:
    """Asset URLs in ``html`` that a browser would still fetch from an http(s) host:
    ``<script src>``, ``<link href>``, ``<img src>`` and CSS ``url()`` values."""
    parser = _AssetRefs()
    parser.feed(html)
    parser.close()
    refs = parser.refs + [m.group(2) for m in _CSS_URL.finditer(html)]
    return [ref.strip() for ref in refs if re.match(r"\s*(https?:)?//", ref, re.IGNORECASE)]
