"""Token and password hashing: what is stored is never what was handed out.

Tokens are 256-bit random strings, so a single SHA-256 is enough to make the
stored value useless to a thief (no dictionary to try). Passwords are chosen by
people and get scrypt (RFC 7914) with a per-password salt.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

TOKEN_PREFIXES = {"user": "egvu_", "agent": "egva_", "enroll": "egve_"}
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1


def new_token(kind: str) -> str:
    """A fresh random token whose prefix says what it is (`egvu_`, `egva_`, `egve_`)."""
    return TOKEN_PREFIXES[kind] + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """The stored form of a token: hex SHA-256."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_display_prefix(token: str) -> str:
    """The first characters of a token, shown in listings so people can tell tokens apart."""
    return token[:12]


def hash_password(password: str) -> str:
    """An scrypt hash `scrypt$n$r$p$salt$hash` (hex)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P)
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """True when `password` matches the stored scrypt hash (constant-time compare)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    candidate = hashlib.scrypt(password.encode("utf-8"), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p))
    return hmac.compare_digest(candidate.hex(), digest)
