"""Connecting a session: advice, storage, phone (typed or shared), login code on a digit
keypad, 2FA recovery code, then the recommended account settings (product.md sections 4-5)."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping
from typing import Any

from aiogram import F
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message, ReplyKeyboardRemove
from aiogram.utils.callback_answer import CallbackAnswer

from tgsip.bot import keyboards
from tgsip.bot.access import NOT_OPERATOR, Access
from tgsip.bot.callbacks import KeypadCb, KeypadKey, MenuAction, MenuCb, RecommendCb, StorageCb
from tgsip.bot.labels import CONNECT_ADVICE
from tgsip.bot.routers.common import FeatureRouter, owned_session, refuse, show
from tgsip.bot.services import (
    CodeSentStep,
    ConnectedStep,
    FailedStep,
    LoginFlow,
    RecoveryStep,
    SessionService,
    SettingOutcome,
)
from tgsip.bot.states import Connect
from tgsip.config.sessions import StorageKind
from tgsip.storage import ConfigStore

log = logging.getLogger(__name__)
router = FeatureRouter(__name__)

MAX_CODE_DIGITS = 12
ONLINE_WAIT_S = 5.0
ONLINE_CHECK_S = 0.05
_PHONE = re.compile(r"^\+?\d{6,15}$")
SEPARATED_CODE = re.compile(r"^\d(?:[\s.,_\-]+\d)+$")
RECOMMENDED_TEXT = (
    "Recommended Telegram settings for the session account. Press one to apply it.\n"
    "Some Telegram parameters can only be changed 24 hours after connecting the account. "
    "If you get an error — try again later."
)
UNAVAILABLE = "Connecting sessions is not available on this gateway right now."


class LoginFlows:
    """The open connection attempt of each administrator (at most one each)."""

    def __init__(self) -> None:
        self._flows: dict[int, LoginFlow] = {}

    async def start(self, user_id: int, flow: LoginFlow) -> None:
        await self.drop(user_id)
        self._flows[user_id] = flow

    def get(self, user_id: int) -> LoginFlow | None:
        return self._flows.get(user_id)

    def finish(self, user_id: int) -> None:
        """Forget a flow that completed (nothing to cancel)."""
        self._flows.pop(user_id, None)

    async def drop(self, user_id: int) -> None:
        flow = self._flows.pop(user_id, None)
        if flow is not None:
            await flow.cancel()


async def wait_online(sessions: SessionService, sid: int) -> bool:
    """Give a just-connected session up to :data:`ONLINE_WAIT_S` to come online, so the
    recommended settings can be read (they show ❔ while it is offline)."""
    for _ in range(int(ONLINE_WAIT_S / ONLINE_CHECK_S)):
        if sessions.is_online(sid):
            return True
        await asyncio.sleep(ONLINE_CHECK_S)
    return sessions.is_online(sid)


def setting_id(setting: Any) -> tuple[str, str]:
    """(value for callback data, name for the label) of a recommended setting."""
    return str(getattr(setting, "value", setting)), str(getattr(setting, "name", setting))


async def recommended_view(
    sessions: SessionService, sid: int, failed: tuple[str, ...] = ()
) -> tuple[str, InlineKeyboardMarkup]:
    current: Mapping[Any, bool | None] = await sessions.recommended_state(sid)
    rows = [(*setting_id(k), v) for k, v in current.items()]
    return RECOMMENDED_TEXT, keyboards.recommended(sid, rows, failed)


@router.callback_query(MenuCb.filter(F.action == MenuAction.CONNECT))
async def on_connect(
    query: CallbackQuery,
    state: FSMContext,
    access: Access,
    sessions: SessionService | None,
    storages: tuple[StorageKind, ...],
    callback_answer: CallbackAnswer,
) -> None:
    if not access.can_connect(query.from_user.id):
        refuse(callback_answer, NOT_OPERATOR.format(uid=query.from_user.id))
        return
    if sessions is None:
        refuse(callback_answer, UNAVAILABLE)
        return
    await state.set_state(Connect.storage)
    await show(query, CONNECT_ADVICE, keyboards.storage_choice(storages))


@router.callback_query(Connect.storage, StorageCb.filter())
async def on_storage(
    query: CallbackQuery,
    callback_data: StorageCb,
    state: FSMContext,
    access: Access,
    sessions: SessionService | None,
    login_flows: LoginFlows,
    callback_answer: CallbackAnswer,
) -> None:
    uid = query.from_user.id
    if sessions is None or not access.can_connect(uid):
        refuse(callback_answer, UNAVAILABLE)
        return
    await login_flows.start(uid, sessions.begin_login(uid, callback_data.kind))
    await state.set_state(Connect.phone)
    await show(query, "Storage chosen.", None)
    if query.message is not None and query.bot is not None:
        await query.bot.send_message(
            query.message.chat.id,
            "Send the phone number of the session account in international format "
            "(+1 555 010 0000), or share it with the button below if it is this account.",
            reply_markup=keyboards.share_phone(),
        )


def _phone_of(message: Message) -> str | None:
    raw = message.contact.phone_number if message.contact is not None else message.text or ""
    digits = re.sub(r"[\s()\-.]", "", raw)
    if not digits.startswith("+"):
        digits = "+" + digits
    return digits if _PHONE.match(digits) else None


@router.message(Connect.phone)
async def on_phone(
    message: Message, state: FSMContext, login_flows: LoginFlows, sessions: SessionService | None
) -> None:
    if message.from_user is None:
        return
    flow = login_flows.get(message.from_user.id)
    if flow is None:
        await state.clear()
        await message.answer("This connection attempt has ended. Start again with /gateway.")
        return
    phone = _phone_of(message)
    if phone is None:
        await message.answer(
            "That is not a phone number. Send it in international format, e.g. +1 555 010 0000.",
        )
        return
    await message.answer(
        f"Requesting a login code for {phone}…", reply_markup=ReplyKeyboardRemove()
    )
    step = await flow.submit_phone(phone)
    await _after_step(message, state, login_flows, sessions, step)


async def _send_keypad(message: Message, state: FSMContext, length: int | None) -> None:
    await state.set_state(Connect.code)
    await state.update_data(digits="", length=length)
    await message.answer(_keypad_text("", length), reply_markup=keyboards.keypad())


def _keypad_text(digits: str, length: int | None, note: str = "") -> str:
    shown = "•" * len(digits)
    if length:
        shown += "_" * max(0, length - len(digits))
    head = f"{note}\n\n" if note else ""
    return (
        f"{head}Enter the login code Telegram sent to the session account on the keypad: "
        f"{shown or '_'}\n(Or type it with spaces between the digits: 1 2 3 4 5.)"
    )


async def _after_step(
    message: Message,
    state: FSMContext,
    login_flows: LoginFlows,
    sessions: SessionService | None,
    step: Any,
    keypad_message: Message | None = None,
) -> None:
    """Move the conversation to what the login flow's ``step`` asks for."""
    uid = message.chat.id
    if isinstance(step, ConnectedStep):
        login_flows.finish(uid)
        await state.clear()
        rec = step.session
        done = f"✅ Connected: session {keyboards.session_title(rec)}."
        if getattr(step, "password_removed", False):
            done += (
                "\nThe account's two-step verification password was removed by the recovery: "
                "set a new one from another device."
            )
        await message.answer(done)
        if sessions is not None:
            await wait_online(sessions, rec.id)
            text, markup = await recommended_view(sessions, rec.id)
            await message.answer(text, reply_markup=markup)
        return
    if isinstance(step, CodeSentStep):
        await _send_keypad(message, state, step.length)
        return
    if isinstance(step, RecoveryStep):
        await state.set_state(Connect.recovery)
        await message.answer(
            "Two-step verification is on. Telegram emailed a recovery code to "
            f"{step.email_pattern}; send that code here.\nRecovery removes the account's "
            "two-step verification password: set it again from another device afterwards."
        )
        return
    if isinstance(step, FailedStep):
        text = f"❌ {step.message}"
        if step.retry_after:
            text += f" Try again in {step.retry_after} s."
        current = await state.get_state()
        if not step.can_retry:
            await login_flows.drop(uid)
            await state.clear()
            await message.answer(text + "\nStart again with /gateway.")
            return
        if current == Connect.code.state:
            await state.update_data(digits="")
            data = await state.get_data()
            if keypad_message is not None:
                await keypad_message.edit_text(
                    _keypad_text("", data.get("length"), text), reply_markup=keyboards.keypad()
                )
                return
        await message.answer(text + "\nTry again, or press /cancel.")
        return
    log.error("unexpected login step %s", type(step).__name__)
    await message.answer("Something went wrong. Start again with /gateway.")
    await login_flows.drop(uid)
    await state.clear()


