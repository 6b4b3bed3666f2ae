"""Connecting a session account: phone, login code, and two-step verification by email recovery.

``product.md`` §4. One :class:`LoginFlow` is one connection attempt started by an administrator
in the admin bot (:meth:`tgsip.telegram.manager.SessionManager.begin_login`). Each ``submit_*``
call returns the next :data:`LoginStep` for the bot to show:

* :class:`CodeSent`: Telegram sent a login code (``auth.sendCode``);
* :class:`RecoveryStarted`: the account has a 2FA password. The password is never asked for:
  ``account.getPassword`` must show a recovery email, then ``auth.requestPasswordRecovery``
  mails a code, which :meth:`LoginFlow.submit_recovery_code` hands to ``auth.recoverPassword``.
  That logs in **and removes the 2FA password** (``Connected.password_removed``);
* :class:`Connected`: the session is ACTIVE in the configuration store, its authorization kept
  in the storage chosen for it, and the manager keeps it online from now on;
* :class:`Failed`: ``reason`` says why; ``can_retry`` False means the flow is over.

The virtual device is named "tgsip gateway" (``initConnection.device_model``). Typed codes keep
digits only, so "1 2 3 4 5" works (Telegram expires a code its owner sends verbatim in a chat).
A flow is abandoned after ``login_timeout`` seconds (10 min) without a submit, and its pending
record and partial authorization are removed.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec
from telethon import errors  # type: ignore[import-untyped]
from telethon.tl import functions, types  # type: ignore[import-untyped]

from tgsip.config.sessions import SessionRecord, SessionState, StorageKind
from tgsip.telegram.storage import StorageError, StoredSession
from tgsip.telegram.tgerrors import error_name

if TYPE_CHECKING:
    from tgsip.telegram.manager import SessionManager

__all__ = [
    "CodeSent",
    "Connected",
    "Failed",
    "LoginFailure",
    "LoginFlow",
    "LoginStep",
    "RecoveryStarted",
    "digits_only",
    "normalize_phone",
]

log = logging.getLogger(__name__)

T = TypeVar("T")


class LoginFailure(enum.StrEnum):
    PHONE_INVALID = "phone_invalid"
    PHONE_BANNED = "phone_banned"
    CODE_INVALID = "code_invalid"
    CODE_EXPIRED = "code_expired"
    FLOOD_WAIT = "flood_wait"
    SIGN_UP_REQUIRED = "sign_up_required"
    NO_RECOVERY_EMAIL = "no_recovery_email"
    RECOVERY_CODE_INVALID = "recovery_code_invalid"
    RECOVERY_EXPIRED = "recovery_expired"
    ALREADY_CONNECTED = "already_connected"
    NETWORK = "network"
    TIMEOUT = "timeout"
    INTERNAL = "internal"


class CodeSent(msgspec.Struct, frozen=True, kw_only=True):
    """A login code is on its way; ``via`` is app, sms, call, flash_call, email, fragment..."""

    phone: str
    length: int | None
    via: str


class RecoveryStarted(msgspec.Struct, frozen=True, kw_only=True):
    """2FA is on: a recovery code was mailed to ``email_pattern`` (e.g. ``a***@example.org``)."""

    email_pattern: str


class Connected(msgspec.Struct, frozen=True, kw_only=True):
    """Logged in. ``password_removed``: recovery removed the account's 2FA password (tell the
    administrator to set it again from another device)."""

    session: SessionRecord
    password_removed: bool = False


class Failed(msgspec.Struct, frozen=True, kw_only=True):
    """The step failed. ``retry_after`` (seconds) for flood waits; ``can_retry`` False ends the
    flow (start a new one)."""

    reason: LoginFailure
    message: str
    retry_after: int | None = None
    can_retry: bool = True


LoginStep = CodeSent | RecoveryStarted | Connected | Failed

_VIA = {
    types.auth.SentCodeTypeApp: "app",
    types.auth.SentCodeTypeSms: "sms",
    types.auth.SentCodeTypeCall: "call",
    types.auth.SentCodeTypeFlashCall: "flash_call",
    types.auth.SentCodeTypeMissedCall: "missed_call",
    types.auth.SentCodeTypeEmailCode: "email",
    types.auth.SentCodeTypeFragmentSms: "fragment_sms",
    types.auth.SentCodeTypeSetUpEmailRequired: "setup_email",
}

# Telegram error name -> (reason, text for the administrator, can_retry)
_ERRORS: dict[str, tuple[LoginFailure, str, bool]] = {
    "PHONE_NUMBER_INVALID": (LoginFailure.PHONE_INVALID, "The phone number is invalid.", True),
    "PHONE_NUMBER_BANNED": (
        LoginFailure.PHONE_BANNED,
        "Telegram has banned this phone number.",
        False,
    ),
    "PHONE_NUMBER_FLOOD": (
        LoginFailure.FLOOD_WAIT,
        "Too many login attempts for this number; try again later.",
        False,
    ),
    "PHONE_CODE_INVALID": (LoginFailure.CODE_INVALID, "The code is wrong; try again.", True),
    "PHONE_CODE_EMPTY": (LoginFailure.CODE_INVALID, "Enter the code you received.", True),
    "PHONE_CODE_EXPIRED": (
        LoginFailure.CODE_EXPIRED,
        "The code has expired; request a new one. Do not send the code as a message in any "
        "chat: Telegram expires it at once.",
        True,
    ),
    "PHONE_CODE_HASH_EMPTY": (LoginFailure.CODE_EXPIRED, "Request a new code.", True),
    "CODE_INVALID": (
        LoginFailure.RECOVERY_CODE_INVALID,
        "The recovery code is wrong; try again.",
        True,
    ),
    "CODE_EMPTY": (
        LoginFailure.RECOVERY_CODE_INVALID,
        "Enter the recovery code from the email.",
        True,
    ),
    "PASSWORD_RECOVERY_EXPIRED": (
        LoginFailure.RECOVERY_EXPIRED,
        "The recovery code has expired; connect again to get a new one.",
        False,
    ),
    "PASSWORD_RECOVERY_NA": (
        LoginFailure.NO_RECOVERY_EMAIL,
        "Two-step verification is on and no recovery email is set. Set a recovery email for the "
        "account, or turn two-step verification off while connecting, then connect again.",
        False,
    ),
}


def digits_only(text: str) -> str:
    """Keeps the digits of a typed code ("1 2 3 4 5" -> "12345")."""
    return "".join(ch for ch in text if ch.isdigit())


_PHONE = re.compile(r"^\+?[0-9 ()\-.]+$")


def normalize_phone(text: str) -> str | None:
    """``+<digits>`` (5..15 digits, E.164 length) or None when ``text`` is not a phone number."""
    text = text.strip().strip("`").strip()
    if not _PHONE.match(text):
        return None
    digits = digits_only(text)
    if not 5 <= len(digits) <= 15:
        return None
    return "+" + digits


class LoginFlow:
    """One connection attempt (see the module docstring). Methods are serialised."""

    def __init__(
        self,
        manager: SessionManager,
        admin_id: int,
        storage: StorageKind = StorageKind.EMBEDDED,
        timeout: float = 600.0,
    ) -> None:
        self.manager = manager
        self.admin_id = admin_id
        self.storage = storage
        self.timeout = timeout
        self.record: SessionRecord | None = None
        self._session: StoredSession | None = None
        self._client: Any = None
        self._phone = ""
        self._phone_code_hash = ""
        self._recovery = False
        self._reused = False
        self._done = False
        self._timed_out = False
        self._lock = asyncio.Lock()
        self._timer: asyncio.TimerHandle | None = None
        self._cleanup_task: asyncio.Task[None] | None = None
        self.last_activity = time.monotonic()

    # --- public steps ------------------------------------------------------------------------

    async def submit_phone(self, phone: str) -> LoginStep:
        """Ask Telegram for a login code for ``phone`` (again, when called again)."""
        return await self._step(self._submit_phone, phone)

    async def submit_code(self, code: str) -> LoginStep:
        """Sign in with the login code (digits only are kept)."""
        return await self._step(self._submit_code, code)

    async def submit_recovery_code(self, code: str) -> LoginStep:
        """Finish a 2FA login with the emailed recovery code (digits only are kept)."""
        return await self._step(self._submit_recovery, code)

    async def cancel(self) -> None:
        """Abandon the attempt: disconnect, forget the partial authorization and the record."""
        async with self._lock:
            if not self._done:
                self._done = True
                await self._discard()
            self._stop_timer()

    @property
    def finished(self) -> bool:
        return self._done

    # --- machinery ---------------------------------------------------------------------------

    async def _step(self, fn: Callable[[str], Awaitable[LoginStep]], arg: str) -> LoginStep:
        async with self._lock:
            if self._timed_out:
                return Failed(
                    reason=LoginFailure.TIMEOUT,
                    message="The connection attempt timed out; start again.",
                    can_retry=False,
                )
            if self._done:
                return Failed(
                    reason=LoginFailure.INTERNAL,
                    message="This connection attempt is over; start again.",
                    can_retry=False,
                )
            self._touch()
            try:
                step = await fn(arg)
            except Exception:
                log.exception("login step failed")
                step = Failed(
                    reason=LoginFailure.INTERNAL,
                    message="Internal error while connecting; start again.",
                    can_retry=False,
                )
            if isinstance(step, Connected):
                self._done = True
                self._stop_timer()
            elif isinstance(step, Failed) and not step.can_retry:
                self._done = True
                self._stop_timer()
                await self._discard()
            else:
                self._touch()  # inactivity counts from the answer, not the question
            return step

    def _touch(self) -> None:
        self.last_activity = time.monotonic()
        self._stop_timer()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self.timeout, self._expire)

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        self._timer = None
        if self._done:
            return
        self._timed_out = True
        self._cleanup_task = asyncio.get_running_loop().create_task(self._expire_async())

    async def _expire_async(self) -> None:
        async with self._lock:
            if self._done:
                return
            self._done = True
            log.info("login attempt of administrator %d timed out", self.admin_id)
            await self._discard()

    async def _discard(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                await asyncio.wait_for(client.disconnect(), self.manager.options.request_timeout)
            except Exception as exc:
                log.debug("disconnecting an abandoned login: %s", type(exc).__name__)
        record, self.record = self.record, None
        if record is not None:
            try:
                await self.manager.storages.delete(record.id, record.storage)
            except StorageError as exc:
                log.warning("cannot forget abandoned session %d: %s", record.id, exc)
            current = await self.manager.store.get_session(record.id)
            if current is not None and current.state is SessionState.PENDING:
                if self._reused:
                    await self.manager.store.update_session(
                        msgspec.structs.replace(current, state=SessionState.LOGGED_OUT)
                    )
                else:
                    await self.manager.store.delete_session(record.id)

    async def _call(self, request: Any) -> Any:
        return await asyncio.wait_for(self._client(request), self.manager.options.request_timeout)

    @staticmethod
    def _failed(exc: BaseException) -> Failed:
        if isinstance(exc, errors.FloodError):
            seconds = int(getattr(exc, "seconds", 0) or 0)
            return Failed(
                reason=LoginFailure.FLOOD_WAIT,
                message=f"Telegram asks to wait {seconds} s before trying again.",
                retry_after=seconds,
            )
        if isinstance(exc, errors.RPCError):
            name = error_name(exc)
            known = _ERRORS.get(name)
            if known is not None:
                reason, text, can_retry = known
                return Failed(reason=reason, message=text, can_retry=can_retry)
            return Failed(
                reason=LoginFailure.INTERNAL,
                message=f"Telegram refused: {name}",
                can_retry=False,
            )
        if isinstance(exc, OSError | ConnectionError | TimeoutError):
            return Failed(
                reason=LoginFailure.NETWORK,
                message="Telegram cannot be reached right now; try again.",
            )
        return Failed(
            reason=LoginFailure.INTERNAL,
            message=f"Internal error: {type(exc).__name__}",
            can_retry=False,
        )

    async def _ensure_record(self, phone: str) -> SessionRecord:
        store = self.manager.store
        reuse: SessionRecord | None = None
        for rec in await store.list_sessions():
            if rec.phone != phone or (self.record is not None and rec.id == self.record.id):
                continue
            if rec.state is SessionState.ACTIVE or rec.id in self.manager.logins_in_progress():
                raise _AlreadyConnected(rec)
            if rec.storage is self.storage:
                reuse = rec
        if self.record is not None:
            if self.record.phone != phone:
                self.record = msgspec.structs.replace(self.record, phone=phone)
                await store.update_session(self.record)
            return self.record
        if reuse is not None:
            # A logged-out session of this number comes back with its lines and settings.
            rec = msgspec.structs.replace(
                reuse, admin_id=self.admin_id, state=SessionState.PENDING, last_error=""
            )
            await store.update_session(rec)
            self._reused = True
        else:
            rec = await store.create_session(
                SessionRecord(
                    admin_id=self.admin_id,
                    phone=phone,
                    storage=self.storage,
                    state=SessionState.PENDING,
                    created_at=time.time(),
                )
            )
        self.record = rec
        return rec

    async def _ensure_client(self, rec: SessionRecord) -> None:
        if self._client is not None:
            return
        self._session = await self.manager.storages.new_session(rec.id, rec.storage)
        self._client = self.manager.new_client(self._session)
        await asyncio.wait_for(self._client.connect(), self.manager.options.request_timeout)

    async def _submit_phone(self, raw: str) -> LoginStep:
        phone = normalize_phone(raw)
        if phone is None:
            return Failed(
                reason=LoginFailure.PHONE_INVALID,
                message="Send the phone number in international format, e.g. +44 20 7946 0000.",
            )
        try:
            rec = await self._ensure_record(phone)
        except _AlreadyConnected as exc:
            return Failed(
                reason=LoginFailure.ALREADY_CONNECTED,
                message=f"{phone} is already connected to this gateway (session {exc.record.id}).",
                can_retry=False,
            )
        try:
            await self._ensure_client(rec)
            sent = await self._call(
                functions.auth.SendCodeRequest(
                    phone_number=phone,
                    api_id=self.manager.options.api_id,
                    api_hash=self.manager.options.api_hash,
                    settings=types.CodeSettings(),
                )
            )
        except StorageError as exc:
            return Failed(reason=LoginFailure.INTERNAL, message=str(exc), can_retry=False)
        except (errors.RPCError, OSError, ConnectionError, TimeoutError) as exc:
            return self._failed(exc)
        self._phone = phone
        self._recovery = False
        if isinstance(sent, types.auth.SentCodeSuccess):
            return await self._finish(sent.authorization, False)
        self._phone_code_hash = sent.phone_code_hash
        kind = sent.type
        return CodeSent(
            phone=phone,
            length=getattr(kind, "length", None),
            via=_VIA.get(type(kind), type(kind).__name__),
        )

    async def _submit_code(self, raw: str) -> LoginStep:
        if not self._phone_code_hash:
            return Failed(reason=LoginFailure.CODE_EXPIRED, message="Send the phone number first.")
        code = digits_only(raw)
        if not code:
            return Failed(reason=LoginFailure.CODE_INVALID, message="The code is digits only.")
        try:
            auth = await self._call(
                functions.auth.SignInRequest(
                    phone_number=self._phone,
                    phone_code_hash=self._phone_code_hash,
                    phone_code=code,
                )
            )
        except errors.SessionPasswordNeededError:
            return await self._start_recovery()
        except (errors.RPCError, OSError, ConnectionError, TimeoutError) as exc:
            return self._failed(exc)
        if isinstance(auth, types.auth.AuthorizationSignUpRequired):
            return Failed(
                reason=LoginFailure.SIGN_UP_REQUIRED,
                message="No Telegram account uses this number; the gateway does not create "
                "accounts. Sign up with a Telegram app first.",
                can_retry=False,
            )
        return await self._finish(auth, False)

    async def _start_recovery(self) -> LoginStep:
        try:
            password = await self._call(functions.account.GetPasswordRequest())
            if not password.has_recovery:
                name, text, _ = _ERRORS["PASSWORD_RECOVERY_NA"]
                return Failed(reason=name, message=text, can_retry=False)
            recovery = await self._call(functions.auth.RequestPasswordRecoveryRequest())
        except (errors.RPCError, OSError, ConnectionError, TimeoutError) as exc:
            return self._failed(exc)
        self._recovery = True
        return RecoveryStarted(email_pattern=recovery.email_pattern)

    async def _submit_recovery(self, raw: str) -> LoginStep:
        if not self._recovery:
            return Failed(
                reason=LoginFailure.RECOVERY_CODE_INVALID,
                message="No password recovery is in progress.",
            )
        code = digits_only(raw)
        if not code:
            name, text, _ = _ERRORS["CODE_EMPTY"]
            return Failed(reason=name, message=text)
        try:
            auth = await self._call(functions.auth.RecoverPasswordRequest(code=code))
        except (errors.RPCError, OSError, ConnectionError, TimeoutError) as exc:
            return self._failed(exc)
        return await self._finish(auth, True)

    async def _finish(self, auth: Any, password_removed: bool) -> LoginStep:
        user = auth.user
        rec = self.record
        session = self._session
        assert rec is not None
        assert session is not None
        for other in await self.manager.store.list_sessions():
            if (
                other.id != rec.id
                and other.tg_user_id == user.id
                and other.state is SessionState.ACTIVE
            ):
                try:
                    await self._call(functions.auth.LogOutRequest())
                except Exception as exc:
                    log.debug("logging out a duplicate login: %s", type(exc).__name__)
                return Failed(
                    reason=LoginFailure.ALREADY_CONNECTED,
                    message=f"This account is already connected (session {other.id}).",
                    can_retry=False,
                )
        # Telethon's own post-login step (what ``client.sign_in`` runs): marks the client
        # authorized and loads the update state, so updates missed later can be caught up.
        await asyncio.wait_for(self._client._on_login(user), self.manager.options.request_timeout)
        session.process_entities(auth)
        await session.flush()
        phone = "+" + user.phone if user.phone else rec.phone
        rec = msgspec.structs.replace(
            rec,
            phone=phone,
            tg_user_id=user.id,
            username=user.username or "",
            state=SessionState.ACTIVE,
            last_error="",
        )
        await self.manager.store.update_session(rec)
        self.record = rec
        client, self._client = self._client, None
        await self.manager.adopt(rec, client, session)
        log.info("session %d connected (%s storage)", rec.id, rec.storage.value)
        return Connected(session=rec, password_removed=password_removed)


class _AlreadyConnected(Exception):
    def __init__(self, record: SessionRecord) -> None:
        super().__init__(record.id)
        self.record = record
