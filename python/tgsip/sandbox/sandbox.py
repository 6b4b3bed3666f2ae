"""The Sandbox: a local Telegram (MTProto server + shared world) with a scripting API.

Typical use::

    sandbox = Sandbox(data_dir)
    port = await sandbox.start("127.0.0.1", 0)
    alice = sandbox.create_user("15550001", "Alice", username="alice")
    await alice.send_message(bob, "hi")
    code = sandbox.last_login_code("15550001")

A Telethon client trusts the sandbox after ``telethon.crypto.rsa.add_key(sandbox.public_key_pem,
old=False)`` and connects with ``client.session.set_dc(sandbox.dc_id, host, port)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tgsip.sandbox import crypto
from tgsip.sandbox.botapi import BotApiServer
from tgsip.sandbox.calls import Call, CallEvent, CallState, DiscardReason, TurnServer
from tgsip.sandbox.reflector import Reflector
from tgsip.sandbox.rpc import DC_ID, Api
from tgsip.sandbox.server import Connection, MTProtoServer, RpcError
from tgsip.sandbox.world import Button, CallbackQuery, Email, Message, User, World, WorldError

DEFAULT_API_ID = 1
DEFAULT_API_HASH = "0123456789abcdef0123456789abcdef"
CALL_TICK_SECONDS = 1.0

log = logging.getLogger(__name__)


@dataclass
class ScriptedUser:
    """A sandbox user driven from Python."""

    sandbox: Sandbox
    id: int

    @property
    def user(self) -> User:
        user = self.sandbox.world.user_by_id(self.id)
        assert user is not None
        return user

    async def send_message(
        self,
        to: ScriptedUser | User | int,
        text: str,
        buttons: list[list[Button]] | None = None,
    ) -> Message:
        """Send a private message; the recipient's live clients receive updateNewMessage."""
        return self.sandbox.send_message(self.id, to, text, buttons)

    async def press_button(
        self, message_id: int, data: bytes, timeout: float = 10
    ) -> CallbackQuery:
        """Press an inline button on a bot's message in this user's box (see Sandbox)."""
        return await self.sandbox.press_button(self.id, message_id, data, timeout)

    def history(self, peer: ScriptedUser | User | int, limit: int = 50) -> list[Message]:
        """This user's copy of the chat with ``peer``, newest first."""
        return self.sandbox.world.history(self.id, _uid(peer), limit)

    def _bot_api(self) -> BotApiServer:
        if self.sandbox.bot_api is None:
            raise WorldError("BOT_API_NOT_STARTED")
        return self.sandbox.bot_api

    def reply_keyboard(self, bot: User | int) -> list[list[dict[str, Any]]] | None:
        """The reply keyboard (Bot API KeyboardButton objects) ``bot`` shows this user."""
        return self._bot_api().reply_keyboard(_uid(bot), self.id)

    async def share_contact(self, bot: User | int) -> Message:
        """Press the bot's ``request_contact`` keyboard button: send the own contact."""
        return self._bot_api().share_contact(self.id, _uid(bot))

    async def share_users(
        self, bot: User | int, request_id: int, users: list[ScriptedUser | User | int]
    ) -> Message:
        """Pick ``users`` with the bot's ``request_users`` keyboard button ``request_id``."""
        return self._bot_api().share_users(self.id, _uid(bot), request_id, [_uid(u) for u in users])

    def calls(self) -> list[Call]:
        """Every call this user made or received, newest first."""
        return self.sandbox.calls_of(self.id)


def _uid(who: ScriptedUser | User | int) -> int:
    return who if isinstance(who, int) else who.id