@router.callback_query(Connect.code, KeypadCb.filter())
async def on_keypad(
    query: CallbackQuery,
    callback_data: KeypadCb,
    state: FSMContext,
    login_flows: LoginFlows,
    sessions: SessionService | None,
) -> None:
    if not isinstance(query.message, Message):
        return
    data = await state.get_data()
    digits: str = data.get("digits", "")
    length: int | None = data.get("length")
    key = callback_data.key
    if key is KeypadKey.ERASE:
        digits = digits[:-1]
    elif key is not KeypadKey.SUBMIT and len(digits) < MAX_CODE_DIGITS:
        digits += key.value
    complete = key is KeypadKey.SUBMIT or (length is not None and len(digits) >= length)
    if not complete or not digits:
        await state.update_data(digits=digits)
        await query.message.edit_text(_keypad_text(digits, length), reply_markup=keyboards.keypad())
        return
    flow = login_flows.get(query.from_user.id)
    if flow is None:
        await state.clear()
        await query.message.edit_text("This connection attempt has ended. Start again: /gateway")
        return
    await state.update_data(digits="")
    await query.message.edit_text("Checking the code…")
    step = await flow.submit_code(digits)
    await _after_step(query.message, state, login_flows, sessions, step, query.message)


@router.message(Connect.code)
async def on_typed_code(
    message: Message, state: FSMContext, login_flows: LoginFlows, sessions: SessionService | None
) -> None:
    text = (message.text or "").strip()
    if not SEPARATED_CODE.match(text):
        await message.answer(
            "Use the keypad, or type the code with spaces between the digits (1 2 3 4 5): "
            "Telegram cancels a login code that is sent in a chat as it is."
        )
        return
    flow = login_flows.get(message.chat.id)
    if flow is None:
        await state.clear()
        await message.answer("This connection attempt has ended. Start again with /gateway.")
        return
    step = await flow.submit_code(re.sub(r"\D", "", text))
    await _after_step(message, state, login_flows, sessions, step)


