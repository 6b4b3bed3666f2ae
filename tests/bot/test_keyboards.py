"""Every keyboard builder: callback data within Telegram's 64 bytes, unique per keyboard, and
parsable back by its factory; reply keyboards carry the requested pickers."""

from __future__ import annotations

import itertools

import msgspec
import pytest
from aiogram.types import InlineKeyboardMarkup

from tgsip.bot import keyboards
from tgsip.bot.callbacks import (
    AssignCb,
    KeypadCb,
    LineCb,
    LineFieldCb,
    MenuCb,
    NewLineCb,
    RecommendCb,
    SessionCb,
    SessionTextCb,
    StorageCb,
    ToggleCb,
)
from tgsip.config.lines import LineKind, SipLine, new_gateway_to_pbx, new_ip_ip, new_pbx_to_gateway
from tgsip.config.sessions import SessionRecord, SessionSettings, SessionState, StorageKind

MAX_ID = 2**63 - 1
"""The largest id SQLite hands out: the worst case for callback data length."""
FACTORIES = (
    AssignCb,
    KeypadCb,
    LineCb,
    LineFieldCb,
    MenuCb,
    NewLineCb,
    RecommendCb,
    SessionCb,
    SessionTextCb,
    StorageCb,
    ToggleCb,
)
LONG_SETTINGS = [
    ("off_other_sessions_calls", "OFF_OTHER_SESSIONS_CALLS", True),
    ("allow_everybody", "ALLOW_EVERYBODY", False),
    ("allow_p2p", "ALLOW_P2P", None),
    ("disallow_groups", "DISALLOW_GROUPS", True),
]


def _session(sid: int, **settings: object) -> SessionRecord:
    return SessionRecord(
        id=sid,
        admin_id=MAX_ID,
        phone="999999999999999",
        username="a" * 32,
        state=SessionState.ERROR,
        settings=SessionSettings(
            inline_bot="b" * 29 + "bot",
            autoreply_text="x" * 1024,
            **settings,  # type: ignore[arg-type]
        ),
    )


def _lines(lid: int) -> list[SipLine]:
    """One line of each type, ids ``lid``, ``lid - 1``, ``lid - 2``."""
    return [
        msgspec.structs.replace(make(MAX_ID), id=lid - i)
        for i, make in enumerate((new_pbx_to_gateway, new_gateway_to_pbx, new_ip_ip))
    ]


def every_keyboard() -> list[tuple[str, InlineKeyboardMarkup]]:
    out: list[tuple[str, InlineKeyboardMarkup]] = []
    for sid in (3, MAX_ID):
        for flags in itertools.product((False, True), repeat=2):
            rec = _session(sid, messages_processing=flags[0], dtmf_in=flags[1])
            out.append(("session_menu", keyboards.session_menu(rec, 99)))
            out.append(("messages_menu", keyboards.messages_menu(rec)))
            out.append(("advanced_menu", keyboards.advanced_menu(rec, flags[0])))
        rec = _session(sid)
        other = _session(sid - 1)
        out.append(("main_menu", keyboards.main_menu([rec, other], {sid: True}, True)))
        out.append(("recommended", keyboards.recommended(sid, LONG_SETTINGS, ["allow_p2p"])))
        out.append(("assign_confirm", keyboards.assign_confirm(sid, MAX_ID, 2**40)))
        out.append(("unlink_confirm", keyboards.unlink_confirm(sid)))
        out.append(("logout_confirm", keyboards.logout_confirm(sid)))
        out.append(("lines_menu", keyboards.lines_menu(sid, _lines(MAX_ID))))
        out.append(("to_session", keyboards.to_session(sid)))
        out.append(("to_line", keyboards.to_line(sid)))
        for line in _lines(sid):
            out.append(("line_menu", keyboards.line_menu(line)))
            out.append(("line_delete_confirm", keyboards.line_delete_confirm(line)))
    out.append(("main_menu empty", keyboards.main_menu([], {}, False)))
    out.append(("storage_choice", keyboards.storage_choice(list(StorageKind))))
    out.append(("keypad", keyboards.keypad()))
    out.append(("help_menu", keyboards.help_menu()))
    out.append(("cancel", keyboards.cancel()))
    return out


@pytest.mark.parametrize(("name", "markup"), every_keyboard())
def test_callback_data_fits_and_parses(name: str, markup: InlineKeyboardMarkup) -> None:
    datas = [b.callback_data for row in markup.inline_keyboard for b in row]
    assert datas, name
    for data in datas:
        assert data is not None, name
        assert len(data.encode("utf-8")) <= 64, (name, data)
        prefix = data.split(":", 1)[0]
        factory = next(f for f in FACTORIES if f.__prefix__ == prefix)
        assert factory.unpack(data).pack() == data
    assert len(set(datas)) == len(datas), (name, datas)


def test_line_menus_show_their_type_fields() -> None:
    pbx, out, ip = _lines(7)
    texts = {
        kind: " | ".join(b.text for row in keyboards.line_menu(line).inline_keyboard for b in row)
        for kind, line in zip(LineKind, (pbx, out, ip), strict=True)
    }
    assert "Show Account" in texts[LineKind.PBX_TO_GATEWAY]
    assert "Trusted IPs: any" in texts[LineKind.PBX_TO_GATEWAY]
    for field in ("Login: —", "Password: ••••" if out.password else "Password: —", "Domain: —",
                  "Proxy: —", "Number on PBX: —"):  # fmt: skip
        assert field in texts[LineKind.GATEWAY_TO_PBX]
    for field in ("Address:port: —", "Field:Value: —"):
        assert field in texts[LineKind.IP_IP]
    for text in texts.values():
        for common in ("Audio Codecs: alaw,mulaw", "DTMF Methods: rfc2833", "Dial Rules",
                       "Caller phone: +{phone} 0{userid}", "Caller name: {name_ascii}",
                       "Priority: 0", "Transport: UDP", "Delete"):  # fmt: skip
            assert common in text
    assert pbx.password not in texts[LineKind.PBX_TO_GATEWAY]


def test_reply_keyboards_request_contact_and_users() -> None:
    phone = keyboards.share_phone()
    assert phone.keyboard[0][0].request_contact is True
    picker = keyboards.select_user(12)
    request = picker.keyboard[0][0].request_users
    assert request is not None
    assert (request.request_id, request.user_is_bot, request.max_quantity) == (12, False, 1)
    bots = keyboards.select_bot(13).keyboard[0][0].request_users
    assert bots is not None
    assert (bots.request_id, bots.user_is_bot, bots.request_username) == (13, True, True)
