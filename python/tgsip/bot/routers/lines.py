"""SIP lines of a session: create, edit every field with validation, show the account, reset
the password, cycle the transport, delete, and the live state (product.md sections 7-8)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import msgspec
from aiogram import F
from aiogram.exceptions import TelegramAPIError
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.callback_answer import CallbackAnswer

from tgsip.bot import keyboards, texts
from tgsip.bot.access import Access
from tgsip.bot.callbacks import (
    LineAction,
    LineCb,
    LineField,
    LineFieldCb,
    NewLineCb,
    SessionAction,
    SessionCb,
)
from tgsip.bot.labels import label
from tgsip.bot.routers.common import FeatureRouter, owned_line, owned_session, refuse, show
from tgsip.bot.services import LineStateProvider
from tgsip.bot.states import EditLine
from tgsip.calls.callerid import NAME_FIELDS, PHONE_FIELDS, TemplateError, parse_templates
from tgsip.calls.dialrules import DialRuleError, parse_dial_rules
from tgsip.config.lines import (
    LineKind,
    SipLine,
    ValidationError,
    generate_password,
    ip_ip_conflicts,
    new_gateway_to_pbx,
    new_ip_ip,
    new_pbx_to_gateway,
    parse_address_port,
    parse_codecs,
    parse_dtmf_methods,
    parse_field_value,
    parse_host,
    parse_number,
    parse_priority,
    parse_trusted_ips,
    strip_backticks,
)
from tgsip.storage import ConfigStore

router = FeatureRouter(__name__)

_NEW = {
    LineKind.PBX_TO_GATEWAY: new_pbx_to_gateway,
    LineKind.GATEWAY_TO_PBX: new_gateway_to_pbx,
    LineKind.IP_IP: new_ip_ip,
}

FIELD_LABELS = {
    LineField.LOGIN: "LOGIN",
    LineField.PASSWORD: "PASSWORD",
    LineField.DOMAIN: "DOMAIN",
    LineField.PROXY: "REGISTRAR",
    LineField.ADDRESS: "ADDRESS_PORT",
    LineField.NUMBER: "GATEWAY_OUT_NUMBER",
    LineField.FIELD_VALUE: "FIELD_VALUE",
    LineField.TRUSTED_IPS: "TRUSTED_IPS",
    LineField.CODECS: "FORMATS",
    LineField.DTMF: "DTMF_METHODS",
    LineField.DIAL_RULES: "DIAL_RULES",
    LineField.CALLER_PHONE: "CALLER_PHONE",
    LineField.CALLER_NAME: "CALLER_NAME",
    LineField.PRIORITY: "PRIORITY",
}

FIELDS_OF_KIND = {
    LineKind.PBX_TO_GATEWAY: {LineField.TRUSTED_IPS},
    LineKind.GATEWAY_TO_PBX: {
        LineField.LOGIN,
        LineField.PASSWORD,
        LineField.DOMAIN,
        LineField.PROXY,
        LineField.NUMBER,
    },
    LineKind.IP_IP: {LineField.ADDRESS, LineField.NUMBER, LineField.FIELD_VALUE},
}
COMMON_FIELDS = {
    LineField.CODECS,
    LineField.DTMF,
    LineField.DIAL_RULES,
    LineField.CALLER_PHONE,
    LineField.CALLER_NAME,
    LineField.PRIORITY,
}

_HINTS = {
    LineField.LOGIN: "the SIP login (account name) on the PBX",
    LineField.PASSWORD: "the SIP password on the PBX (your message is deleted right away)",
    LineField.DOMAIN: "the PBX's SIP domain or address, e.g. pbx.example.com or 192.0.2.10:5060",
    LineField.PROXY: "the outbound proxy, only if it differs from Domain (- clears it)",
    LineField.ADDRESS: "the PBX's IP and port, e.g. 192.0.2.10:5060",
    LineField.NUMBER: "the number called on the PBX when a user calls without a message first",
    LineField.FIELD_VALUE: "an extra SIP header Field:Value that tells this line apart, e.g. "
    "X-Trunk: office2 (- clears it)",
    LineField.TRUSTED_IPS: "IP addresses or subnets allowed to use this account, separated by "
    "commas (- allows any)",
    LineField.CODECS: "audio codecs in order of preference, e.g. opus,alaw,mulaw",
    LineField.DTMF: "DTMF methods in order of preference: rfc2833, info, inband",
    LineField.DIAL_RULES: "dial rules, one per line: LEFT=RIGHT rewrites, a rule without = is a "
    "filter, = alone resets. Wrap each rule in `backticks`",
    LineField.CALLER_PHONE: "Caller ID templates, one per line, with {phone} {username} {userid}; "
    "the first line whose placeholders all have values is used",
    LineField.CALLER_NAME: "Caller name templates, one per line, with {name} {name_ascii} "
    "{phone} {username} {userid}",
    LineField.PRIORITY: "0-99: lower is called earlier, equal priorities ring together",
}

_CLEARABLE = {LineField.PROXY, LineField.FIELD_VALUE, LineField.TRUSTED_IPS, LineField.NUMBER}


def shown_value(line: SipLine, field: LineField) -> str:
    """The field's current value as text (never the password)."""
    if field is LineField.PASSWORD:
        return "(set)" if line.password else "—"
    value = getattr(line, field.value)
    if isinstance(value, tuple):
        joiner = (
            "\n"
            if field in (LineField.DIAL_RULES, LineField.CALLER_PHONE, LineField.CALLER_NAME)
            else ","
        )
        value = joiner.join(str(v) for v in value)
    return str(value) if str(value) else "—"  # fmt: skip


