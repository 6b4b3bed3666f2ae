"""A session's settings: toggles, messages processing, and the advanced actions (Unlink,
Assign administrator, shared subscription, Disconnect) — product.md section 6."""

from __future__ import annotations

import contextlib
import re
import string

import msgspec
from aiogram import Bot, F
from aiogram.exceptions import TelegramAPIError
from aiogram.fsm.context import FSMContext
from aiogram.types import (
    CallbackQuery,
    InlineKeyboardMarkup,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
)
from aiogram.utils.callback_answer import CallbackAnswer

from tgsip.bot import keyboards, texts
from tgsip.bot.access import Access
from tgsip.bot.callbacks import (
    AssignCb,
    SessionAction,
    SessionCb,
    SessionText,
    SessionTextCb,
    SessionToggle,
    ToggleCb,
)
from tgsip.bot.labels import PRODUCT, label
from tgsip.bot.routers.common import FeatureRouter, owned_session, refuse, show
from tgsip.bot.routers.connect import UNAVAILABLE, recommended_view
from tgsip.bot.services import Clock, SessionService
from tgsip.bot.states import AssignAdmin, EditSession
from tgsip.config.sessions import SessionRecord, SessionSettings
from tgsip.storage import ConfigStore

router = FeatureRouter(__name__)

CONFIRM_TTL_S = 300
"""A confirmation that hands a session to another user expires after 5 minutes."""
MAX_AUTOREPLY = 1024
MAX_INLINE_QUERY = 256
QUERY_FIELDS = frozenset({"text", "userid", "username", "phone", "name"})
_BOT_USERNAME = re.compile(r"^@?([A-Za-z][A-Za-z0-9_]{1,28}[Bb][Oo][Tt])$")
_FORMATTER = string.Formatter()

_MESSAGE_TOGGLES = {
    SessionToggle.MESSAGES,
    SessionToggle.CALLBACK,
    SessionToggle.INLINE_BOT,
    SessionToggle.AUTOREPLY,
}


async def session_view(
    store: ConfigStore, sessions: SessionService | None, rec: SessionRecord
) -> tuple[str, InlineKeyboardMarkup]:
    n_lines = len(await store.list_lines(rec.id))
    online = sessions.is_online(rec.id) if sessions is not None else False
    return texts.session_card(rec, online, n_lines), keyboards.session_menu(rec, n_lines)


def messages_text(rec: SessionRecord) -> str:
    return (
        f"{label('ARBITRARY_CHECK')} of session {keyboards.session_title(rec)}: how the session "
        "reacts to text messages. Callback calls the user back; otherwise the Inline bot "
        "answers; otherwise the Autoreply text is sent."
    )


def advanced_text(rec: SessionRecord) -> str:
    return f"Advanced settings of session {keyboards.session_title(rec)}."


@router.callback_query(SessionCb.filter(F.action == SessionAction.OPEN))
@router.callback_query(SessionCb.filter(F.action == SessionAction.MESSAGES))
@router.callback_query(SessionCb.filter(F.action == SessionAction.ADVANCED))
@router.callback_query(SessionCb.filter(F.action == SessionAction.ASSIGN))
async def on_open(
    query: CallbackQuery,
    callback_data: SessionCb,
    state: FSMContext,
    store: ConfigStore,
    access: Access,
    sessions: SessionService | None,
    callback_answer: CallbackAnswer,
) -> None:
    rec, why = await owned_session(store, access, callback_data.sid, query.from_user.id)
    if rec is None:
        refuse(callback_answer, why)
        return
    await state.clear()
    action = callback_data.action
    if action is SessionAction.MESSAGES:
        await show(query, messages_text(rec), keyboards.messages_menu(rec))
    elif action in (SessionAction.ADVANCED, SessionAction.ASSIGN):
        revealed = action is SessionAction.ASSIGN
        await show(query, advanced_text(rec), keyboards.advanced_menu(rec, revealed))
    else:
        await show(query, *await session_view(store, sessions, rec))