@router.message(Connect.recovery)
async def on_recovery(
    message: Message, state: FSMContext, login_flows: LoginFlows, sessions: SessionService | None
) -> None:
    code = re.sub(r"\s", "", message.text or "")
    if not code.isalnum() or len(code) > 16:
        await message.answer("Send the recovery code from the email (digits only).")
        return
    flow = login_flows.get(message.chat.id)
    if flow is None:
        await state.clear()
        await message.answer("This connection attempt has ended. Start again with /gateway.")
        return
    step = await flow.submit_recovery_code(code)
    await _after_step(message, state, login_flows, sessions, step)


@router.callback_query(RecommendCb.filter())
async def on_recommended(
    query: CallbackQuery,
    callback_data: RecommendCb,
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
    current = await sessions.recommended_state(rec.id)
    setting = next((k for k in current if setting_id(k)[0] == callback_data.setting), None)
    if setting is None:
        refuse(callback_answer, "Unknown setting.")
        return
    result = await sessions.apply_setting(rec.id, setting)
    failed: tuple[str, ...] = ()
    if isinstance(result, SettingOutcome) and not result.ok:
        failed = (callback_data.setting,)
        note = result.message or "Telegram refused the change."
        if result.retry_after_hours:
            note += f" Try again in {result.retry_after_hours} hours."
        callback_answer.text = note
        callback_answer.show_alert = True
    else:
        callback_answer.text = "Done."
    text, markup = await recommended_view(sessions, rec.id, failed)
    await show(query, text, markup)