def _cleared(text: str) -> str:
    stripped = strip_backticks(text)
    return "" if stripped in ("-", "—") else text


_PARSERS: dict[LineField, Callable[[str], Any]] = {
    LineField.LOGIN: parse_number,
    LineField.DOMAIN: parse_host,
    LineField.PROXY: lambda t: parse_host(t) if _cleared(t) else "",
    LineField.ADDRESS: parse_address_port,
    LineField.NUMBER: lambda t: parse_number(t) if _cleared(t) else "",
    LineField.FIELD_VALUE: lambda t: parse_field_value(_cleared(t)),
    LineField.TRUSTED_IPS: lambda t: parse_trusted_ips(_cleared(t)),
    LineField.CODECS: parse_codecs,
    LineField.DTMF: parse_dtmf_methods,
    LineField.CALLER_PHONE: lambda t: parse_templates(t, PHONE_FIELDS),
    LineField.CALLER_NAME: lambda t: parse_templates(t, NAME_FIELDS),
    LineField.PRIORITY: parse_priority,
}


def _parse_password(text: str) -> str:
    value = strip_backticks(text)
    if not value or len(value) > 128 or any(ord(c) < 33 or ord(c) == 127 for c in value):
        raise ValidationError("A password is 1-128 printable characters without spaces.")
    return value


async def parse_line_value(field: LineField, text: str) -> Any:
    """Typed text -> the field's value; raises ValueError (ValidationError, DialRuleError,
    TemplateError) with a message for the administrator."""
    if field is LineField.DIAL_RULES:
        # The regex probe runs a child process under a time bound: keep the loop free.
        return await asyncio.to_thread(parse_dial_rules, text)
    if field is LineField.PASSWORD:
        return _parse_password(text)
    return _PARSERS[field](text)


async def line_view(
    line: SipLine, line_states: LineStateProvider, sip_address: str
) -> tuple[str, InlineKeyboardMarkup]:
    state = line_states.line_state(line.id)
    return texts.line_card(line, state, sip_address), keyboards.line_menu(line)


