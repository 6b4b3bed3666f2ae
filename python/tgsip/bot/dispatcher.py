"""The bot's composition root: routers, middlewares and the services handlers receive.

Handlers get their dependencies as keyword arguments from the dispatcher's workflow data:
``store`` (ConfigStore), ``access`` (Access), ``sessions`` (SessionService or None when not
wired), ``line_states`` (LineStateProvider), ``clock``, ``login_flows``, ``sip_address`` (the
host:port the PBXs use) and ``storages`` (the session storages offered when connecting).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from aiogram import Dispatcher
from aiogram.exceptions import TelegramAPIError
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.types import ErrorEvent, TelegramObject
from aiogram.utils.callback_answer import CallbackAnswer, CallbackAnswerMiddleware

from tgsip.bot.access import Access
from tgsip.bot.routers import routers
from tgsip.bot.routers.connect import LoginFlows
from tgsip.bot.services import Clock, LineStateProvider, NoLineState, SessionService
from tgsip.config.sessions import StorageKind
from tgsip.storage import ConfigStore

log = logging.getLogger(__name__)

FAILED = "Something went wrong on the gateway; nothing was changed. Try again later."


async def failed_press_answer(
    handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
    event: TelegramObject,
    data: dict[str, Any],
) -> Any:
    """Inside CallbackAnswerMiddleware: a failing handler's button press is answered with
    :data:`FAILED` (the error still propagates to :func:`on_error`)."""
    try:
        return await handler(event, data)
    except Exception:
        answer = data.get("callback_answer")
        if isinstance(answer, CallbackAnswer) and not answer.answered:
            answer.text = FAILED
            answer.show_alert = True
        raise


async def on_error(event: ErrorEvent) -> bool:
    """A handler failed: log it (type and traceback, no message texts) and tell the user."""
    log.error(
        "bot update %d failed: %s",
        event.update.update_id,
        type(event.exception).__name__,
        exc_info=event.exception,
    )
    with contextlib.suppress(TelegramAPIError):
        if event.update.callback_query is not None:
            await event.update.callback_query.answer(FAILED, show_alert=True)
        elif event.update.message is not None:
            await event.update.message.answer(FAILED)
    return True


def create_dispatcher(
    store: ConfigStore,
    admins: Iterable[int],
    sessions: SessionService | None = None,
    line_states: LineStateProvider | None = None,
    sip_address: str = "127.0.0.1:5060",
    storages: Sequence[StorageKind] = (StorageKind.EMBEDDED,),
    clock: Clock = time.time,
) -> Dispatcher:
    """A Dispatcher with every feature router; run it with polling or a webhook."""
    dp = Dispatcher(
        storage=MemoryStorage(),
        store=store,
        access=Access(admins),
        sessions=sessions,
        line_states=line_states or NoLineState(),
        sip_address=sip_address,
        storages=tuple(storages),
        clock=clock,
        login_flows=LoginFlows(),
    )
    dp.callback_query.middleware(CallbackAnswerMiddleware())
    dp.callback_query.middleware(failed_press_answer)
    dp.errors.register(on_error)
    dp.include_routers(*routers())
    return dp
