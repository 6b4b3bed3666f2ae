"""Who may do what in the bot.

* A session is seen and changed only by its administrator (``SessionRecord.admin_id``).
* ``gateway.admins`` (the configuration) names the operators: they may connect new sessions
  and manage sessions that have no administrator (after Unlink).
"""

from __future__ import annotations

from collections.abc import Iterable

from tgsip.config.sessions import SessionRecord

REFUSAL = "Sorry, this session is managed by another administrator."
NOT_OPERATOR = (
    "Sorry, this gateway is private. Ask its operator to add your Telegram id {uid} to "
    "gateway.admins."
)


class Access:
    def __init__(self, operators: Iterable[int]) -> None:
        self.operators = frozenset(operators)

    def can_connect(self, user_id: int) -> bool:
        return user_id in self.operators

    def can_manage(self, session: SessionRecord, user_id: int) -> bool:
        if session.admin_id is None:
            return user_id in self.operators
        return session.admin_id == user_id

    def recipients(self, session: SessionRecord) -> list[int]:
        """Who hears about the session: its administrator, or the operators when unlinked."""
        if session.admin_id is not None:
            return [session.admin_id]
        return sorted(self.operators)
