"""The bot's composition root: routers, middlewares and the services handlers receive.

Handlers get their dependencies as keyword arguments from the dispatcher's workflow data:
``store`` (ConfigStore), ``access`` (Access), ``sessions`` (SessionService or None when not
wired), ``line_states`` (LineStateProvider), ``clock``, ``login_flows``, ``sip_address`` (the
host:port the PBXs use) and ``storages`` (the session storages offered when connecting).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

from aiogram import Dispatcher
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.utils.callback_answer import CallbackAnswerMiddleware

from tgsip.bot.access import Access
from tgsip.bot.routers import routers
from tgsip.bot.routers.connect import LoginFlows
from tgsip.bot.services import Clock, LineStateProvider, NoLineState, SessionService
from tgsip.config.sessions import StorageKind
from tgsip.storage import ConfigStore


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
    dp.include_routers(*routers())
    return dp
