"""What the bot needs from the rest of the gateway, as structural interfaces.

The bot never imports the Telegram or SIP packages: the sessions service (login flows,
recommended account settings, disconnect) and the SIP lines' live state reach it through these
Protocols, wired by the composition root (``create_dispatcher``). Steps of a login flow are
read by their shape (the fields the sessions service's step records carry).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

import msgspec

from tgsip.config.sessions import SessionRecord, StorageKind


@runtime_checkable
class CodeSentStep(Protocol):
    """Telegram sent a login code (``length`` digits when known, ``via`` "app", "sms"...)."""

    @property
    def length(self) -> int | None: ...
    @property
    def via(self) -> str: ...


@runtime_checkable
class RecoveryStep(Protocol):
    """Two-step verification is on: a recovery code was emailed to ``email_pattern``."""

    @property
    def email_pattern(self) -> str: ...


@runtime_checkable
class ConnectedStep(Protocol):
    """The session is connected and stored."""

    @property
    def session(self) -> SessionRecord: ...


@runtime_checkable
class FailedStep(Protocol):
    """The step failed; ``message`` is fit to show, ``can_retry`` keeps the flow at this step."""

    @property
    def message(self) -> str: ...
    @property
    def can_retry(self) -> bool: ...
    @property
    def retry_after(self) -> int | None: ...


class LoginFlow(Protocol):
    """One connection attempt (see the sessions service)."""

    async def submit_phone(self, phone: str) -> Any: ...
    async def submit_code(self, code: str) -> Any: ...
    async def submit_recovery_code(self, code: str) -> Any: ...
    async def cancel(self) -> None: ...


@runtime_checkable
class SettingOutcome(Protocol):
    """The result of applying one recommended account setting."""

    @property
    def ok(self) -> bool: ...
    @property
    def message(self) -> str: ...
    @property
    def retry_after_hours(self) -> int | None: ...


class SessionService(Protocol):
    """The sessions service as the bot uses it."""

    def begin_login(self, admin_id: int, storage: StorageKind = ...) -> LoginFlow: ...
    async def recommended_state(self, session_id: int) -> Mapping[Any, bool | None]: ...
    async def apply_setting(self, session_id: int, setting: Any) -> Any: ...
    async def disconnect(self, session_id: int, clear_lines: bool) -> None: ...
    def is_online(self, session_id: int) -> bool: ...


class LineStateView(Protocol):
    """What the bot reads of a line's live state. Structural, so the SIP service returns its own
    record (it cannot import the bot) as long as it has these three attributes."""

    @property
    def registered(self) -> bool | None: ...
    @property
    def last_error(self) -> str: ...
    @property
    def active_calls(self) -> int: ...


class LineState(msgspec.Struct, frozen=True, kw_only=True):
    """A plain LineStateView: live state of one SIP line as the SIP service sees it."""

    registered: bool | None = None
    """Registration state (None: the line type does not register, i.e. IP<->IP)."""
    last_error: str = ""
    """The last registration or call failure, e.g. "403 Forbidden" ("" when none)."""
    active_calls: int = 0


class LineStateProvider(Protocol):
    """Implemented by the SIP service; None for a line it does not run (yet)."""

    def line_state(self, line_id: int) -> LineStateView | None: ...


class NoLineState:
    """The provider used when no SIP service is wired: every state is unknown."""

    def line_state(self, line_id: int) -> LineStateView | None:
        return None


Clock = Callable[[], float]
"""Wall-clock seconds (time.time in production; tests pass their own)."""
