"""Typed callback data of every inline button (aiogram CallbackData factories).

Only ids and short enum values travel in callback data; Telegram caps it at 64 bytes and the
keyboard tests check every button against that.
"""

from __future__ import annotations

import enum

from aiogram.filters.callback_data import CallbackData

from tgsip.config.lines import LineKind
from tgsip.config.sessions import StorageKind


class MenuAction(enum.StrEnum):
    LIST = "list"
    CONNECT = "conn"
    HELP = "help"
    CANCEL = "x"


class SessionAction(enum.StrEnum):
    OPEN = "open"
    MESSAGES = "msgs"
    ADVANCED = "adv"
    LINES = "lines"
    CONFIGURE = "cfg"
    UNLINK = "unlink"
    UNLINK_YES = "unlink_y"
    ASSIGN = "assign"
    SELECT_USER = "seluser"
    LOGOUT = "logout"
    LOGOUT_KEEP = "logout_k"
    LOGOUT_CLEAR = "logout_c"


class SessionToggle(enum.StrEnum):
    """Check-box settings of a session; values are SessionSettings field names."""

    DTMF_IN = "dtmf_in"
    DTMF_OUT = "dtmf_out"
    REDIAL = "redial"
    LINES = "lines"
    MESSAGES = "messages_processing"
    CALLBACK = "callback"
    INLINE_BOT = "inline_bot_enabled"
    AUTOREPLY = "autoreply_enabled"
    SHARED = "shared_subscription"


class SessionText(enum.StrEnum):
    """Typed settings of a session; values are SessionSettings field names."""

    INLINE_BOT = "inline_bot"
    INLINE_QUERY = "inline_query"
    AUTOREPLY = "autoreply_text"


class LineAction(enum.StrEnum):
    OPEN = "open"
    SHOW = "show"
    RESET = "reset"
    TRANSPORT = "tr"
    DELETE = "del"
    DELETE_YES = "del_y"


class LineField(enum.StrEnum):
    """Typed settings of a line; values are SipLine field names."""

    LOGIN = "login"
    PASSWORD = "password"
    DOMAIN = "domain"
    PROXY = "proxy"
    ADDRESS = "address"
    NUMBER = "number_on_pbx"
    FIELD_VALUE = "field_value"
    TRUSTED_IPS = "trusted_ips"
    CODECS = "codecs"
    DTMF = "dtmf_methods"
    DIAL_RULES = "dial_rules"
    CALLER_PHONE = "caller_phone"
    CALLER_NAME = "caller_name"
    PRIORITY = "priority"


class KeypadKey(enum.StrEnum):
    D0 = "0"
    D1 = "1"
    D2 = "2"
    D3 = "3"
    D4 = "4"
    D5 = "5"
    D6 = "6"
    D7 = "7"
    D8 = "8"
    D9 = "9"
    ERASE = "e"
    SUBMIT = "s"


class MenuCb(CallbackData, prefix="m"):
    action: MenuAction


class StorageCb(CallbackData, prefix="st"):
    kind: StorageKind


class KeypadCb(CallbackData, prefix="k"):
    key: KeypadKey


class SessionCb(CallbackData, prefix="s"):
    sid: int
    action: SessionAction


class ToggleCb(CallbackData, prefix="t"):
    sid: int
    field: SessionToggle


class SessionTextCb(CallbackData, prefix="e"):
    sid: int
    field: SessionText


class RecommendCb(CallbackData, prefix="r"):
    sid: int
    setting: str
    """The RecommendedSetting's value (a short identifier from the sessions service)."""


class AssignCb(CallbackData, prefix="a"):
    sid: int
    uid: int
    issued: int
    """When the confirmation was offered (seconds, the bot's clock); it expires 5 min later."""
    yes: bool


class NewLineCb(CallbackData, prefix="n"):
    sid: int
    kind: LineKind


class LineCb(CallbackData, prefix="l"):
    lid: int
    action: LineAction


class LineFieldCb(CallbackData, prefix="f"):
    lid: int
    field: LineField
