"""What a web page says about itself (pure): its charset and its <title>.

Government sites still serve GBK/GB2312 pages, so the charset comes from the
Content-Type header, else a <meta charset>, else UTF-8 with GB18030 as fallback.
"""

from __future__ import annotations

import codecs
import html
import re

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
_HEADER_CHARSET = re.compile(r"charset\s*=\s*\"?([A-Za-z0-9_.:-]+)", re.IGNORECASE)
_TITLE = re.compile(r"<title[^>]*>(.*?)</title\s*>", re.IGNORECASE | re.DOTALL)
MAX_TITLE_CHARS = 256


def _known(name: str | None) -> str | None:
    if not name:
        return None
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def decode_body(body: bytes, content_type: str | None) -> str:
    """The body as text, by header charset, meta charset, UTF-8, then GB18030; never raises."""
    header = _HEADER_CHARSET.search(content_type or "")
    meta = _META_CHARSET.search(body[:4096])
    for name in (header.group(1) if header else None, meta.group(1).decode("ascii") if meta else None):
        charset = _known(name)
        if charset:
            return body.decode(charset, errors="replace")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return body.decode("gb18030", errors="replace")


def page_title(text: str) -> str:
    """The page's <title>, unescaped, whitespace collapsed, at most 256 characters; "" when none."""
    match = _TITLE.search(text)
    if not match:
        return ""
    title = " ".join(html.unescape(match.group(1)).split())
    return "".join(ch for ch in title if ch.isprintable())[:MAX_TITLE_CHARS]