@router.callback_query(SessionCb.filter(F.action == SessionAction.LINES))
async def on_lines(
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
    await state.clear()
    lines = await store.list_lines(rec.id)
    text = f"SIP lines of session {keyboards.session_title(rec)}: {len(lines)}."
    await show(query, text, keyboards.lines_menu(rec.id, lines))


@router.callback_query(NewLineCb.filter())
async def on_new_line(
    query: CallbackQuery,
    callback_data: NewLineCb,
    store: ConfigStore,
    access: Access,
    line_states: LineStateProvider,
    sip_address: str,
    callback_answer: CallbackAnswer,
) -> None:
    rec, why = await owned_session(store, access, callback_data.sid, query.from_user.id)
    if rec is None:
        refuse(callback_answer, why)
        return
    line = await store.create_line(_NEW[callback_data.kind](rec.id))
    await show(query, *await line_view(line, line_states, sip_address))
    if line.kind is LineKind.PBX_TO_GATEWAY and query.message is not None:
        await query.message.answer(texts.account(line, sip_address))


@router.callback_query(LineCb.filter())
async def on_line_action(
    query: CallbackQuery,
    callback_data: LineCb,
    state: FSMContext,
    store: ConfigStore,
    access: Access,
    line_states: LineStateProvider,
    sip_address: str,
    callback_answer: CallbackAnswer,
) -> None:
    line, why = await owned_line(store, access, callback_data.lid, query.from_user.id)
    if line is None:
        refuse(callback_answer, why)
        return
    action = callback_data.action
    if action is LineAction.OPEN:
        await state.clear()
    elif action in (LineAction.SHOW, LineAction.RESET):
        if line.kind is not LineKind.PBX_TO_GATEWAY:
            refuse(callback_answer, "Only PBX→gateway lines have a generated account.")
            return
        if action is LineAction.RESET:
            line = msgspec.structs.replace(line, password=generate_password())
            await store.update_line(line)
            callback_answer.text = "New password generated: update it on the PBX."
        if query.message is not None:
            await query.message.answer(texts.account(line, sip_address))
    elif action is LineAction.TRANSPORT:
        line = msgspec.structs.replace(line, transport=line.transport.next())
        await store.update_line(line)
    elif action is LineAction.DELETE:
        await show(
            query,
            f"Delete SIP line {keyboards.line_title(line)}? Calls on it end.",
            keyboards.line_delete_confirm(line),
        )
        return
    elif action is LineAction.DELETE_YES:
        await store.delete_line(line.id)
        lines = await store.list_lines(line.session_id)
        await show(
            query,
            f"SIP line #{line.id} deleted. SIP lines: {len(lines)}.",
            keyboards.lines_menu(line.session_id, lines),
        )
        return
    await show(query, *await line_view(line, line_states, sip_address))


@router.callback_query(LineFieldCb.filter())
async def on_line_field(
    query: CallbackQuery,
    callback_data: LineFieldCb,
    state: FSMContext,
    store: ConfigStore,
    access: Access,
    callback_answer: CallbackAnswer,
) -> None:
    line, why = await owned_line(store, access, callback_data.lid, query.from_user.id)
    if line is None:
        refuse(callback_answer, why)
        return
    field = callback_data.field
    if field not in FIELDS_OF_KIND[line.kind] | COMMON_FIELDS:
        refuse(callback_answer, "This setting does not apply to this line type.")
        return
    await state.set_state(EditLine.value)
    await state.update_data(lid=line.id, field=field.value)
    if query.message is not None:
        await query.message.answer(
            f"{label(FIELD_LABELS[field])} of SIP line #{line.id}: send {_HINTS[field]}.\n"
            f"Current: {shown_value(line, field)}",
            reply_markup=keyboards.cancel(),
        )


@router.message(EditLine.value)
async def on_line_value(
    message: Message,
    state: FSMContext,
    store: ConfigStore,
    access: Access,
    line_states: LineStateProvider,
    sip_address: str,
) -> None:
    data = await state.get_data()
    line, why = await owned_line(store, access, int(data["lid"]), message.chat.id)
    if line is None:
        await state.clear()
        await message.answer(why)
        return
    field = LineField(data["field"])
    text = message.text or ""
    if field is LineField.PASSWORD:
        # The secret must not stay in the chat history.
        with contextlib.suppress(TelegramAPIError):
            await message.delete()
    try:
        value = await parse_line_value(field, text)
        updated = msgspec.structs.replace(line, **{field.value: value})
        if updated.kind is LineKind.IP_IP and field in (LineField.ADDRESS, LineField.FIELD_VALUE):
            others = [ln for ln in await store.list_lines() if ln.id != line.id]
            if any(line.id in pair for pair in ip_ip_conflicts([*others, updated])):
                raise ValidationError(
                    "Another IP⇿IP line uses this address without a distinct Field:Value; set "
                    "a different Field:Value on one of them."
                )
    except (ValidationError, DialRuleError, TemplateError) as exc:
        await message.answer(
            f"❌ {exc}\nThe old value is kept: {shown_value(line, field)}\n"
            "Send another value or press Cancel.",
            reply_markup=keyboards.cancel(),
        )
        return
    await store.update_line(updated)
    await state.clear()
    text_card, markup = await line_view(updated, line_states, sip_address)
    await message.answer(f"Saved.\n\n{text_card}", reply_markup=markup)
