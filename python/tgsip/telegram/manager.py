"""The gateway's Telegram session accounts: login, restore, supervision, settings, disconnect.

``product.md`` §2, §4, §5, §6.2. One :class:`SessionManager` per gateway process keeps every ACTIVE
session account online through its own Telethon client, whatever administrator it belongs to:

* :meth:`SessionManager.start` restores each ACTIVE session from its storage (no new login);
  a session whose authorization cannot be read (missing, or sealed with another secret key)
  goes to ERROR with the reason in ``last_error``;
* each session is supervised: after a network loss it reconnects by itself with a bounded
  exponential back-off (``reconnect_initial`` doubling up to ``reconnect_max`` seconds), and a
  periodic ``updates.getState`` (every ``health_interval`` s) notices a dead authorization;
  ``AUTH_KEY_UNREGISTERED``, ``SESSION_REVOKED``, ``USER_DEACTIVATED*`` or an auth key unknown
  to the server put the session in REVOKED, delete its stored key and emit a "revoked" event;
* the four recommended account settings of §5 are read (:meth:`recommended_state`) and
  applied one by one (:meth:`apply_setting`), each answer carrying Telegram's error, with the
  ``FRESH_*_FORBIDDEN`` refusals of sessions younger than 24 h turned into ``retry_after_hours``;
* :meth:`disconnect` (``SESSION_LOGOUT``) sends ``auth.logOut`` (the device disappears from the
  account), deletes the stored key and optionally the session's SIP lines.

Events (:class:`SessionEvent`) go to listeners registered with :meth:`add_listener`: "connected",
"lost", "reconnected", "revoked", "logged_out", "error". The admin bot turns them into
notifications. Incoming private messages go to :meth:`add_message_listener` listeners as
:class:`~tgsip.telegram.messages.IncomingMessage`.

The call timeouts Telegram publishes in ``help.getConfig`` (``telegram_calls.md`` §1.4) are read
on every (re)connection: :meth:`call_timeouts`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import math
import platform
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import msgspec
from telethon import TelegramClient, errors  # type: ignore[import-untyped]
from telethon.tl import functions, types  # type: ignore[import-untyped]

from tgsip.config.sessions import SessionRecord, SessionState, StorageKind
from tgsip.storage.store import ConfigStore
from tgsip.telegram.login import LoginFlow
from tgsip.telegram.messages import IncomingMessage, SessionMessenger, attach_incoming
from tgsip.telegram.storage import SessionStorages, StorageError, StoredSession
from tgsip.telegram.tgerrors import error_name

__all__ = [
    "CallTimeouts",
    "RecommendedSetting",
    "SessionEvent",
    "SessionManager",
    "SessionOffline",
    "SettingResult",
    "TelegramOptions",
    "reconnect_delays",
    "revocation_reason",
]

log = logging.getLogger(__name__)

DEVICE_MODEL = "tgsip gateway"


class RecommendedSetting(enum.StrEnum):
    """``product.md`` §5, in the order the bot shows them."""

    OFF_OTHER_SESSIONS_CALLS = "off_other_sessions_calls"
    ALLOW_EVERYBODY = "allow_everybody"
    ALLOW_P2P = "allow_p2p"
    DISALLOW_GROUPS = "disallow_groups"


class SettingResult(msgspec.Struct, frozen=True, kw_only=True):
    """Outcome of one setting. ``message`` is Telegram's error name and an explanation when not
    ``ok``; ``retry_after_hours`` is set when Telegram allows it only later."""

    setting: RecommendedSetting
    ok: bool
    message: str = ""
    retry_after_hours: int | None = None


class SessionEvent(msgspec.Struct, frozen=True, kw_only=True):
    """Something happened to a session; ``kind`` is connected, lost, reconnected, revoked,
    logged_out or error; ``detail`` says why (a Telegram error name, an exception class)."""

    session_id: int
    kind: str
    detail: str = ""


class CallTimeouts(msgspec.Struct, frozen=True, kw_only=True):
    """Call timeouts from ``help.getConfig`` (milliseconds), ``telegram_calls.md`` §1.4."""

    receive_ms: int
    ring_ms: int
    connect_ms: int
    packet_ms: int


class TelegramOptions(msgspec.Struct, frozen=True, kw_only=True):
    """How the gateway talks to Telegram.

    ``server`` pins a data centre (``(dc_id, host, port)``, used for the local sandbox); None
    uses Telethon's default production DC. Times are seconds.
    """

    api_id: int
    api_hash: str
    server: tuple[int, str, int] | None = None
    device_model: str = DEVICE_MODEL
    system_version: str = platform.system() or "Linux"
    app_version: str = "tgsip 0.1"
    lang_code: str = "en"
    request_timeout: float = 20.0
    health_interval: float = 60.0
    reconnect_initial: float = 1.0
    reconnect_max: float = 60.0
    login_timeout: float = 600.0


class SessionOffline(Exception):
    """The session is not online (not connected, or not managed by this gateway)."""


_REVOKED_NAMES = (
    "AUTH_KEY_UNREGISTERED",
    "SESSION_REVOKED",
    "SESSION_EXPIRED",
    "USER_DEACTIVATED",
    "USER_DEACTIVATED_BAN",
    "AUTH_KEY_INVALID",
    "AUTH_KEY_PERM_EMPTY",
)


class _Revoked(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def revocation_reason(exc: BaseException) -> str | None:
    """The reason when ``exc`` means the authorization is dead, else None."""
    if isinstance(exc, errors.AuthKeyNotFound):
        return "AUTH_KEY_NOT_FOUND"
    if isinstance(exc, errors.RPCError):
        name = error_name(exc)
        if name in _REVOKED_NAMES or isinstance(exc, errors.UnauthorizedError):
            return name
    return None


def reconnect_delays(
    initial: float, maximum: float, rng: Callable[[], float] = random.random
) -> Iterator[float]:
    """Pauses between reconnection attempts: ``initial`` doubling up to ``maximum``, each
    jittered by +-25 % so that many sessions do not reconnect in step."""
    delay = min(initial, maximum)
    while True:
        yield delay * (0.75 + rng() / 2)
        delay = min(delay * 2, maximum)


@dataclass
class _Live:
    record: SessionRecord
    client: Any
    session: StoredSession
    online: bool = False
    stopping: bool = False
    task: asyncio.Task[None] | None = None
    timeouts: CallTimeouts | None = None


class SessionManager:
    """All session accounts of one gateway (see the module docstring).

    ``store`` and ``storages`` are owned by the caller (close them after :meth:`stop`).
    """

    def __init__(
        self, store: ConfigStore, storages: SessionStorages, options: TelegramOptions
    ) -> None:
        self.store = store
        self.storages = storages
        self.options = options
        self._live: dict[int, _Live] = {}
        self._flows: set[LoginFlow] = set()
        self._listeners: list[Callable[[SessionEvent], None]] = []
        self._message_listeners: list[Callable[[IncomingMessage], None]] = []
        self._client_listeners: list[Callable[[int, Any], None]] = []
        self._started = False

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Bring every ACTIVE session online from its storage; returns without waiting for them."""
        self._started = True
        for rec in await self.store.list_sessions():
            if rec.state is SessionState.PENDING:
                # A login interrupted by a restart: forget it.
                await self._forget_pending(rec)
                continue
            if rec.state is not SessionState.ACTIVE or rec.id in self._live:
                continue
            try:
                session = await self.storages.load(rec.id, rec.storage)
            except StorageError as exc:
                await self._fail(rec, str(exc))
                continue
            if session is None or session.auth_key is None:
                await self._fail(
                    rec, "No stored Telegram authorization; connect the session again."
                )
                continue
            self._spawn(rec, self.new_client(session), session)

    async def stop(self) -> None:
        """Disconnect every session (their update state is saved) and abandon login flows."""
        for flow in list(self._flows):
            await flow.cancel()
        self._flows.clear()
        lives = list(self._live.values())
        self._live.clear()
        for live in lives:
            await self._shutdown(live)
        self._started = False

    # --- login -------------------------------------------------------------------------------

    def begin_login(self, admin_id: int, storage: StorageKind = StorageKind.EMBEDDED) -> LoginFlow:
        """A new connection attempt by administrator ``admin_id`` (``product.md`` §4)."""
        flow = LoginFlow(self, admin_id, storage, timeout=self.options.login_timeout)
        self._flows = {f for f in self._flows if not f.finished}
        self._flows.add(flow)
        return flow

    def logins_in_progress(self) -> set[int]:
        """Record ids of unfinished login flows."""
        return {f.record.id for f in self._flows if not f.finished and f.record is not None}

    def new_client(self, session: StoredSession) -> Any:
        """A Telethon client for ``session`` as the gateway configures it (not connected)."""
        opts = self.options
        if opts.server is not None and session.server_address is None:
            session.set_dc(*opts.server)
        return TelegramClient(
            session,
            opts.api_id,
            opts.api_hash,
            device_model=opts.device_model,
            system_version=opts.system_version,
            app_version=opts.app_version,
            lang_code=opts.lang_code,
            system_lang_code=opts.lang_code,
            flood_sleep_threshold=0,
            connection_retries=1,
            retry_delay=0,
            request_retries=1,
            auto_reconnect=False,
            timeout=opts.request_timeout,
            catch_up=True,
        )

    async def adopt(self, record: SessionRecord, client: Any, session: StoredSession) -> None:
        """Take over a freshly logged-in client (called by :class:`LoginFlow`)."""
        old = self._live.pop(record.id, None)
        if old is not None:
            await self._shutdown(old)
        self._spawn(record, client, session)

    # --- queries -----------------------------------------------------------------------------

    def is_online(self, session_id: int) -> bool:
        live = self._live.get(session_id)
        return live is not None and live.online

    def client(self, session_id: int) -> Any:
        """The Telethon client of an online session (for the call logic); SessionOffline."""
        live = self._live.get(session_id)
        if live is None or not live.online:
            raise SessionOffline(f"session {session_id} is offline")
        return live.client

    def messenger(self, session_id: int) -> SessionMessenger:
        """Sending messages, inline results and files as the session account."""
        return SessionMessenger(session_id, self.client(session_id), self.options.request_timeout)

    def call_timeouts(self, session_id: int) -> CallTimeouts | None:
        live = self._live.get(session_id)
        return live.timeouts if live is not None else None

    def stored_session(self, session_id: int) -> StoredSession | None:
        live = self._live.get(session_id)
        return live.session if live is not None else None

    def add_listener(self, cb: Callable[[SessionEvent], None]) -> None:
        self._listeners.append(cb)

    def add_client_listener(self, cb: Callable[[int, Any], None]) -> None:
        """``cb(session_id, client)`` runs for every Telethon client the manager takes over (a
        restored one before it connects, a freshly logged-in one already connected), so the call
        logic can add its update handlers; that client then lives through reconnections."""
        self._client_listeners.append(cb)

    def online_sessions(self) -> list[int]:
        """Ids of the sessions online now."""
        return sorted(sid for sid, live in self._live.items() if live.online)

    def add_message_listener(self, cb: Callable[[IncomingMessage], None]) -> None:
        """``cb`` hears every incoming private message of every session."""
        self._message_listeners.append(cb)

    # --- recommended settings ----------------------------------------------------------------

    async def _request(self, session_id: int, request: Any) -> Any:
        client = self.client(session_id)
        return await asyncio.wait_for(client(request), self.options.request_timeout)

    async def recommended_state(self, session_id: int) -> dict[RecommendedSetting, bool | None]:
        """Current value of each setting (None where it could not be read)."""
        out: dict[RecommendedSetting, bool | None] = dict.fromkeys(RecommendedSetting)
        try:
            auths = await self._request(session_id, functions.account.GetAuthorizationsRequest())
            out[RecommendedSetting.OFF_OTHER_SESSIONS_CALLS] = all(
                a.call_requests_disabled for a in auths.authorizations if not a.current
            )
        except (SessionOffline, errors.RPCError, OSError, TimeoutError) as exc:
            log.info("session %d: reading authorizations failed: %s", session_id, exc)
        keys = (
            (RecommendedSetting.ALLOW_EVERYBODY, types.InputPrivacyKeyPhoneCall()),
            (RecommendedSetting.ALLOW_P2P, types.InputPrivacyKeyPhoneP2P()),
            (RecommendedSetting.DISALLOW_GROUPS, types.InputPrivacyKeyChatInvite()),
        )
        for setting, key in keys:
            try:
                rules = (
                    await self._request(session_id, functions.account.GetPrivacyRequest(key=key))
                ).rules
            except (SessionOffline, errors.RPCError, OSError, TimeoutError) as exc:
                log.info("session %d: reading privacy failed: %s", session_id, exc)
                continue
            allow_all = any(isinstance(r, types.PrivacyValueAllowAll) for r in rules)
            if setting is RecommendedSetting.DISALLOW_GROUPS:
                out[setting] = not allow_all
            else:
                out[setting] = allow_all
        return out

    async def apply_setting(self, session_id: int, setting: RecommendedSetting) -> SettingResult:
        """Apply one recommended setting; never raises for Telegram's refusals."""
        try:
            if setting is RecommendedSetting.OFF_OTHER_SESSIONS_CALLS:
                return await self._calls_off_elsewhere(session_id)
            if setting is RecommendedSetting.ALLOW_EVERYBODY:
                await self._set_privacy(
                    session_id, types.InputPrivacyKeyPhoneCall(), types.InputPrivacyValueAllowAll()
                )
            elif setting is RecommendedSetting.ALLOW_P2P:
                await self._set_privacy(
                    session_id, types.InputPrivacyKeyPhoneP2P(), types.InputPrivacyValueAllowAll()
                )
            else:
                key = types.InputPrivacyKeyChatInvite()
                try:
                    await self._set_privacy(session_id, key, types.InputPrivacyValueDisallowAll())
                except errors.RPCError as exc:
                    if error_name(exc).startswith("FRESH_") or isinstance(exc, errors.FloodError):
                        raise
                    # Some servers refuse "nobody" here: contacts only is the next best.
                    await self._set_privacy(session_id, key, types.InputPrivacyValueAllowContacts())
                    return SettingResult(
                        setting=setting, ok=True, message="Only contacts can add the account."
                    )
        except SessionOffline as exc:
            return SettingResult(setting=setting, ok=False, message=str(exc))
        except errors.RPCError as exc:
            return await self._refused(session_id, setting, exc)
        except (OSError, TimeoutError) as exc:
            return SettingResult(
                setting=setting, ok=False, message=f"Telegram did not answer ({type(exc).__name__})"
            )
        return SettingResult(setting=setting, ok=True)

    async def _set_privacy(self, session_id: int, key: Any, rule: Any) -> None:
        await self._request(session_id, functions.account.SetPrivacyRequest(key=key, rules=[rule]))

    async def _calls_off_elsewhere(self, session_id: int) -> SettingResult:
        setting = RecommendedSetting.OFF_OTHER_SESSIONS_CALLS
        auths = await self._request(session_id, functions.account.GetAuthorizationsRequest())
        changed = 0
        for auth in auths.authorizations:
            if auth.current or auth.call_requests_disabled:
                continue
            await self._request(
                session_id,
                functions.account.ChangeAuthorizationSettingsRequest(
                    hash=auth.hash, call_requests_disabled=True
                ),
            )
            changed += 1
        return SettingResult(
            setting=setting, ok=True, message=f"Calls disabled on {changed} other device(s)."
        )

    async def _refused(
        self, session_id: int, setting: RecommendedSetting, exc: Any
    ) -> SettingResult:
        name = error_name(exc)
        if isinstance(exc, errors.FloodError):
            seconds = int(getattr(exc, "seconds", 0) or 0)
            return SettingResult(
                setting=setting,
                ok=False,
                message=f"{name}: Telegram asks to wait {seconds} s.",
                retry_after_hours=max(1, math.ceil(seconds / 3600)),
            )
        if name.startswith("FRESH_"):
            hours = 24
            try:
                auths = await self._request(
                    session_id, functions.account.GetAuthorizationsRequest()
                )
                for auth in auths.authorizations:
                    if auth.current:
                        created = auth.date_created
                        stamp = created.timestamp() if hasattr(created, "timestamp") else created
                        age_h = (time.time() - float(stamp)) / 3600
                        hours = max(1, math.ceil(24 - age_h))
            except Exception as inner:
                log.debug("session %d: cannot read session age: %s", session_id, inner)
            return SettingResult(
                setting=setting,
                ok=False,
                message=f"{name}: Telegram allows this only 24 hours after connecting. "
                f"Try again in {hours} h.",
                retry_after_hours=hours,
            )
        return SettingResult(setting=setting, ok=False, message=f"{name}: Telegram refused.")

    # --- disconnect --------------------------------------------------------------------------

    async def disconnect(self, session_id: int, clear_lines: bool) -> None:
        """``auth.logOut``, forget the stored key, optionally delete the session's lines.

        The record stays (LOGGED_OUT) so lines kept can serve a later reconnection. If Telegram
        cannot be told (offline), the key is still forgotten and ``last_error`` says so.
        """
        rec = await self.store.get_session(session_id)
        if rec is None:
            raise KeyError(session_id)
        live = self._live.pop(session_id, None)
        note = ""
        client: Any = None
        if live is not None:
            live.stopping = True
            if live.task is not None:
                live.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await live.task
            client = live.client
        elif rec.state is SessionState.ACTIVE:
            with contextlib.suppress(StorageError):
                session = await self.storages.load(rec.id, rec.storage)
                if session is not None and session.auth_key is not None:
                    client = self.new_client(session)
        if client is not None:
            try:
                if not client.is_connected():
                    await asyncio.wait_for(client.connect(), self.options.request_timeout)
                await asyncio.wait_for(
                    client(functions.auth.LogOutRequest()), self.options.request_timeout
                )
            except Exception as exc:
                note = f"Telegram could not be told ({type(exc).__name__}); remove the device "
                note += "from the account's device list."
                log.warning("session %d: auth.logOut failed: %s", session_id, type(exc).__name__)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.disconnect(), self.options.request_timeout)
        try:
            await self.storages.delete(rec.id, rec.storage)
        except StorageError as exc:
            note = note or str(exc)
        if clear_lines:
            await self.store.delete_lines(session_id)
        await self.store.update_session(
            msgspec.structs.replace(rec, state=SessionState.LOGGED_OUT, last_error=note)
        )
        self._emit(SessionEvent(session_id=session_id, kind="logged_out", detail=note))

    # --- supervision -------------------------------------------------------------------------

    def _spawn(self, rec: SessionRecord, client: Any, session: StoredSession) -> None:
        live = _Live(record=rec, client=client, session=session)
        attach_incoming(client, rec.id, self._deliver, self.options.request_timeout)
        self._live[rec.id] = live
        for cb in list(self._client_listeners):
            try:
                cb(rec.id, client)
            except Exception:
                log.exception("client listener failed")
        live.task = asyncio.get_running_loop().create_task(
            self._supervise(live), name=f"tg-session-{rec.id}"
        )

    async def _shutdown(self, live: _Live) -> None:
        live.stopping = True
        live.online = False
        if live.task is not None:
            live.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await live.task
        try:
            await asyncio.wait_for(live.client.disconnect(), self.options.request_timeout)
        except Exception as exc:
            log.debug("session %d: disconnect: %s", live.record.id, type(exc).__name__)
        with contextlib.suppress(StorageError):
            await live.session.flush()

    async def _supervise(self, live: _Live) -> None:
        opts = self.options
        delays = reconnect_delays(opts.reconnect_initial, opts.reconnect_max)
        was_online = False
        lost = False
        sid = live.record.id
        while not live.stopping:
            try:
                if not live.client.is_connected():
                    await asyncio.wait_for(live.client.connect(), opts.request_timeout)
                await self._check(live)
                config = await asyncio.wait_for(
                    live.client(functions.help.GetConfigRequest()), opts.request_timeout
                )
                live.timeouts = CallTimeouts(
                    receive_ms=config.call_receive_timeout_ms,
                    ring_ms=config.call_ring_timeout_ms,
                    connect_ms=config.call_connect_timeout_ms,
                    packet_ms=config.call_packet_timeout_ms,
                )
                if lost:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(live.client.catch_up(), opts.request_timeout)
                live.online = True
                kind = "reconnected" if was_online else "connected"
                log.info("session %d %s", sid, kind)
                self._emit(SessionEvent(session_id=sid, kind=kind))
                was_online = True
                lost = False
                delays = reconnect_delays(opts.reconnect_initial, opts.reconnect_max)
                await self._watch(live)
            except asyncio.CancelledError:
                raise
            except _Revoked as exc:
                await self._revoke(live, exc.detail)
                return
            except Exception as exc:
                reason = revocation_reason(exc)
                if reason is not None:
                    await self._revoke(live, reason)
                    return
                if live.stopping:
                    return
                live.online = False
                if not lost:
                    lost = True
                    log.warning("session %d lost its connection: %s", sid, type(exc).__name__)
                    self._emit(SessionEvent(session_id=sid, kind="lost", detail=type(exc).__name__))
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(live.client.disconnect(), opts.request_timeout)
                await asyncio.sleep(next(delays))

    async def _check(self, live: _Live) -> None:
        """``updates.getState``: proves the authorization is alive."""
        try:
            await asyncio.wait_for(
                live.client(functions.updates.GetStateRequest()), self.options.request_timeout
            )
        except errors.RPCError as exc:
            reason = revocation_reason(exc)
            if reason is not None:
                raise _Revoked(reason) from exc
            raise

    async def _watch(self, live: _Live) -> None:
        """Returns (by raising) when the connection is lost or the authorization dies."""
        while True:
            try:
                await asyncio.wait_for(live.client.disconnected, self.options.health_interval)
            except TimeoutError:
                await self._check(live)
                continue
            raise ConnectionError("disconnected")

    async def _revoke(self, live: _Live, detail: str) -> None:
        sid = live.record.id
        live.online = False
        live.stopping = True
        self._live.pop(sid, None)
        log.warning("session %d: Telegram ended its authorization (%s)", sid, detail)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(live.client.disconnect(), self.options.request_timeout)
        try:
            await self.storages.delete(sid, live.record.storage)
        except StorageError as exc:
            log.warning("session %d: cannot delete the dead key: %s", sid, exc)
        rec = await self.store.get_session(sid)
        if rec is not None:
            await self.store.update_session(
                msgspec.structs.replace(rec, state=SessionState.REVOKED, last_error=detail)
            )
        self._emit(SessionEvent(session_id=sid, kind="revoked", detail=detail))

    async def _fail(self, rec: SessionRecord, message: str) -> None:
        log.warning("session %d cannot be restored: %s", rec.id, message)
        await self.store.update_session(
            msgspec.structs.replace(rec, state=SessionState.ERROR, last_error=message)
        )
        self._emit(SessionEvent(session_id=rec.id, kind="error", detail=message))

    async def _forget_pending(self, rec: SessionRecord) -> None:
        with contextlib.suppress(StorageError):
            await self.storages.delete(rec.id, rec.storage)
        if rec.tg_user_id is None:
            await self.store.delete_session(rec.id)
        else:
            await self.store.update_session(
                msgspec.structs.replace(rec, state=SessionState.LOGGED_OUT)
            )

    def _emit(self, event: SessionEvent) -> None:
        for cb in list(self._listeners):
            try:
                cb(event)
            except Exception:
                log.exception("session event listener failed")

    def _deliver(self, message: IncomingMessage) -> None:
        for cb in list(self._message_listeners):
            try:
                cb(message)
            except Exception:
                log.exception("message listener failed")
