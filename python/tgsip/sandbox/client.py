"""Pointing an unmodified Telethon client at a sandbox (typed wrappers at the Telethon seam)."""

from __future__ import annotations

from typing import Any

from telethon.crypto import rsa as _telethon_rsa  # type: ignore[import-untyped]


def trust_key(public_key_pem: str) -> None:
    """Make Telethon accept the sandbox's RSA key during auth-key creation.

    Uses Telethon's ``telethon.crypto.rsa.add_key(pem, old=False)``. The registry is
    process-wide; adding the same key again is harmless.
    """
    _telethon_rsa.add_key(public_key_pem, old=False)


def point_client(client: Any, dc_id: int, host: str, port: int) -> None:
    """Direct a not-yet-connected ``TelegramClient`` to the sandbox at ``host``:``port``."""
    client.session.set_dc(dc_id, host, port)
