"""Keep secrets out of everything a user or a log sees.

Pure helpers shared by settings, backends and the server's logging.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

HIDDEN = "<hidden>"


# Credentials before a host, with or without a scheme: "bob:pw@" in "http://bob:pw@h/v1".
_CREDENTIALS = re.compile(r"(^|//)[^/\s@]+@")
# The same inside any text (log lines, tracebacks): "scheme://...@".
_URL_CREDENTIALS = re.compile(r"(\w+://)[^/\s'\"]*@")


def redact_url(url: str) -> str:
    """The URL with any `user:password@` replaced: http://<hidden>@host:8080/v1."""
    try:
        parts = urlsplit(url)
    except ValueError:  # malformed ("http://bob:pw@[::1/v1"): hide by pattern instead
        return _CREDENTIALS.sub(rf"\1{HIDDEN}@", url, count=1)
    if "@" not in parts.netloc:
        # No scheme ("bob:pw@host:80"): urlsplit sees no host at all.
        return _CREDENTIALS.sub(rf"\1{HIDDEN}@", url, count=1) if "@" in url else url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{HIDDEN}@{host}"))


def redact_text(text: str, secrets: list[str]) -> str:
    """`text` with every occurrence of each secret (and credentials in URLs) hidden."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, HIDDEN)
    # Up to the last "@" before the host: a password may hold an "@" of its own.
    return _URL_CREDENTIALS.sub(rf"\1{HIDDEN}@", text)
