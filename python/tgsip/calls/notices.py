"""What the gateway's services tell administrators, as an interface in the shared layer.

The SIP and Telegram services cannot import the bot; they receive an ``AdminNotices`` (the
bot's ``Notifier``) from the composition root and call it. Each call returns how many
administrators were messaged (0 when rate-limited or nobody is to be told).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class AdminNotices(Protocol):
    async def session_lost(self, session_id: int, detail: str = "", revoked: bool = False) -> int:
        """The session went offline; ``revoked``: Telegram ended its authorization."""
        ...

    async def registration_failed(self, line_id: int, reason: str) -> int:
        """A line's registration failed, e.g. ``reason`` "403 Forbidden"."""
        ...

    async def call_failures(self, line_id: int, count: int, last_reason: str) -> int:
        """``count`` calls in a row failed on a line."""
        ...

    async def ip_banned(self, line_id: int, ip: str, seconds: int) -> int:
        """``ip`` was banned for ``seconds`` after failed attempts on a line."""
        ...
