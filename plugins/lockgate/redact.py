"""Keep secrets out of messages and logs, in whatever encoding they appear.

A password reaches Lockgate percent-encoded inside a connection URI, and drivers,
URIs, JSON, ``repr``, HTML reports and shells each write it differently. :func:`mask`
therefore does not replace one spelling: it matches any text that *spells* the
secret, character by character, where each character may be written raw,
percent-encoded (once or twice, any hex case), ``+`` for a space, backslash-escaped
(``\\'``, ``\\\\``, ``\\uXXXX``, ``\\xXX``), as an HTML entity, or — for a quote — doubled
as in SQL or closed and reopened as in a shell. The percent-decoded spelling of a
secret that itself contains ``%XX`` is masked too.

:func:`register` remembers a secret for the logging filter installed on Lockgate's
and py4j's loggers (py4j logs every JVM command at DEBUG, options included) and hands
it to Airflow's own secrets masker when Airflow is there.

(Not named ``secrets.py``: Airflow imports every file of the plugins folder under its
bare file name, which would shadow the standard library's ``secrets``.)
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from contextlib import suppress
from functools import lru_cache
from urllib.parse import quote, quote_plus, unquote, unquote_plus

REPLACEMENT = "***"

#: Loggers whose records are masked once a secret is registered.
FILTERED_LOGGERS = ("lockgate", "py4j", "py4j.clientserver", "py4j.java_gateway")

_HTML_NAMED = {"&": "amp", "<": "lt", ">": "gt", '"': "quot", "'": "apos"}
_CONTROL = {"\n": "n", "\r": "r", "\t": "t", "\b": "b", "\f": "f", "\0": "0"}


def _hex(value: int, width: int) -> str:
    """``value`` in hex, each letter matching either case."""
    return "".join(f"[{d.lower()}{d.upper()}]" if d.isalpha() else d for d in f"{value:0{width}x}")


def _char(c: str) -> str:
    """A pattern for every way of writing one character."""
    cp = ord(c)
    alts = [re.escape(c)]
    # percent-encoded, once or twice (%25 is an encoded '%')
    alts.append("".join("%(?:25)?" + _hex(b, 2) for b in c.encode("utf-8")))
    if c == " ":
        alts.append(r"\+")
    if c == "\\":
        alts.append(r"\\+")  # escaped once, twice, ...
    elif not c.isalnum():
        alts.append(r"\\+" + re.escape(c))  # \' \" \/ (repr, JSON, shells)
    if c in _CONTROL:
        alts.append(r"\\+" + _CONTROL[c])
    # code-point escapes: \xXX, \uXXXX (JSON, repr), \U0000XXXX, surrogate pairs
    if cp < 0x100:
        alts.append(r"\\+x" + _hex(cp, 2))
    if cp < 0x10000:
        alts.append(r"\\+u" + _hex(cp, 4))
    else:
        high, low = 0xD800 + ((cp - 0x10000) >> 10), 0xDC00 + ((cp - 0x10000) & 0x3FF)
        alts.append(r"\\+u" + _hex(high, 4) + r"\\+u" + _hex(low, 4))
    alts.append(r"\\+U" + _hex(cp, 8))
    # HTML entities
    alts.append(f"&#0*{cp};")
    alts.append("&#[xX]0*" + _hex(cp, 1 if cp < 16 else 2 if cp < 256 else 4 if cp < 0x10000 else 6) + ";")
    if c in _HTML_NAMED:
        alts.append(f"&{_HTML_NAMED[c]};")
    if c == "'":
        alts += ["''", "'\"'\"'", r"'\\''"]  # SQL literal; shell quoting (shlex.quote; '\'')
    if c == '"':
        alts.append('""')
    return "(?:" + "|".join(alts) + ")"


def spellings(secret: str) -> list[str]:
    """The secret and its percent-decoded spellings (when they differ)."""
    out = [secret]
    for decoded in (unquote(secret), unquote_plus(secret)):
        if decoded and decoded not in out:
            out.append(decoded)
    return out


@lru_cache(maxsize=256)
def pattern(*secrets: str) -> re.Pattern[str] | None:
    """One regular expression matching every spelling of every (non-empty) secret."""
    words = sorted({w for s in secrets if s for w in spellings(s)}, key=len, reverse=True)
    if not words:
        return None
    return re.compile("|".join("".join(_char(c) for c in w) for w in words))


def mask(text: str, *secrets: str | None, replacement: str = REPLACEMENT) -> str:
    """``text`` with every spelling of each secret replaced by ``replacement``."""
    compiled = pattern(*sorted({s for s in secrets if s}))
    if compiled is None or not text:
        return text
    return compiled.sub(replacement, text)


def contains(text: str, *secrets: str | None) -> bool:
    """Whether ``text`` spells one of the secrets in any encoding :func:`mask` knows."""
    compiled = pattern(*sorted({s for s in secrets if s}))
    return bool(compiled and text and compiled.search(text))


def common_encodings(secret: str) -> list[str]:
    """The usual literal spellings of a secret (for Airflow's masker, which matches literals)."""
    forms = [
        secret,
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret),
        quote(quote(secret, safe=""), safe=""),
        secret.replace("\\", "\\\\").replace('"', '\\"'),
        repr(secret)[1:-1],
        secret.replace("'", "''"),
    ]
    return list(dict.fromkeys(f for f in forms if f))


# --- registered secrets and the logging filter ---------------------------------------
_registered: set[str] = set()
_lock = threading.Lock()


class MaskFilter(logging.Filter):
    """Mask every registered secret in a record's message and traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = tuple(sorted(_registered))
        if not secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken record is logging's problem, not ours
            return True
        masked = mask(message, *secrets)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info or record.exc_text:
            trace = record.exc_text or logging.Formatter().formatException(record.exc_info)
            clean = mask(trace, *secrets)
            if clean != trace:
                # Formatters (structlog's too) render exc_info themselves: carry the
                # masked traceback in the message instead.
                record.msg, record.args = f"{record.msg}\n{clean}", None
                record.exc_info, record.exc_text = None, None
        return True


_FILTER = MaskFilter()


def install_filter() -> None:
    """Attach the masking filter to Lockgate's and py4j's loggers (idempotent)."""
    for name in FILTERED_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


def register(secret: str | None) -> None:
    """Remember a secret: logs of Lockgate, py4j and (when running there) Airflow mask it."""
    if not secret:
        return
    with _lock:
        new = secret not in _registered
        _registered.add(secret)
    install_filter()
    # Airflow's masker too, when Airflow is loaded (a task always has it; importing it
    # here just for that would reconfigure the process's logging).
    if new and "airflow.sdk" in sys.modules:
        with suppress(Exception):
            from airflow.sdk.log import mask_secret

            for form in common_encodings(secret):
                mask_secret(form)
