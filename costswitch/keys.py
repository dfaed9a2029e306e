"""API key format and hashing. Only the SHA-256 of a key is stored; the key is shown once.

Keys carry 256 bits of randomness, so a fast hash is enough (no password-style stretching needed)
and lets authentication find the key with one indexed lookup.
"""

import hashlib
import secrets

KEY_PREFIX = "cs_"
PREFIX_LENGTH = 8


def generate_api_key() -> tuple[str, str, str]:
    """Return (key, visible prefix, hash)."""
    body = secrets.token_urlsafe(32)
    key = f"{KEY_PREFIX}{body}"
    return key, key[: len(KEY_PREFIX) + PREFIX_LENGTH], hash_api_key(key)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()
