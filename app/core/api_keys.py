"""Personal API keys: their format and their keyed hash (no state, no I/O).

A key is `vk-` + an 8-character lookup prefix + 43 random base62 characters (~256 bits).
Only `vk-` + the prefix is stored in clear (unique, shown in lists); the whole key is stored
as HMAC-SHA256 under a key derived from the server's signing key. A fast keyed hash is right
here: the secret part is random and long, so there is nothing to brute-force that a slow
hash (bcrypt) would protect, and every request that carries a key verifies it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string

API_KEY_MARK = "vk-"
PREFIX_CHARS = 8
SECRET_CHARS = 43  # 43 base62 characters ≈ 256 bits
API_KEY_CHARS = len(API_KEY_MARK) + PREFIX_CHARS + SECRET_CHARS
STORED_PREFIX_CHARS = len(API_KEY_MARK) + PREFIX_CHARS
_ALPHABET = string.ascii_letters + string.digits
_ALPHABET_SET = frozenset(_ALPHABET)
_DERIVATION_LABEL = b"vektor personal api keys v1"


def _random(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def new_api_key() -> tuple[str, str]:
    """A fresh key and its stored (non-secret) prefix."""
    prefix = API_KEY_MARK + _random(PREFIX_CHARS)
    return prefix + _random(SECRET_CHARS), prefix


def is_api_key(token: str) -> bool:
    """Whether a bearer credential is meant as an API key (not a JWT)."""
    return token.startswith(API_KEY_MARK)


def stored_prefix(key: str) -> str | None:
    """The lookup prefix of a well-formed key; None for anything else."""
    if len(key) != API_KEY_CHARS or not key.startswith(API_KEY_MARK):
        return None
    if not _ALPHABET_SET.issuperset(key[len(API_KEY_MARK) :]):
        return None
    return key[:STORED_PREFIX_CHARS]


class ApiKeyHasher:
    """HMAC-SHA256 of keys under a key derived from the server's signing key."""

    def __init__(self, *, signing_key: str) -> None:
        # derived: the JWT key itself never meets key material chosen elsewhere
        self._key = hmac.new(signing_key.encode(), _DERIVATION_LABEL, hashlib.sha256).digest()

    def hash(self, key: str) -> str:
        """The stored form of a key (64 hex characters)."""
        return hmac.new(self._key, key.encode(), hashlib.sha256).hexdigest()

    def matches(self, key: str, stored: str) -> bool:
        """Constant-time comparison of a presented key with a stored hash."""
        return hmac.compare_digest(self.hash(key), stored)