class Sandbox:
    """A local stand-in for Telegram persisted under ``data_dir``.

    ``data_dir`` holds ``world.sqlite3`` and the sandbox RSA key ``rsa_key.pem`` (created at
    first start). ``code_ttl`` is the login-code lifetime in seconds. ``advance(seconds)``
    moves the sandbox's clock (codes and password sessions expire by it).
    """

    def __init__(self, data_dir: Path | str, code_ttl: int = 300) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.code_ttl = code_ttl
        self._shift = 0
        self.rsa = crypto.load_or_create_rsa_key(self.data_dir / "rsa_key.pem")
        self.world = World(self.data_dir / "world.sqlite3", self.now())
        self.api = Api(self)
        self.server = MTProtoServer(self.world, self.rsa, self._dispatch, self.now)
        self.dc_id = DC_ID
        self._changed: dict[int, asyncio.Event] = {}
        self._answers: dict[int, asyncio.Event] = {}
        self.bot_api: BotApiServer | None = None
        self.on_login_code: Callable[[str, str], None] | None = None
        """Called with (phone, code) whenever a login code is sent (for the CLI)."""
        self.advertised_address: tuple[str, int] = ("127.0.0.1", 0)
        self.reflector: Reflector | None = None
        """The call reflector, once ``start_reflector`` ran (listed in every phoneCall)."""
        self.turn: TurnServer | None = None
        """A TURN server listed as phoneConnectionWebrtc (``configure_turn``)."""
        self.force_relay = False
        """When True every call gets p2p_allowed = false (relay-only media)."""
        self.call_custom_parameters: dict[str, Any] = {}
        """phoneCall.custom_parameters (DataJSON) for new calls."""
        self._call_versions: dict[int, tuple[str, ...]] = {}
        self._announced_versions: dict[int, tuple[str, ...]] = {}
        self._call_events: dict[int, asyncio.Event] = {}
        self._call_timer: asyncio.Task[None] | None = None

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen for MTProto clients; returns the bound port."""
        bound = await self.server.start(host, port)
        self.advertised_address = (host, bound)
        if self._call_timer is None:
            self._call_timer = asyncio.create_task(self._expire_calls_forever())
        return bound

    async def start_reflector(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Run the UDP call reflector (spec §5.2); returns its port. Calls confirmed from now
        on list it as ``phoneConnection`` with their own 16-byte peer_tag."""
        if self.reflector is None:
            self.reflector = Reflector()
            await self.reflector.start(host, port)
            for call in self.world.calls.active_calls():
                self.reflector.core.allow(call.peer_tag)
        return self.reflector.address[1]

    def configure_turn(self, host: str, port: int, username: str, password: str) -> None:
        """List a TURN server (phoneConnectionWebrtc, turn=true) in calls from now on."""
        self.turn = TurnServer(host, port, username, password)

    async def _expire_calls_forever(self) -> None:
        """End timed-out calls once a second (real time; ``advance`` also expires at once)."""
        while True:
            await asyncio.sleep(CALL_TICK_SECONDS)
            try:
                self.api.expire_calls()
            except Exception:  # keep ticking: one bad call must not stop the timeouts
                log.exception("expiring calls failed")

    async def start_bot_api(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Serve the Bot API over HTTP; returns the bound port (base URL http://host:port)."""
        self.bot_api = BotApiServer(self)
        return await self.bot_api.start(host, port)

    async def stop(self) -> None:
        if self.bot_api is not None:
            await self.bot_api.stop()
            self.bot_api = None
        await self.server.stop()
        if self._call_timer is not None:
            self._call_timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._call_timer
            self._call_timer = None
        if self.reflector is not None:
            self.reflector.stop()
            self.reflector = None

    def close(self) -> None:
        if "media" in self.api.__dict__:
            self.api.media.close()
        self.world.close()

    def now(self) -> int:
        return int(time.time()) + self._shift

    def advance(self, seconds: int) -> None:
        """Move the sandbox clock; calls whose timeouts passed end at once."""
        self._shift += seconds
        self.api.expire_calls()

    async def _dispatch(self, conn: Connection, request: Any) -> Any:
        self.api.screen(conn, request)
        return self.api.filter_result(conn, await self.api.dispatch(conn, request))

    # --- what a client needs -----------------------------------------------------------

    @property
    def public_key_pem(self) -> str:
        """PKCS#1 PEM of the sandbox RSA key, for ``telethon.crypto.rsa.add_key``."""
        return self.rsa.public_pem

    @property
    def fingerprint(self) -> int:
        return self.rsa.fingerprint

    # --- scripting ---------------------------------------------------------------------

    def create_user(
        self,
        phone: str,
        first_name: str,
        username: str | None = None,
        last_name: str = "",
    ) -> ScriptedUser:
        user = self.world.create_user(
            phone.lstrip("+"), first_name, self.now(), last_name=last_name, username=username
        )
        return ScriptedUser(self, user.id)

    def create_bot(self, username: str, first_name: str) -> User:
        """A bot account; its Bot API token is ``.bot_token``."""
        return self.world.create_bot(username, first_name, self.now())

    def scripted(self, who: User | int) -> ScriptedUser:
        return ScriptedUser(self, _uid(who))

    def user_by_phone(self, phone: str) -> User | None:
        return self.world.user_by_phone(phone.lstrip("+"))

    def last_login_code(self, phone: str) -> str | None:
        """The newest login code sent to ``phone`` (also sent to the user by 777000)."""
        record = self.world.last_login_code(phone.lstrip("+"))
        return record.code if record else None

    def set_password(
        self,
        user: ScriptedUser | User | int,
        password: str,
        hint: str | None = None,
        email: str | None = None,
    ) -> None:
        """Enable two-step verification (SRP); ``email`` enables recovery by email code."""
        salt1, salt2 = os.urandom(40), os.urandom(16)
        verifier = crypto.srp_verifier(password, salt1, salt2)
        self.world.set_password(_uid(user), salt1, salt2, verifier, hint, email)

    def emails(self, address: str) -> list[Email]:
        """Emails the sandbox "sent" to ``address`` (password recovery codes)."""
        return self.world.emails(address)

    def send_message(
        self,
        from_user: ScriptedUser | User | int,
        to: ScriptedUser | User | int,
        text: str,
        buttons: list[list[Button]] | None = None,
        markup: tuple[tuple[Button, ...], ...] | None = None,
        reply_to: int | None = None,
    ) -> Message:
        """Send a private message and push it to both sides' live clients."""
        if markup is None and buttons:
            markup = tuple(tuple(row) for row in buttons)
        mine, theirs = self.world.send_message(
            _uid(from_user), _uid(to), text, self.now(), reply_to=reply_to, buttons=markup
        )
        if theirs is not None:
            self.api.push_new_message(theirs)
        self.api.push_new_message(mine)
        return mine

    def edit_message(
        self,
        owner: ScriptedUser | User | int,
        message_id: int,
        text: str | None = None,
        buttons: list[list[Button]] | None = None,
        set_buttons: bool = False,
    ) -> Message:
        """Edit ``owner``'s message (and the other side's copy); both sides' clients see it."""
        markup = tuple(tuple(row) for row in buttons) if buttons else None
        edited = self.world.edit_message(
            _uid(owner),
            message_id,
            self.now(),
            text=text,
            buttons=markup,
            set_buttons=set_buttons,
        )
        for msg, pts in edited:
            self.api.push_edit(msg, pts)
        return edited[0][0]

    def delete_message(
        self, owner: ScriptedUser | User | int, message_id: int, revoke: bool = True
    ) -> bool:
        """Delete ``owner``'s message, and with ``revoke`` the other side's copy too."""
        uid = _uid(owner)
        msg = self.world.message(uid, message_id)
        if msg is None:
            return False
        targets = [(uid, message_id)]
        if revoke and msg.twin_id is not None:
            targets.append((msg.peer_id, msg.twin_id))
        for who, mid in targets:
            deleted, pts = self.world.delete_messages(who, [mid])
            if deleted:
                self.api.push_delete(who, deleted, pts)
        return True

    def accept_login_token(self, user: ScriptedUser | User | int, token: bytes) -> None:
        """Scan a QR login token (``tg://login?token=...``) with ``user``'s logged-in phone."""
        account = self.world.user_by_id(_uid(user))
        if account is None:
            raise WorldError("USER_ID_INVALID")
        try:
            self.api.accept_login_token(account, token)
        except RpcError as exc:
            raise WorldError(exc.message) from exc

    async def press_button(
        self, user: ScriptedUser | User | int, message_id: int, data: bytes, timeout: float = 10
    ) -> CallbackQuery:
        """Press the inline button carrying ``data`` on ``user``'s copy of a bot's message.

        Waits up to ``timeout`` s for the bot's answerCallbackQuery; returns the query (check
        ``answered``). Raises WorldError MESSAGE_ID_INVALID or DATA_INVALID.
        """
        uid = _uid(user)
        msg = self.world.message(uid, message_id)
        if msg is None or msg.out or msg.twin_id is None:
            raise WorldError("MESSAGE_ID_INVALID")
        sender = self.world.user_by_id(msg.from_id)
        if sender is None or not sender.is_bot:
            raise WorldError("MESSAGE_ID_INVALID")
        if not any(b.data == data for row in msg.buttons or () for b in row):
            raise WorldError("DATA_INVALID")
        query = self.world.add_callback_query(sender.id, uid, msg.twin_id, data, self.now())
        answered = self._answers[query.id] = asyncio.Event()
        self._wake(sender.id)
        try:
            await asyncio.wait_for(answered.wait(), timeout)
        except TimeoutError:
            pass
        finally:
            self._answers.pop(query.id, None)
        final = self.world.callback_query(query.id)
        assert final is not None
        return final

    def answer_callback_query(
        self, query_id: int, text: str | None, show_alert: bool = False, url: str | None = None
    ) -> bool:
        """The bot's answer to a button press; False if unknown or already answered."""
        if not self.world.answer_callback_query(query_id, text, show_alert, url):
            return False
        event = self._answers.get(query_id)
        if event is not None:
            event.set()
        return True

    def _wake(self, user_id: int) -> None:
        event = self._changed.pop(user_id, None)
        if event is not None:
            event.set()

    def changed(self, user_id: int) -> asyncio.Event:
        """An event set (and replaced) whenever ``user_id``'s message box changes."""
        event = self._changed.get(user_id)
        if event is None:
            event = self._changed[user_id] = asyncio.Event()
        return event

    def push(self, user_id: int, update: object, exclude: Connection | None = None) -> None:
        """Send ``update`` to every live, authorized connection of ``user_id`` but ``exclude``.

        Also wakes Bot API long polls waiting on ``changed(user_id)``.
        """
        self._wake(user_id)
        update = self.api.filter_push(user_id, update)
        for conn in list(self.server.connections):
            if conn is exclude or conn.session_id is None or conn.auth_key is None:
                continue
            record = self.world.auth_key(conn.key_id)
            if record is not None and record.user_id == user_id:
                conn.send_update(update)

    # --- calls -------------------------------------------------------------------------

    def calls_of(self, user: ScriptedUser | User | int) -> list[Call]:
        """Every call ``user`` made or received, newest first."""
        return self.world.calls.of_user(_uid(user))

    def call(self, call_id: int) -> Call | None:
        """The call's current server-side state."""
        return self.world.calls.get(call_id)

    def end_call(self, call_id: int, reason: DiscardReason = DiscardReason.DISCONNECT) -> Call:
        """End a call as the server (e.g. a network loss): both parties get
        phoneCallDiscarded with ``reason``. Raises WorldError CALL_PEER_INVALID if unknown."""
        call = self.world.calls.get(call_id)
        if call is None:
            raise WorldError("CALL_PEER_INVALID")
        return self.api.end_call(call, reason)

    def call_history(self, call_id: int) -> list[CallEvent]:
        """What happened to the call, oldest first (requested, received, accepted, confirmed,
        signaling with the blob size, discarded:<reason>, rated, debug)."""
        return self.world.calls.events(call_id)

    async def wait_call(
        self,
        call_id: int,
        states: Collection[CallState] = (CallState.DISCARDED,),
        timeout: float = 10,
    ) -> Call:
        """Wait until the call is in one of ``states``; raises TimeoutError after ``timeout``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            call = self.world.calls.get(call_id)
            if call is None:
                raise WorldError("CALL_PEER_INVALID")
            if call.state in states:
                return call
            event = self._call_events.get(call_id)
            if event is None:
                event = self._call_events[call_id] = asyncio.Event()
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"call {call_id} stayed {call.state.value}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)

    def call_touched(self, call: Call) -> None:
        """Wake ``wait_call`` waiters of ``call`` (called by the call methods)."""
        event = self._call_events.pop(call.id, None)
        if event is not None:
            event.set()

    def set_call_versions(
        self, user: ScriptedUser | User | int, versions: Sequence[str] | None
    ) -> None:
        """Declare the tgcalls versions ``user``'s client supports (None: unknown). A call to
        a user with no common version fails with PARTICIPANT_VERSION_OUTDATED."""
        if versions is None:
            self._call_versions.pop(_uid(user), None)
        else:
            self._call_versions[_uid(user)] = tuple(versions)

    def client_call_versions(self, user_id: int) -> tuple[str, ...] | None:
        """The versions set by ``set_call_versions``, else those the user's client last
        offered in requestCall/acceptCall, else None."""
        return self._call_versions.get(user_id, self._announced_versions.get(user_id))

    def announce_call_versions(self, user_id: int, versions: Sequence[str]) -> None:
        self._announced_versions[user_id] = tuple(versions)
