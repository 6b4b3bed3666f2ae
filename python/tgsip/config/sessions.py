"""A connected Telegram session account: its record in the configuration store and the
settings its administrator toggles in the bot (product spec section 6)."""

from __future__ import annotations

import enum

import msgspec


class SessionState(enum.StrEnum):
    PENDING = "pending"
    """Connection started, login not finished."""
    ACTIVE = "active"
    """Logged in; the gateway keeps it online and restores it after a restart."""
    LOGGED_OUT = "logged_out"
    """Disconnected by its administrator."""
    REVOKED = "revoked"
    """Telegram ended the authorization (terminated from another device, or banned)."""
    ERROR = "error"
    """Cannot be used until the administrator acts; ``last_error`` says why."""


class StorageKind(enum.StrEnum):
    """Where the session's Telegram authorization lives; chosen once, at connection."""

    EMBEDDED = "embedded"
    POSTGRESQL = "postgresql"


class SessionSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The toggles and texts of a session (labels: DTMF In, DTMF Out, Redial, Lines, Messages
    processing, Callback, Inline bot, Autoreply, Use a shared subscription, Call recording)."""

    dtmf_in: bool = True
    dtmf_out: bool = True
    redial: bool = True
    lines: bool = True
    messages_processing: bool = False
    callback: bool = False
    inline_bot_enabled: bool = False
    inline_bot: str = ""
    inline_query: str = "{text}"
    autoreply_enabled: bool = False
    autoreply_text: str = ""
    shared_subscription: bool = False
    recording: bool = False
    recording_chat: int | None = None


class SessionRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A session account as the gateway stores it. ``admin_id`` is the Telegram user id of its
    administrator (None after Unlink: the gateway's operators manage it)."""

    id: int = 0
    admin_id: int | None
    phone: str
    tg_user_id: int | None = None
    username: str = ""
    storage: StorageKind = StorageKind.EMBEDDED
    state: SessionState = SessionState.PENDING
    last_error: str = ""
    created_at: float = 0.0
    settings: SessionSettings = SessionSettings()


__all__ = ["SessionRecord", "SessionSettings", "SessionState", "StorageKind"]