@router.callback_query(SessionCb.filter(F.action == SessionAction.CONFIGURE))
async def on_configure(
    query: CallbackQuery,
    callback_data: SessionCb,
    store: ConfigStore,
    access: Access,
    sessions: SessionService | None,
    callback_answer: CallbackAnswer,
) -> None:
    rec, why = await owned_session(store, access, callback_data.sid, query.from_user.id)
    if rec is None:
        refuse(callback_answer, why)
        return
    if sessions is None:
        refuse(callback_answer, UNAVAILABLE)
        return
    await show(query, *await recommended_view(sessions, rec.id))


@router.callback_query(ToggleCb.filter())
async def on_toggle(
    query: CallbackQuery,
    callback_data: ToggleCb,
    store: ConfigStore,
    access: Access,
    sessions: SessionService | None,
    callback_answer: CallbackAnswer,
) -> None:
    rec, why = await owned_session(store, access, callback_data.sid, query.from_user.id)
    if rec is None:
        refuse(callback_answer, why)
        return
    field = callback_data.field
    value = not bool(getattr(rec.settings, field.value))
    if value and field is SessionToggle.INLINE_BOT and not rec.settings.inline_bot:
        refuse(callback_answer, "Choose the inline bot first.")
        return
    if value and field is SessionToggle.AUTOREPLY and not rec.settings.autoreply_text:
        refuse(callback_answer, "Write the autoreply text first.")
        return
    settings = msgspec.structs.replace(rec.settings, **{field.value: value})
    rec = msgspec.structs.replace(rec, settings=settings)
    await store.update_session(rec)
    if field in _MESSAGE_TOGGLES:
        await show(query, messages_text(rec), keyboards.messages_menu(rec))
    elif field is SessionToggle.SHARED:
        await show(query, advanced_text(rec), keyboards.advanced_menu(rec))
    else:
        await show(query, *await session_view(store, sessions, rec))


_PROMPTS = {
    SessionText.INLINE_BOT: "Choose your inline bot with the button below or send its username "
    "(e.g. @helpdesk_bot); - removes it, /cancel keeps it. It receives the messages the "
    "gateway does not turn into calls.",
    SessionText.INLINE_QUERY: "Send the inline query format (at most 256 characters). "
    "Placeholders: {text} {userid} {username} {phone} {name}.",
    SessionText.AUTOREPLY: "Send the autoreply text, or - to remove it. Placeholders: "
    "{text} {userid} {username} {phone} {name}.",
}


@router.callback_query(SessionTextCb.filter())
async def on_edit_text(
    query: CallbackQuery,
    callback_data: SessionTextCb,
    state: FSMContext,
    store: ConfigStore,
    access: Access,
    callback_answer: CallbackAnswer,
) -> None:
    rec, why = await owned_session(store, access, callback_data.sid, query.from_user.id)
    if rec is None:
        refuse(callback_answer, why)
        return
    current = str(getattr(rec.settings, callback_data.field.value)) or "—"
    await state.set_state(EditSession.value)
    await state.update_data(sid=rec.id, field=callback_data.field.value)
    if query.message is not None:
        markup: InlineKeyboardMarkup | ReplyKeyboardMarkup = keyboards.cancel()
        if callback_data.field is SessionText.INLINE_BOT:
            markup = keyboards.select_bot(rec.id)
        await query.message.answer(
            f"{_PROMPTS[callback_data.field]}\nCurrent: {current}", reply_markup=markup
        )


class InvalidValue(ValueError):
    """A typed session setting was refused; ``str(e)`` is the message for the administrator."""


def _check_placeholders(text: str) -> None:
    try:
        fields = [f for _, f, _, _ in _FORMATTER.parse(text) if f is not None]
    except ValueError as exc:
        raise InvalidValue(f"Unbalanced braces: {exc}.") from exc
    for f in fields:
        if f not in QUERY_FIELDS:
            raise InvalidValue(f"Unknown placeholder {{{f}}}.")


