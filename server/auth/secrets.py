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
PASSWORD_MIN_LENGTH = 12
PASSWORD_MAX_LENGTH = 256
# Verified instead of a real hash when a login names no usable account, so the answer
# costs the same scrypt work and its timing does not tell whether the user exists.
# Well-formed, with the same parameters as real hashes; no password matches it.
DUMMY_PASSWORD_HASH = f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${'00' * 16}${'00' * 64}"


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


def password_problem(password: str) -> str | None:
    """Why `password` may not be set (English, with the Chinese in brackets), or None when it may."""
    if len(password) < PASSWORD_MIN_LENGTH:
        return f"a password needs at least {PASSWORD_MIN_LENGTH} characters (密码至少需要 {PASSWORD_MIN_LENGTH} 个字符)"
    if len(password) > PASSWORD_MAX_LENGTH:
        return f"a password may have at most {PASSWORD_MAX_LENGTH} characters (密码最多 {PASSWORD_MAX_LENGTH} 个字符)"
    return None


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
