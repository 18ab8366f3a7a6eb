#!/usr/bin/env python3
"""Write the ``.env`` of the container stack from ``.env.example``, with fresh secrets.

    python3 docker/make_env.py            # writes .env next to docker-compose.yml
    python3 docker/make_env.py -o FILE    # elsewhere

Every variable left empty in ``.env.example`` is a secret and gets a new random value:
a Fernet key for ``AIRFLOW_FERNET_KEY``, 32 random bytes (URL-safe base64, so they can
stand in a database URL) for the others. Other lines are copied as they are. The file
is created with mode 0600 and an existing one is never overwritten. Standard library
only: any Python 3 on the host will do.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import secrets
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


def secret(name: str) -> str:
    if name == "AIRFLOW_FERNET_KEY":
        return base64.urlsafe_b64encode(os.urandom(32)).decode("ascii")
    return secrets.token_urlsafe(32)


def render(example: str) -> tuple[str, list[str]]:
    """``example`` with every empty assignment filled; also the names filled."""
    lines, filled = [], []
    for line in example.splitlines():
        match = LINE.match(line)
        if match and match.group(2) == "":
            line = f"{match.group(1)}={secret(match.group(1))}"
            filled.append(match.group(1))
        lines.append(line)
    return "\n".join(lines) + "\n", filled


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", default=str(ROOT / ".env"))
    parser.add_argument("--example", default=str(ROOT / ".env.example"))
    args = parser.parse_args(argv)
    text, filled = render(Path(args.example).read_text(encoding="utf-8"))
    try:
        fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        print(f"make_env: {args.output} exists; not overwritten (delete it to start over)", file=sys.stderr)
        return 1
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    # Names only: the values are secrets.
    print(f"make_env: wrote {args.output} (mode 0600) with new {', '.join(filled)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