def parse_session_text(field: SessionText, text: str, settings: SessionSettings) -> SessionSettings:
    """The settings with ``field`` set from typed ``text`` (one pair of backticks stripped; ``-``
    clears the inline bot or the autoreply). Raises InvalidValue with a message."""
    text = text.strip()
    if len(text) >= 2 and text[0] == "`" and text[-1] == "`":
        text = text[1:-1].strip()
    clear = text in ("-", "—")
    if field is SessionText.INLINE_BOT:
        if clear:
            return msgspec.structs.replace(settings, inline_bot="", inline_bot_enabled=False)
        m = _BOT_USERNAME.match(text)
        if m is None:
            raise InvalidValue("A bot username has 5-32 letters, digits or _ and ends with “bot”.")
        return msgspec.structs.replace(settings, inline_bot=m.group(1))
    if field is SessionText.INLINE_QUERY:
        if not text or len(text) > MAX_INLINE_QUERY:
            raise InvalidValue(f"The inline query format needs 1-{MAX_INLINE_QUERY} characters.")
        _check_placeholders(text)
        return msgspec.structs.replace(settings, inline_query=text)
    if clear:
        return msgspec.structs.replace(settings, autoreply_text="", autoreply_enabled=False)
    if not text or len(text) > MAX_AUTOREPLY:
        raise InvalidValue(f"The autoreply needs 1-{MAX_AUTOREPLY} characters.")
    _check_placeholders(text)
    return msgspec.structs.replace(settings, autoreply_text=text)


@router.message(EditSession.value)
async def on_session_value(
    message: Message, state: FSMContext, store: ConfigStore, access: Access
) -> None:
    data = await state.get_data()
    rec, why = await owned_session(store, access, int(data["sid"]), message.chat.id)
    if rec is None:
        await state.clear()
        await message.answer(why)
        return
    field = SessionText(data["field"])
    text = message.text or ""
    shared = message.users_shared
    if shared is not None and field is SessionText.INLINE_BOT and shared.request_id == rec.id:
        text = next((u.username for u in shared.users if u.username), "") or "(no username)"
    try:
        settings = parse_session_text(field, text, rec.settings)
    except InvalidValue as exc:
        old = str(getattr(rec.settings, field.value)) or "—"
        await message.answer(
            f"❌ {exc}\nThe old value is kept: {old}\nSend another value or press Cancel.",
            reply_markup=keyboards.cancel(),
        )
        return
    rec = msgspec.structs.replace(rec, settings=settings)
    await store.update_session(rec)
    await state.clear()
    if field is SessionText.INLINE_BOT:
        chosen = f"@{settings.inline_bot}" if settings.inline_bot else "none"
        await message.answer(f"Inline bot: {chosen}.", reply_markup=ReplyKeyboardRemove())
    await message.answer(
        f"Saved.\n\n{messages_text(rec)}", reply_markup=keyboards.messages_menu(rec)
    )


# --- advanced ------------------------------------------------------------------------------


@router.callback_query(SessionCb.filter(F.action == SessionAction.UNLINK))
@router.callback_query(SessionCb.filter(F.action == SessionAction.UNLINK_YES))
async def on_unlink(
    query: CallbackQuery,
    callback_data: SessionCb,
    store: ConfigStore,
    access: Access,
    callback_answer: CallbackAnswer,
) -> None:
    rec, why = await owned_session(store, access, callback_data.sid, query.from_user.id)
    if rec is None:
        refuse(callback_answer, why)
        return
    if callback_data.action is SessionAction.UNLINK:
        await show(
            query,
            f"Unlink yourself from session {keyboards.session_title(rec)}? You will no longer "
            f"see it; the operators of this {PRODUCT} gateway will manage it.",
            keyboards.unlink_confirm(rec.id),
        )
        return
    await store.update_session(msgspec.structs.replace(rec, admin_id=None))
    await show(query, f"Session {keyboards.session_title(rec)} has no administrator now.", None)


@router.callback_query(SessionCb.filter(F.action == SessionAction.SELECT_USER))
async def on_select_user(
    query: CallbackQuery,
    callback_data: SessionCb,
    state: FSMContext,
    store: ConfigStore,
    access: Access,
    callback_answer: CallbackAnswer,
) -> None:
    rec, why = await owned_session(store, access, callback_data.sid, query.from_user.id)
    if rec is None:
        refuse(callback_answer, why)
        return
    await state.set_state(AssignAdmin.pick)
    await state.update_data(sid=rec.id)
    if query.message is not None:
        await query.message.answer(
            f"Choose the new administrator of session {keyboards.session_title(rec)} with the "
            "button below (or /cancel).",
            reply_markup=keyboards.select_user(rec.id),
        )


