"""Helpers shared by the feature routers: loading records with the access check, editing the
menu message in place."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, TypeVar

from aiogram import Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.callback_answer import CallbackAnswer

from tgsip.bot.access import REFUSAL, Access
from tgsip.config.lines import SipLine
from tgsip.config.sessions import SessionRecord
from tgsip.storage import ConfigStore

_H = TypeVar("_H", bound=Callable[..., Any])


class FeatureRouter:
    """Collects a feature's handlers at import time; :meth:`build` makes a fresh aiogram
    Router with them (a Router can join only one Dispatcher, and tests build several)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._handlers: list[tuple[str, tuple[Any, ...], Callable[..., Any]]] = []

    def _collect(self, observer: str, filters: tuple[Any, ...]) -> Callable[[_H], _H]:
        def register(handler: _H) -> _H:
            self._handlers.append((observer, filters, handler))
            return handler

        return register

    def message(self, *filters: Any) -> Callable[[_H], _H]:
        return self._collect("message", filters)

    def callback_query(self, *filters: Any) -> Callable[[_H], _H]:
        return self._collect("callback_query", filters)

    def build(self) -> Router:
        router = Router(name=self.name)
        # Stacked decorators register bottom-up; keep the source order of the functions.
        for observer, filters, handler in self._handlers:
            getattr(router, observer).register(handler, *filters)
        return router


GONE = "This session no longer exists."
LINE_GONE = "This SIP line no longer exists."


async def owned_session(
    store: ConfigStore, access: Access, sid: int, user_id: int
) -> tuple[SessionRecord | None, str]:
    """The session when ``user_id`` may manage it, else (None, a polite refusal)."""
    rec = await store.get_session(sid)
    if rec is None:
        return None, GONE
    if not access.can_manage(rec, user_id):
        return None, REFUSAL
    return rec, ""


async def owned_line(
    store: ConfigStore, access: Access, lid: int, user_id: int
) -> tuple[SipLine | None, str]:
    """The line when ``user_id`` manages its session, else (None, a polite refusal)."""
    line = await store.get_line(lid)
    if line is None:
        return None, LINE_GONE
    rec, why = await owned_session(store, access, line.session_id, user_id)
    if rec is None:
        return None, why
    return line, ""


def refuse(answer: CallbackAnswer, why: str) -> None:
    answer.text = why
    answer.show_alert = True


async def show(query: CallbackQuery, text: str, markup: InlineKeyboardMarkup | None) -> None:
    """Replace the pressed message's text and keyboard (or send anew when it is gone)."""
    if isinstance(query.message, Message):
        with contextlib.suppress(TelegramBadRequest):
            await query.message.edit_text(text, reply_markup=markup)
            return
    if query.message is not None and query.bot is not None:
        await query.bot.send_message(query.message.chat.id, text, reply_markup=markup)
