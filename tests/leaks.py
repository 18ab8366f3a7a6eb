"""Find a secret in text, in every spelling a log, URI, JSON file, HTML page or shell
may give it.

Written independently of :mod:`lockgate.redact` on purpose: the literal spellings
below are what the leak tests grep for; :func:`lockgate.redact.contains` (a pattern
that accepts any mix of encodings per character) is a second, wider net.
"""

from __future__ import annotations

import html
import json
import re
import shlex
from pathlib import Path
from urllib.parse import quote, quote_plus, unquote, unquote_plus

from lockgate import redact


def spellings(secret: str) -> dict[str, str]:
    """Literal spellings of ``secret``, by name."""
    pct = quote(secret, safe="")
    forms = {
        "raw": secret,
        "quote(safe='')": pct,
        "quote(safe='/')": quote(secret),
        "quote_plus": quote_plus(secret),
        "quote_plus(safe='/')": quote_plus(secret, safe="/"),
        "quote(safe='') lower-case hex": re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), pct),
        "double percent-encoded": quote(pct, safe=""),
        "JSON": json.dumps(secret)[1:-1],
        "JSON (unicode kept)": json.dumps(secret, ensure_ascii=False)[1:-1],
        "JSON in JSON": json.dumps(json.dumps(secret))[1:-1],
        "repr": repr(secret)[1:-1],
        "repr with both quotes": repr(secret + '"')[1:-2],
        "HTML": html.escape(secret),
        "HTML (quotes kept)": html.escape(secret, quote=False),
        "shlex.quote": shlex.quote(secret),
        "shlex.quote (inside)": shlex.quote(secret).strip("'"),
        "SQL literal": secret.replace("'", "''"),
        "percent-decoded": unquote(secret),
        "percent-decoded (plus)": unquote_plus(secret),
    }
    return {name: form for name, form in forms.items() if form}


def find(text: str, *secrets: str) -> list[str]:
    """Where ``text`` holds one of the secrets: a list of 'spelling: …excerpt…'."""
    hits = []
    for secret in secrets:
        own = []
        for name, form in spellings(secret).items():
            at = text.find(form)
            if at >= 0:
                own.append(f"{name}: …{text[max(0, at - 60):at + len(form) + 20]!r}…")
        match = None if own else redact.pattern(secret).search(text)
        if match:
            own.append(f"mixed encoding: …{text[max(0, match.start() - 60):match.end() + 20]!r}…")
        hits += own
    return hits


def scan_tree(root: Path, *secrets: str) -> dict[str, list[str]]:
    """Every file under ``root`` whose bytes (read as UTF-8, or Latin-1) hold a secret."""
    found = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        texts = {data.decode("utf-8", errors="replace"), data.decode("latin-1")}
        hits = [hit for text in texts for hit in find(text, *secrets)]
        if hits:
            found[str(path)] = hits
    return found
