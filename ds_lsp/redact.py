"""Keep secrets out of everything a user or a log sees.

Pure helpers shared by settings, backends and the server's logging.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

HIDDEN = "<hidden>"


def redact_url(url: str) -> str:
    """The URL with any `user:password@` replaced: http://<hidden>@host:8080/v1."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{HIDDEN}@{host}"))


def redact_text(text: str, secrets: list[str]) -> str:
    """`text` with every occurrence of each secret (and credentials in URLs) hidden."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, HIDDEN)
    return re.sub(r"(\w+://)[^/\s@]+@", rf"\1{HIDDEN}@", text)
