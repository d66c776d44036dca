"""Where the console may send a browser back to: only its own pages, never another site (no open redirect)."""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit

CONSOLE_HOME = "/ui"


def console_return_path(referer: str | None, *, host: str | None) -> str:
    """The relative console path (with its query) of `referer`, or `/ui` when it is anything else.

    Accepted: a URL on this console's own `host` (the request's Host header), or a
    relative path, whose path is `/ui` or lies under `/ui/`. Refused, for `/ui`:
    other hosts, schemes other than http(s), protocol-relative `//host`, backslashes
    (browsers read `/\\host` as `//host`), control characters and dot segments.
    """
    if not referer or not _printable(referer):
        return CONSOLE_HOME
    try:
        parts = urlsplit(referer)
    except ValueError:
        return CONSOLE_HOME
    if (parts.scheme or parts.netloc) and not _this_console(parts, host):
        return CONSOLE_HOME
    if not _console_path(parts.path):
        return CONSOLE_HOME
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _printable(referer: str) -> bool:
    """No control characters, DEL or backslash (browsers read `/\\host` as `//host`)."""
    return not any(ord(c) < 0x20 or c in "\\\x7f" for c in referer)


def _this_console(parts: SplitResult, host: str | None) -> bool:
    """An absolute URL over http(s) whose host is this console's `host` (case-insensitive)."""
    return bool(host) and parts.scheme in ("http", "https") and parts.netloc.lower() == (host or "").lower()


def _console_path(path: str) -> bool:
    """`/ui` or a path under `/ui/`, without empty (`//`) or dot segments (also percent-encoded)."""
    if path != CONSOLE_HOME and not path.startswith(CONSOLE_HOME + "/"):
        return False
    return "//" not in path and not any(segment.lower().replace("%2e", ".") in (".", "..") for segment in path.split("/"))
