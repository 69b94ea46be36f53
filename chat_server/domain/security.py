"""Secrets: resume tokens (stored only as hashes) and argon2 password hashes."""

import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()


def new_token() -> str:
    """A long random secret; 256 bits, so a fast hash is enough to store it."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def hash_password(password: str) -> str:
    """Slow on purpose (tens of ms): call it through `runtime.offload`, never on the hub."""
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Constant-time through argon2; False for a wrong password or a damaged hash."""
    if not password_hash:
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def guest_suffix() -> str:
    """64 random bits: gone guests leave no row, so only chance keeps a name from being
    drawn twice, and at 2**64 it never is in practice."""
    return secrets.token_hex(8)
