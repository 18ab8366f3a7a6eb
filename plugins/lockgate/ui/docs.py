"""A run's GX Data Docs page, served offline.

The page is found from the lake by run id only: the run's validation report
(``lake/quality/<source>/<table>/<run folder>.json``) names it, and it must lie inside
the source's Data Docs site. Its CDN assets are replaced by vendored copies and its
relative ``static/`` assets by GX's own, both served by name from :func:`static_index`.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

from lockgate.settings import Settings

_RELATIVE_STATIC = re.compile(r"""(?<=["'(])(?:\.\./)*static/""")


@cache
def static_index() -> dict[str, Path]:
    """Every file ``/static/{name}`` may serve, by name: the vendored CDN assets
    (``vendor/...``) and GX's own Data Docs assets (``gx/...``). Fixed at first use."""
    import great_expectations

    from lockgate.ui.vendor import VENDOR_DIR

    gx_static = Path(great_expectations.__file__).parent / "render" / "view" / "static"
    index = {f"vendor/{p.relative_to(VENDOR_DIR).as_posix()}": p for p in VENDOR_DIR.rglob("*") if p.is_file()}
    index.update({f"gx/{p.relative_to(gx_static).as_posix()}": p for p in gx_static.rglob("*") if p.is_file()})
    # A site's copy of the custom style sheet is GX's template, renamed.
    template = gx_static / "styles" / "data_docs_custom_styles_template.css"
    if template.exists():
        index["gx/styles/data_docs_custom_styles.css"] = template
    return index


def report_page(settings: Settings, source: str, table: str, run_id: str, version: int):
    """The Data Docs page a run's validation report names, if it is inside the site (a
    local folder or an S3 prefix)."""
    from lockgate.lake import is_local, lake_path
    from lockgate.pipeline import quality_report_path

    report = quality_report_path(settings, source, table, run_id, version)
    try:
        page = json.loads(report.read_text(encoding="utf-8")).get("docs_page")
    except (OSError, ValueError):
        return None
    if not page:
        return None
    site = settings.lake_root / "quality" / source / "docs"
    if not is_local(site):
        inside = page.startswith(f"{site}/") and ".." not in page.split("/")
        path = lake_path(page) if inside and page.endswith(".html") else None
        return path if path is not None and path.exists() else None
    path = Path(page).resolve()
    if not path.is_relative_to(site.resolve()) or path.suffix != ".html" or not path.is_file():
        return None
    return path


def data_docs_page(settings: Settings, source: str, table: str, run_id: str, version: int, static_prefix: str) -> str | None:
    """The page's HTML with every asset pointing at ``static_prefix``, or None."""
    from lockgate.ui.vendor import rewrite_data_docs

    path = report_page(settings, source, table, run_id, version)
    if path is None:
        return None
    html = rewrite_data_docs(path.read_text(encoding="utf-8"), static_prefix)
    return _RELATIVE_STATIC.sub(f"{static_prefix}/gx/", html)
