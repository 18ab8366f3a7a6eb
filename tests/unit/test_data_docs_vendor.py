"""Data Docs pages render offline: every CDN asset GX loads is vendored and rewritten."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import pytest
from lockgate import quality
from lockgate.ui.vendor import CDN_MAP, VENDOR_DIR, external_urls, rewrite_data_docs

PREFIX = "/lockgate/static"

# Hyperlinks in GX's templates that a reader may click; a browser never loads them.
NOT_LOADED = {
    "https://greatexpectations.io",
    "https://greatexpectations.io/",
    "https://greatexpectations.io/newsletter?utm_source=datadocs&utm_medium=product&utm_campaign=newsletter&utm_content=form",
}


def _gx_view_dir() -> Path:
    import great_expectations.render.view as view

    return Path(view.__file__).parent


def _gx_sources() -> dict[Path, str]:
    """GX's Data Docs templates and the stylesheet it inlines into every page."""
    root = _gx_view_dir()
    files = [*sorted((root / "templates").glob("*.j2")), *sorted((root / "static" / "styles").glob("*.css"))]
    assert len(files) > 20, f"GX's templates moved: {root}"
    return {f: f.read_text(encoding="utf-8") for f in files}


def _package_dir(relative: str) -> Path:
    """``<package>/<version>`` (``@scope/<package>/<version>``) of a vendored file."""
    parts = Path(relative).parts
    return VENDOR_DIR.joinpath(*parts[: 3 if parts[0].startswith("@") else 2])


@pytest.fixture(scope="module")
def data_docs_pages(tmp_path_factory) -> list[Path]:
    """A real validation page and suite page, built by GX offline on the pandas path."""
    import pandas as pd

    docs = tmp_path_factory.mktemp("docs")
    df = pd.DataFrame({"id": pd.array([1, 2, 2], dtype="Int64"), "email": ["a@x.io", None, "c@x.io"]})
    suite = {"name": "t.orders", "expectations": [
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "id"}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "email"}},
    ]}  # fmt: skip
    report = quality.validate_dataframe(df, suite, table="t.orders", row_count=3, docs_dir=docs, run_name="r")
    assert report.docs_page and not report.success
    pages = [Path(report.docs_page), *docs.glob("expectations/**/*.html")]
    assert len(pages) == 2
    return pages


def test_a_real_data_docs_page_loads_nothing_from_the_internet(data_docs_pages):
    for page in data_docs_pages:
        html = page.read_text(encoding="utf-8")
        before = external_urls(html)
        assert len(before) >= 15, before  # GX still loads its assets from CDNs
        rewritten = rewrite_data_docs(html, PREFIX)
        assert external_urls(rewritten) == [], page.name
        local = re.findall(rf"""{re.escape(PREFIX)}/vendor/([^"')\s]+)""", rewritten)
        assert len(local) == len(before)
        for relative in local:
            path = VENDOR_DIR / relative
            assert path.is_file() and path.stat().st_size > 0, relative


def test_every_mapped_file_exists_beside_its_licence():
    for url, relative in CDN_MAP.items():
        path = VENDOR_DIR / relative
        assert path.is_file() and path.stat().st_size > 0, f"{url} → missing {path}"
        assert list(_package_dir(relative).glob("LICENSE*")), f"no LICENSE in {_package_dir(relative)}"
    readme = (VENDOR_DIR / "README.md").read_text(encoding="utf-8")
    missing = [url for url in CDN_MAP if url not in readme]
    assert not missing, f"README.md does not list {missing}"


def test_vendored_stylesheets_find_their_fonts():
    """Font Awesome's CSS loads ../webfonts/*.woff2; the .ttf fallbacks are not vendored
    (every browser that runs these pages reads woff2 and never asks for them)."""
    for css in VENDOR_DIR.rglob("*.css"):
        refs = re.findall(r"""url\(\s*['"]?([^'")]+)""", css.read_text(encoding="utf-8"))
        for ref in (r for r in refs if not r.startswith("data:")):
            target = (css.parent / ref.split("?")[0].split("#")[0]).resolve()
            fallback = target.suffix == ".ttf" and target.with_suffix(".woff2").is_file()
            assert target.is_file() or fallback, f"{css.relative_to(VENDOR_DIR)}: {ref}"


def test_gx_templates_load_nothing_missing_from_the_map():
    """Fails when a GX upgrade adds or changes a CDN URL: vendor it, or list a plain link."""
    unmapped = []
    for path, text in _gx_sources().items():
        for url in re.findall(r"""https?://[^\s"'()<>{}]+""", text):
            if url.endswith("/"):  # a base such as GX's S3 image folder: `base + "name"`
                names = re.findall(r"""static_images_dir\s*\+\s*["']([^"']+)""", text)
                if names and all(url + name in CDN_MAP for name in names):
                    continue
            if url not in CDN_MAP and url not in NOT_LOADED:
                unmapped.append(f"{path.name}: {url}")
    assert not unmapped, "GX loads assets Lockgate has not vendored:\n" + "\n".join(unmapped)


def test_gx_subresource_integrity_matches_the_vendored_bytes():
    """Where GX pins a file's hash, the vendored copy is byte for byte the CDN's."""
    pinned = {
        url: digest
        for text in _gx_sources().values()
        for url, digest in re.findall(r"""src="(https://[^"]+)"\s+integrity="sha384-([^"]+)\"""", text)
    }
    assert len(pinned) >= 2
    for url, digest in pinned.items():
        data = (VENDOR_DIR / CDN_MAP[url]).read_bytes()
        assert base64.b64encode(hashlib.sha384(data).digest()).decode() == digest, url


def test_rewrite_keeps_unknown_urls_and_external_urls_reports_them():
    html = (
        '<link rel="stylesheet" href="https://code.jquery.com/jquery-3.7.1.min.js">'
        '<script src="https://cdn.example.org/x.js"></script><a href="https://greatexpectations.io">GX</a>'
        "<style>.a{background:url('https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/"
        "logo-long.png?d=1')} .b{background:url(//cdn.example.org/y.png)}</style>"
    )
    rewritten = rewrite_data_docs(html, "/s/")
    assert '"/s/vendor/jquery/3.7.1/dist/jquery.min.js"' in rewritten
    assert "url('/s/vendor/great-expectations/1.24.1/images/logo-long.png')" in rewritten
    assert external_urls(rewritten) == ["https://cdn.example.org/x.js", "//cdn.example.org/y.png"]
