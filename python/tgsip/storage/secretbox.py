"""Encryption at rest for the gateway's secrets (SIP passwords, Telegram auth keys).

AES-256-GCM with a random 96-bit nonce per seal. A sealed blob is
``version (1) || key id (4) || nonce (12) || ciphertext || tag (16)``; the key id (the first
four bytes of SHA-256 of the key) lets :meth:`SecretBox.open` tell "sealed with another key"
apart from "tampered". ``aad`` binds a blob to where it is stored (e.g. ``b"line:7"``), so a
blob copied to another row does not open.

The key comes from, in order: ``TGSIP_SECRET_KEY`` (URL-safe base64 of 32 bytes),
``TGSIP_SECRET_KEY_FILE`` (a file holding that text), or ``<data_dir>/secret.key``, created
with mode 0600 on first use. Losing the key loses the secrets (sessions must log in again and
line passwords be reset); keep a copy of it with your backups, apart from the database.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_ENV = "TGSIP_SECRET_KEY"
KEY_FILE_ENV = "TGSIP_SECRET_KEY_FILE"
KEY_FILE_NAME = "secret.key"
_VERSION = 1
_HEADER = 1 + 4 + 12


class SecretError(Exception):
    """A key is missing or malformed, or a blob does not open (wrong key, tampered, or moved)."""


def _decode_key(text: str, origin: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(text.strip().encode("ascii"))
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise SecretError(f"{origin} is not URL-safe base64") from None
    if len(key) != 32:
        raise SecretError(f"{origin} must hold 32 bytes (it holds {len(key)})")
    return key


class SecretBox:
    """Seals and opens secrets with one 256-bit key. The key itself never appears in ``repr``."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise SecretError("a secret key is 32 bytes")
        self._aead = AESGCM(key)
        self._key_id = hashlib.sha256(key).digest()[:4]

    def __repr__(self) -> str:
        return f"SecretBox(key_id={self._key_id.hex()})"

    @staticmethod
    def generate_key() -> str:
        """A new key as the text ``TGSIP_SECRET_KEY`` takes."""
        return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii")

    @classmethod
    def from_environment(cls, data_dir: Path | str) -> SecretBox:
        """The key from the environment, else from ``<data_dir>/secret.key`` (created 0600)."""
        if text := os.environ.get(KEY_ENV):
            return cls(_decode_key(text, KEY_ENV))
        if name := os.environ.get(KEY_FILE_ENV):
            try:
                text = Path(name).read_text(encoding="ascii")
            except (OSError, UnicodeDecodeError) as e:
                raise SecretError(f"cannot read {KEY_FILE_ENV}={name}: {e}") from None
            return cls(_decode_key(text, name))
        path = Path(data_dir) / KEY_FILE_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            try:
                return cls(_decode_key(path.read_text(encoding="ascii"), str(path)))
            except (OSError, UnicodeDecodeError) as e:
                raise SecretError(f"cannot read {path}: {e}") from None
        with os.fdopen(fd, "w", encoding="ascii") as f:
            text = cls.generate_key()
            f.write(text + "\n")
        return cls(_decode_key(text, str(path)))

    def seal(self, plaintext: bytes, aad: bytes = b"") -> bytes:
        nonce = secrets.token_bytes(12)
        body = self._aead.encrypt(nonce, plaintext, aad)
        return bytes([_VERSION]) + self._key_id + nonce + body

    def open(self, blob: bytes, aad: bytes = b"") -> bytes:
        if len(blob) < _HEADER + 16 or blob[0] != _VERSION:
            raise SecretError("not a sealed secret (truncated or unknown format)")
        if blob[1:5] != self._key_id:
            raise SecretError(
                "this secret was sealed with another key: check TGSIP_SECRET_KEY or secret.key"
            )
        try:
            return self._aead.decrypt(blob[5:_HEADER], blob[_HEADER:], aad)
        except InvalidTag:
            raise SecretError("a sealed secret failed authentication (tampered or moved)") from None


__all__ = ["KEY_ENV", "KEY_FILE_ENV", "SecretBox", "SecretError"]