@router.message(AssignAdmin.pick, F.users_shared)
async def on_user_picked(
    message: Message, state: FSMContext, store: ConfigStore, access: Access, clock: Clock
) -> None:
    data = await state.get_data()
    rec, why = await owned_session(store, access, int(data["sid"]), message.chat.id)
    await state.clear()
    if rec is None:
        await message.answer(why, reply_markup=ReplyKeyboardRemove())
        return
    shared = message.users_shared
    if shared is None or shared.request_id != rec.id or not shared.users:
        await message.answer("No user was chosen.", reply_markup=ReplyKeyboardRemove())
        return
    user = shared.users[0]
    who = user.first_name or f"id {user.user_id}"
    await message.answer(f"Chosen: {who}.", reply_markup=ReplyKeyboardRemove())
    await message.answer(
        f"Make {who} (id {user.user_id}) the administrator of session "
        f"{keyboards.session_title(rec)}? You will lose access to it. This confirmation "
        "expires in 5 minutes.",
        reply_markup=keyboards.assign_confirm(rec.id, user.user_id, int(clock())),
    )


@router.message(AssignAdmin.pick)
async def on_pick_other(message: Message) -> None:
    await message.answer("Use the button below to choose a user, or /cancel.")


@router.callback_query(AssignCb.filter())
async def on_assign(
    query: CallbackQuery,
    callback_data: AssignCb,
    bot: Bot,
    store: ConfigStore,
    access: Access,
    clock: Clock,
    callback_answer: CallbackAnswer,
) -> None:
    rec, why = await owned_session(store, access, callback_data.sid, query.from_user.id)
    if rec is None:
        refuse(callback_answer, why)
        return
    if not callback_data.yes:
        await show(query, "Cancelled: the administrator stays the same.", None)
        return
    if clock() - callback_data.issued > CONFIRM_TTL_S:
        await show(query, "This confirmation has expired. Choose the user again.", None)
        return
    await store.update_session(msgspec.structs.replace(rec, admin_id=callback_data.uid))
    await show(
        query, f"Done: user {callback_data.uid} administers {keyboards.session_title(rec)}.", None
    )
    with contextlib.suppress(TelegramAPIError):
        await bot.send_message(
            callback_data.uid,
            f"You are now the administrator of session {keyboards.session_title(rec)} of this "
            f"{PRODUCT} gateway. Send /gateway to manage it.",
        )


@router.callback_query(SessionCb.filter(F.action == SessionAction.LOGOUT))
@router.callback_query(SessionCb.filter(F.action == SessionAction.LOGOUT_KEEP))
@router.callback_query(SessionCb.filter(F.action == SessionAction.LOGOUT_CLEAR))
async def on_logout(
    query: CallbackQuery,
    callback_data: SessionCb,
    store: ConfigStore,
    access: Access,
    sessions: SessionService | None,
    callback_answer: CallbackAnswer,
) -> None:
    rec, why = await owned_session(store, access, callback_data.sid, query.from_user.id)
    if rec is None:
        refuse(callback_answer, why)
        return
    if callback_data.action is SessionAction.LOGOUT:
        await show(
            query,
            f"Disconnect session {keyboards.session_title(rec)}? The gateway's device is removed "
            "from the account and the session is reset. Clear its SIP lines as well?",
            keyboards.logout_confirm(rec.id),
        )
        return
    if sessions is None:
        refuse(callback_answer, UNAVAILABLE)
        return
    clear = callback_data.action is SessionAction.LOGOUT_CLEAR
    await sessions.disconnect(rec.id, clear_lines=clear)
    kept = "cleared" if clear else "kept"
    await show(
        query, f"Session {keyboards.session_title(rec)} is disconnected; SIP lines {kept}.", None
    )
