"""Notifications to administrators (product.md section 2): a session lost or revoked,
registration failures of a line, repeated call failures of a line, a banned IP.

Each message carries a button back to the setting concerned. Messages are rate-limited per
recipient, kind and target (one per :attr:`Notifier.interval_s`, default 10 minutes); what
was held back is counted and mentioned in the next message of that kind.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from typing import Any

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import InlineKeyboardMarkup

from tgsip.bot import keyboards
from tgsip.bot.access import Access
from tgsip.bot.services import Clock
from tgsip.calls.notices import AdminNotices
from tgsip.storage import ConfigStore

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 600.0


class NoticeKind(enum.StrEnum):
    SESSION_LOST = "session_lost"
    SESSION_REVOKED = "session_revoked"
    REGISTRATION_FAILED = "registration_failed"
    CALL_FAILURES = "call_failures"
    IP_BANNED = "ip_banned"


class Notifier:
    """Sends administrator notifications through the bot; the gateway's services call it
    through :class:`tgsip.calls.notices.AdminNotices`."""

    def __init__(
        self,
        bot: Bot,
        store: ConfigStore,
        access: Access,
        clock: Clock,
        interval_s: float = DEFAULT_INTERVAL_S,
    ) -> None:
        self.bot = bot
        self.store = store
        self.access = access
        self.clock = clock
        self.interval_s = interval_s
        self._last: dict[tuple[int, NoticeKind, int], float] = {}
        self._held: dict[tuple[int, NoticeKind, int], int] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    async def _send(
        self, kind: NoticeKind, target: int, recipients: list[int], text: str,
        markup: InlineKeyboardMarkup,
    ) -> int:  # fmt: skip
        """Send to each recipient not rate-limited; returns how many got it."""
        now = self.clock()
        sent = 0
        for uid in recipients:
            key = (uid, kind, target)
            last = self._last.get(key)
            if last is not None and now - last < self.interval_s:
                self._held[key] = self._held.get(key, 0) + 1
                continue
            held = self._held.pop(key, 0)
            body = text + (f"\n({held} similar notifications were held back.)" if held else "")
            try:
                await self.bot.send_message(uid, body, reply_markup=markup)
            except TelegramAPIError as exc:
                log.warning("notification %s to an administrator failed: %s", kind, exc)
                continue
            self._last[key] = now
            sent += 1
        return sent

    async def session_lost(self, session_id: int, detail: str = "", revoked: bool = False) -> int:
        """The session went offline (``revoked``: Telegram ended its authorization)."""
        rec = await self.store.get_session(session_id)
        if rec is None:
            return 0
        title = keyboards.session_title(rec)
        if revoked:
            kind = NoticeKind.SESSION_REVOKED
            text = f"⚠️ Session {title} was logged out by Telegram (revoked). Connect it again."
        else:
            kind = NoticeKind.SESSION_LOST
            text = f"⚠️ Session {title} lost its connection to Telegram; reconnecting."
        if detail:
            text += f"\nReason: {detail}"
        return await self._send(
            kind, session_id, self.access.recipients(rec), text, keyboards.to_session(rec.id)
        )

    async def _line_notice(self, kind: NoticeKind, line_id: int, text: str) -> int:
        line = await self.store.get_line(line_id)
        if line is None:
            return 0
        rec = await self.store.get_session(line.session_id)
        if rec is None:
            return 0
        body = f"⚠️ SIP line {keyboards.line_title(line)} of session " + (
            f"{keyboards.session_title(rec)}: {text}"
        )
        return await self._send(
            kind, line_id, self.access.recipients(rec), body, keyboards.to_line(line.id)
        )

    async def registration_failed(self, line_id: int, reason: str) -> int:
        """A line's registration failed (either direction); ``reason`` e.g. "403 Forbidden"."""
        return await self._line_notice(
            NoticeKind.REGISTRATION_FAILED, line_id, f"registration failed ({reason})."
        )

    async def call_failures(self, line_id: int, count: int, last_reason: str) -> int:
        """``count`` calls in a row failed on a line, the last with ``last_reason``."""
        return await self._line_notice(
            NoticeKind.CALL_FAILURES,
            line_id,
            f"{count} calls in a row failed; the last: {last_reason}.",
        )

    async def ip_banned(self, line_id: int, ip: str, seconds: int) -> int:
        """``ip`` was banned for ``seconds`` after failed attempts on a line."""
        return await self._line_notice(
            NoticeKind.IP_BANNED,
            line_id,
            f"{ip} is banned for {seconds // 60} min after repeated failed attempts "
            "(wrong login or password, or not a trusted IP).",
        )

    def on_session_event(self, event: Any) -> None:
        """A sessions-service listener: ``event`` has ``session_id``, ``kind``, ``detail``.

        "lost" and "revoked" become notifications (sent from a task; call from the loop).
        """
        kind = str(getattr(event, "kind", ""))
        if kind not in ("lost", "revoked"):
            return
        coro = self.session_lost(
            int(event.session_id), str(getattr(event, "detail", "")), kind == "revoked"
        )
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for notifications started by :meth:`on_session_event`."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


def as_admin_notices(notifier: Notifier) -> AdminNotices:
    """The notifier as the services see it (mypy checks that it conforms)."""
    return notifier
