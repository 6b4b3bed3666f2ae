"""Keyboard builders: pure functions from records to markups (no I/O, no state).

Every button that edits a value shows the current value on it (product.md section 3).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from aiogram.filters.callback_data import CallbackData
from aiogram.types import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    KeyboardButtonRequestUsers,
    ReplyKeyboardMarkup,
)

from tgsip.bot.callbacks import (
    AssignCb,
    KeypadCb,
    KeypadKey,
    LineAction,
    LineCb,
    LineField,
    LineFieldCb,
    MenuAction,
    MenuCb,
    NewLineCb,
    RecommendCb,
    SessionAction,
    SessionCb,
    SessionText,
    SessionTextCb,
    SessionToggle,
    StorageCb,
    ToggleCb,
)
from tgsip.bot.labels import (
    ADVANCED,
    DISCONNECT_CLEAR,
    DISCONNECT_KEEP,
    KEYPAD_ERASE,
    KEYPAD_SUBMIT,
    LABELS,
    REFRESH,
    SHARE_PHONE,
    SIP_LINES,
    STORAGE_OWN,
    TRANSPORT_NAMES,
    check,
    label,
    shorten,
)
from tgsip.config.lines import LineKind, SipLine
from tgsip.config.sessions import SessionRecord, StorageKind

KIND_NAMES: Mapping[LineKind, str] = {
    LineKind.PBX_TO_GATEWAY: label("NEW_IN").removeprefix("🆕 "),
    LineKind.GATEWAY_TO_PBX: label("NEW_OUT").removeprefix("🆕 "),
    LineKind.IP_IP: label("NEW_IP").removeprefix("🆕 "),
}


def _btn(text: str, data: CallbackData) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, callback_data=data.pack())


def _markup(rows: Iterable[Sequence[InlineKeyboardButton]]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[list(r) for r in rows])


def session_title(rec: SessionRecord) -> str:
    who = f"@{rec.username}" if rec.username else f"+{rec.phone.lstrip('+')}"
    return f"#{rec.id} {who}"


def line_title(line: SipLine) -> str:
    transport = TRANSPORT_NAMES[line.transport.value]
    return f"#{line.id} {KIND_NAMES[line.kind]} {transport} · {line.priority}"


def cancel() -> InlineKeyboardMarkup:
    return _markup([[_btn(label("CANCEL"), MenuCb(action=MenuAction.CANCEL))]])


def main_menu(
    sessions: Sequence[SessionRecord], online: Mapping[int, bool], can_connect: bool
) -> InlineKeyboardMarkup:
    """/gateway: one button per session (with its state), then Connect and Help."""
    rows = []
    for rec in sessions:
        mark = "🟢" if online.get(rec.id) else "⚪"
        text = f"{mark} {session_title(rec)} · {rec.state.value}"
        rows.append([_btn(text, SessionCb(sid=rec.id, action=SessionAction.OPEN))])
    last = [_btn(label("HELP"), MenuCb(action=MenuAction.HELP))]
    if can_connect:
        last.insert(0, _btn(label("SESSION_LOGIN"), MenuCb(action=MenuAction.CONNECT)))
    rows.append(last)
    return _markup(rows)


def help_menu() -> InlineKeyboardMarkup:
    return _markup([[_btn(f"{label('BACK')}: /gateway", MenuCb(action=MenuAction.LIST))]])


def storage_choice(storages: Sequence[StorageKind]) -> InlineKeyboardMarkup:
    names = {
        StorageKind.EMBEDDED: label("TG_STORAGE_OFFICIAL"),
        StorageKind.POSTGRESQL: STORAGE_OWN,
    }
    rows = [[_btn(names[kind], StorageCb(kind=kind))] for kind in storages]
    rows.append([_btn(label("CANCEL"), MenuCb(action=MenuAction.CANCEL))])
    return _markup(rows)


def share_phone() -> ReplyKeyboardMarkup:
    """Reply keyboard: share the own phone number as a contact (or type any number)."""
    return ReplyKeyboardMarkup(
        keyboard=[[KeyboardButton(text=SHARE_PHONE, request_contact=True)]],
        resize_keyboard=True,
        one_time_keyboard=True,
        input_field_placeholder="+1 555 010 0000",
    )


def keypad() -> InlineKeyboardMarkup:
    """Digit keypad for the login code (callback buttons: the code never becomes text)."""
    digits = [KeypadKey(str(d)) for d in (1, 2, 3, 4, 5, 6, 7, 8, 9)]
    rows = [[_btn(k.value, KeypadCb(key=k)) for k in digits[i : i + 3]] for i in (0, 3, 6)]
    rows.append(
        [
            _btn(KEYPAD_ERASE, KeypadCb(key=KeypadKey.ERASE)),
            _btn("0", KeypadCb(key=KeypadKey.D0)),
            _btn(KEYPAD_SUBMIT, KeypadCb(key=KeypadKey.SUBMIT)),
        ]
    )
    rows.append([_btn(label("CANCEL"), MenuCb(action=MenuAction.CANCEL))])
    return _markup(rows)


def recommended(
    sid: int, states: Sequence[tuple[str, str, bool | None]], failed: Iterable[str] = ()
) -> InlineKeyboardMarkup:
    """The recommended account settings: (setting value, setting name, applied?) each.

    A setting in ``failed`` gets the Repeat label.
    """
    failed = set(failed)
    rows = []
    for value, name, state in states:
        text = LABELS.get(f"CONFIGURE_ACCOUNT_{name}", name)
        if value in failed:
            text = f"{label('REPEAT')}: {text}"
        rows.append([_btn(f"{check(state)} {text}", RecommendCb(sid=sid, setting=value))])
    rows.append([_btn(label("BACK"), SessionCb(sid=sid, action=SessionAction.OPEN))])
    return _markup(rows)


def _toggle(rec: SessionRecord, key: str, field: SessionToggle) -> InlineKeyboardButton:
    value = bool(getattr(rec.settings, field.value))
    return _btn(f"{check(value)} {label(key)}", ToggleCb(sid=rec.id, field=field))


def session_menu(rec: SessionRecord, n_lines: int) -> InlineKeyboardMarkup:
    sid = rec.id
    return _markup(
        [
            [_toggle(rec, "KEYPAD_IN", SessionToggle.DTMF_IN),
             _toggle(rec, "KEYPAD_OUT", SessionToggle.DTMF_OUT)],
            [_toggle(rec, "REDIAL_CHECK", SessionToggle.REDIAL),
             _toggle(rec, "LINES_CHECK", SessionToggle.LINES)],
            [_btn(f"{check(rec.settings.messages_processing)} {label('ARBITRARY_CHECK')} »",
                  SessionCb(sid=sid, action=SessionAction.MESSAGES))],
            [_btn(f"{SIP_LINES} ({n_lines})", SessionCb(sid=sid, action=SessionAction.LINES))],
            [_btn(label("SESSION_CONFIGURE_ACCOUNT"),
                  SessionCb(sid=sid, action=SessionAction.CONFIGURE))],
            [_btn(ADVANCED, SessionCb(sid=sid, action=SessionAction.ADVANCED))],
            [_btn(label("BACK"), MenuCb(action=MenuAction.LIST))],
        ]
    )  # fmt: skip


def messages_menu(rec: SessionRecord) -> InlineKeyboardMarkup:
    s, sid = rec.settings, rec.id
    bot = f"@{s.inline_bot}" if s.inline_bot else "—"
    reply = shorten(s.autoreply_text) if s.autoreply_text else "—"
    return _markup(
        [
            [_toggle(rec, "ARBITRARY_CHECK", SessionToggle.MESSAGES)],
            [_toggle(rec, "CALLBACK_CHECK", SessionToggle.CALLBACK)],
            [_toggle(rec, "BTN_EMPTY_BOT", SessionToggle.INLINE_BOT),
             _btn(f"{label('SELECT_BOT')}: {bot}",
                  SessionTextCb(sid=sid, field=SessionText.INLINE_BOT))],
            [_btn(f"{label('INLINE_QUERY')}: {shorten(s.inline_query)}",
                  SessionTextCb(sid=sid, field=SessionText.INLINE_QUERY))],
            [_toggle(rec, "AUTOREPLY", SessionToggle.AUTOREPLY),
             _btn(f"✏️ {reply}", SessionTextCb(sid=sid, field=SessionText.AUTOREPLY))],
            [_btn(label("BACK"), SessionCb(sid=sid, action=SessionAction.OPEN))],
        ]
    )  # fmt: skip


def advanced_menu(rec: SessionRecord, assign_revealed: bool = False) -> InlineKeyboardMarkup:
    """Unlink, Assign administrator (first press reveals Select user), shared subscription,
    Disconnect."""
    sid = rec.id
    assign = [_btn(label("ADMIN_ASSIGN"), SessionCb(sid=sid, action=SessionAction.ASSIGN))]
    if assign_revealed:
        assign.append(
            _btn(f"👤 {label('SELECT_USER')}", SessionCb(sid=sid, action=SessionAction.SELECT_USER))
        )
    return _markup(
        [
            [_btn(label("UNLINK"), SessionCb(sid=sid, action=SessionAction.UNLINK))],
            assign,
            [_toggle(rec, "SESSION_BILLER_CHECK", SessionToggle.SHARED)],
            [_btn(label("SESSION_LOGOUT"), SessionCb(sid=sid, action=SessionAction.LOGOUT))],
            [_btn(label("BACK"), SessionCb(sid=sid, action=SessionAction.OPEN))],
        ]
    )


def select_user(request_id: int) -> ReplyKeyboardMarkup:
    """Reply keyboard with the Telegram user picker (KeyboardButtonRequestUsers)."""
    request = KeyboardButtonRequestUsers(
        request_id=request_id, user_is_bot=False, max_quantity=1, request_name=True
    )
    return ReplyKeyboardMarkup(
        keyboard=[[KeyboardButton(text=f"👤 {label('SELECT_USER')}", request_users=request)]],
        resize_keyboard=True,
        one_time_keyboard=True,
    )


def select_bot(request_id: int) -> ReplyKeyboardMarkup:
    """Reply keyboard with the bot picker (KeyboardButtonRequestUsers for bots)."""
    request = KeyboardButtonRequestUsers(
        request_id=request_id, user_is_bot=True, max_quantity=1, request_username=True
    )
    return ReplyKeyboardMarkup(
        keyboard=[[KeyboardButton(text=f"🤖 {label('SELECT_BOT')}", request_users=request)]],
        resize_keyboard=True,
        one_time_keyboard=True,
    )


def assign_confirm(sid: int, uid: int, issued: int) -> InlineKeyboardMarkup:
    return _markup(
        [[
            _btn(label("YES"), AssignCb(sid=sid, uid=uid, issued=issued, yes=True)),
            _btn(label("NO"), AssignCb(sid=sid, uid=uid, issued=issued, yes=False)),
        ]]
    )  # fmt: skip


def unlink_confirm(sid: int) -> InlineKeyboardMarkup:
    return _markup(
        [[
            _btn(label("YES"), SessionCb(sid=sid, action=SessionAction.UNLINK_YES)),
            _btn(label("NO"), SessionCb(sid=sid, action=SessionAction.ADVANCED)),
        ]]
    )  # fmt: skip


def logout_confirm(sid: int) -> InlineKeyboardMarkup:
    return _markup(
        [
            [_btn(DISCONNECT_KEEP, SessionCb(sid=sid, action=SessionAction.LOGOUT_KEEP))],
            [_btn(DISCONNECT_CLEAR, SessionCb(sid=sid, action=SessionAction.LOGOUT_CLEAR))],
            [_btn(label("NO"), SessionCb(sid=sid, action=SessionAction.ADVANCED))],
        ]
    )


def lines_menu(sid: int, lines: Sequence[SipLine]) -> InlineKeyboardMarkup:
    rows = [[_btn(line_title(ln), LineCb(lid=ln.id, action=LineAction.OPEN))] for ln in lines]
    rows.append([_btn(label("NEW_IN"), NewLineCb(sid=sid, kind=LineKind.PBX_TO_GATEWAY))])
    rows.append([_btn(label("NEW_OUT"), NewLineCb(sid=sid, kind=LineKind.GATEWAY_TO_PBX))])
    rows.append([_btn(label("NEW_IP"), NewLineCb(sid=sid, kind=LineKind.IP_IP))])
    rows.append([_btn(label("BACK"), SessionCb(sid=sid, action=SessionAction.OPEN))])
    return _markup(rows)


def _field(line: SipLine, key: str, field: LineField, shown: str) -> InlineKeyboardButton:
    return _btn(
        f"{label(key)}: {shorten(shown) if shown else '—'}", LineFieldCb(lid=line.id, field=field)
    )


def line_menu(line: SipLine) -> InlineKeyboardMarkup:
    """The line's fields for its type, then the common ones, transport, state and Delete."""
    lid = line.id
    rows: list[list[InlineKeyboardButton]] = []
    if line.kind is LineKind.PBX_TO_GATEWAY:
        rows.append(
            [
                _btn(label("GATEWAY_IN_SHOW"), LineCb(lid=lid, action=LineAction.SHOW)),
                _btn(label("GATEWAY_IN_RESET"), LineCb(lid=lid, action=LineAction.RESET)),
            ]
        )
        ips = ", ".join(line.trusted_ips) if line.trusted_ips else "any"
        rows.append([_field(line, "TRUSTED_IPS", LineField.TRUSTED_IPS, ips)])
    elif line.kind is LineKind.GATEWAY_TO_PBX:
        rows.append(
            [
                _field(line, "LOGIN", LineField.LOGIN, line.login),
                _field(line, "PASSWORD", LineField.PASSWORD, "••••" if line.password else ""),
            ]
        )
        rows.append(
            [
                _field(line, "DOMAIN", LineField.DOMAIN, line.domain),
                _field(line, "REGISTRAR", LineField.PROXY, line.proxy),
            ]
        )
        rows.append([_field(line, "GATEWAY_OUT_NUMBER", LineField.NUMBER, line.number_on_pbx)])
    else:
        rows.append([_field(line, "ADDRESS_PORT", LineField.ADDRESS, line.address)])
        rows.append([_field(line, "GATEWAY_OUT_NUMBER", LineField.NUMBER, line.number_on_pbx)])
        rows.append([_field(line, "FIELD_VALUE", LineField.FIELD_VALUE, line.field_value)])
    rows.append([_field(line, "FORMATS", LineField.CODECS, ",".join(line.codecs))])
    rows.append([_field(line, "DTMF_METHODS", LineField.DTMF, ",".join(line.dtmf_methods))])
    rows.append([_field(line, "DIAL_RULES", LineField.DIAL_RULES, " ".join(line.dial_rules))])
    rows.append([_field(line, "CALLER_PHONE", LineField.CALLER_PHONE, " ".join(line.caller_phone))])
    rows.append([_field(line, "CALLER_NAME", LineField.CALLER_NAME, " ".join(line.caller_name))])
    rows.append(
        [
            _field(line, "PRIORITY", LineField.PRIORITY, str(line.priority)),
            _btn(
                f"Transport: {TRANSPORT_NAMES[line.transport.value]}",
                LineCb(lid=lid, action=LineAction.TRANSPORT),
            ),
        ]
    )
    rows.append(
        [
            _btn(REFRESH, LineCb(lid=lid, action=LineAction.OPEN)),
            _btn(f"🗑 {label('DELETE')}", LineCb(lid=lid, action=LineAction.DELETE)),
        ]
    )
    rows.append([_btn(label("BACK"), SessionCb(sid=line.session_id, action=SessionAction.LINES))])
    return _markup(rows)


def line_delete_confirm(line: SipLine) -> InlineKeyboardMarkup:
    return _markup(
        [[
            _btn(label("YES"), LineCb(lid=line.id, action=LineAction.DELETE_YES)),
            _btn(label("NO"), LineCb(lid=line.id, action=LineAction.OPEN)),
        ]]
    )  # fmt: skip


def to_session(sid: int) -> InlineKeyboardMarkup:
    """A notification's way back to the session's settings."""
    return _markup(
        [[_btn(f"{label('SETTINGS')} »", SessionCb(sid=sid, action=SessionAction.OPEN))]]
    )


def to_line(lid: int) -> InlineKeyboardMarkup:
    """A notification's way back to the line's settings."""
    return _markup([[_btn(f"{label('SETTINGS')} »", LineCb(lid=lid, action=LineAction.OPEN))]])
