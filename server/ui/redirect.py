"""Where the console may send a browser back to: only its own pages, never another site (no open redirect)."""

from __future__ import annotations

from urllib.parse import urlsplit

CONSOLE_HOME = "/ui"


def console_return_path(referer: str | None, *, host: str | None) -> str:
    """The relative console path (with its query) of `referer`, or `/ui` when it is anything else.

    Accepted: a URL on this console's own `host` (the request's Host header), or a
    relative path, whose path is `/ui` or lies under `/ui/`. Refused, for `/ui`:
    other hosts, schemes other than http(s), protocol-relative `//host`, backslashes
    (browsers read `/\\host` as `//host`), control characters and dot segments.
    """
    if not referer or any(ord(c) < 0x20 or c in "\\\x7f" for c in referer):
        return CONSOLE_HOME
    try:
        parts = urlsplit(referer)
    except ValueError:
        return CONSOLE_HOME
    if parts.scheme or parts.netloc:
        if parts.scheme not in ("http", "https") or not host or parts.netloc.lower() != host.lower():
            return CONSOLE_HOME
    path = parts.path
    if path != CONSOLE_HOME and not path.startswith(CONSOLE_HOME + "/"):
        return CONSOLE_HOME
    if "//" in path or any(segment.lower().replace("%2e", ".") in (".", "..") for segment in path.split("/")):
        return CONSOLE_HOME
    return path + (f"?{parts.query}" if parts.query else "")
