"""The administrator bot (aiogram 3): sessions, their settings and SIP lines.

``create_dispatcher`` builds it from the gateway's services; ``Notifier`` sends the
administrators' notifications; ``LineStateProvider`` is what the SIP service implements so the
bot can show a line's live state.
"""

from tgsip.bot.access import Access
from tgsip.bot.dispatcher import create_dispatcher
from tgsip.bot.notifier import NoticeKind, Notifier
from tgsip.bot.services import (
    LineState,
    LineStateProvider,
    LineStateView,
    NoLineState,
    SessionService,
)
from tgsip.bot.webhook import webhook_app

__all__ = [
    "Access",
    "LineState",
    "LineStateProvider",
    "LineStateView",
    "NoLineState",
    "NoticeKind",
    "Notifier",
    "SessionService",
    "create_dispatcher",
    "webhook_app",
]
