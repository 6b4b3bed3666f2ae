"""/start, /help, /gateway, /cancel and the session list."""

from __future__ import annotations

from aiogram import F
from aiogram.filters import Command, CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message, ReplyKeyboardRemove

from tgsip.bot import keyboards, texts
from tgsip.bot.access import NOT_OPERATOR, Access
from tgsip.bot.callbacks import MenuAction, MenuCb
from tgsip.bot.labels import HELP_TEXT, PRODUCT
from tgsip.bot.routers.common import FeatureRouter, show
from tgsip.bot.routers.connect import LoginFlows
from tgsip.bot.services import SessionService
from tgsip.config.sessions import SessionRecord
from tgsip.storage import ConfigStore

router = FeatureRouter(__name__)
"""Commands and menu buttons: included first, so a command always wins over a pending input."""
fallback = FeatureRouter(__name__ + ".fallback")
"""The catch-all for messages nothing else wanted: included last."""


async def visible_sessions(store: ConfigStore, access: Access, user_id: int) -> list[SessionRecord]:
    """The sessions ``user_id`` manages (operators also see unlinked ones)."""
    return [s for s in await store.list_sessions() if access.can_manage(s, user_id)]


async def session_list(
    store: ConfigStore, access: Access, sessions: SessionService | None, user_id: int
) -> tuple[str, InlineKeyboardMarkup | None]:
    mine = await visible_sessions(store, access, user_id)
    can_connect = access.can_connect(user_id)
    if not mine and not can_connect:
        return NOT_OPERATOR.format(uid=user_id), None
    online = {s.id: sessions.is_online(s.id) if sessions else False for s in mine}
    return texts.session_list(mine, can_connect), keyboards.main_menu(mine, online, can_connect)


@router.message(CommandStart())
@router.message(Command("gateway"))
async def on_gateway(
    message: Message,
    state: FSMContext,
    store: ConfigStore,
    access: Access,
    sessions: SessionService | None,
    login_flows: LoginFlows,
) -> None:
    if message.from_user is None:
        return
    await state.clear()
    await login_flows.drop(message.from_user.id)
    text, markup = await session_list(store, access, sessions, message.from_user.id)
    if message.text and message.text.startswith("/start"):
        text = f"Welcome to the {PRODUCT} gateway.\n\n{text}"
    await message.answer(text, reply_markup=markup)


@router.message(Command("help"))
async def on_help(message: Message) -> None:
    await message.answer(HELP_TEXT, reply_markup=keyboards.help_menu())


@router.message(Command("cancel"))
async def on_cancel(message: Message, state: FSMContext, login_flows: LoginFlows) -> None:
    await state.clear()
    await login_flows.drop(message.chat.id)
    await message.answer("Cancelled.", reply_markup=ReplyKeyboardRemove())


@router.callback_query(MenuCb.filter(F.action == MenuAction.LIST))
async def on_list(
    query: CallbackQuery,
    state: FSMContext,
    store: ConfigStore,
    access: Access,
    sessions: SessionService | None,
) -> None:
    await state.clear()
    text, markup = await session_list(store, access, sessions, query.from_user.id)
    await show(query, text, markup)


@router.callback_query(MenuCb.filter(F.action == MenuAction.HELP))
async def on_help_button(query: CallbackQuery) -> None:
    await show(query, HELP_TEXT, keyboards.help_menu())


@router.callback_query(MenuCb.filter(F.action == MenuAction.CANCEL))
async def on_cancel_button(
    query: CallbackQuery, state: FSMContext, login_flows: LoginFlows
) -> None:
    await state.clear()
    await login_flows.drop(query.from_user.id)
    await show(query, "Cancelled. /gateway shows your sessions.", None)


@fallback.message()
async def on_anything_else(message: Message) -> None:
    await message.answer("Send /gateway to see your sessions, or /help.")
