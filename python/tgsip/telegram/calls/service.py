"""Private calls of one Telethon session: the thin I/O shell around :class:`PrivateCall`.

:class:`CallService` registers raw update handlers (``UpdatePhoneCall``,
``UpdatePhoneCallSignalingData``) on a connected :class:`telethon.TelegramClient`, keeps
``messages.getDhConfig`` validated and cached by version, places calls
(:meth:`CallService.call`), hands incoming ones to a callback, and carries out the state
machine's actions: Telethon requests (in order, per call), media commands on the shared
:class:`~tgsip.telegram.calls.media.TelegramMedia`, and events on the :class:`CallHandle`.

Errors: Telegram's ``FLOOD_WAIT_N`` becomes :class:`CallFloodWait` (with the wait in
seconds); any other refused request while placing a call becomes :class:`CallRefused` with
Telegram's error name.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from telethon import events  # type: ignore[import-untyped]
from telethon.errors import FloodWaitError, RPCError  # type: ignore[import-untyped]
from telethon.errors.rpcerrorlist import rpc_errors_dict  # type: ignore[import-untyped]
from telethon.tl import types  # type: ignore[import-untyped]
from telethon.tl.functions import contacts, messages, phone  # type: ignore[import-untyped]

from tgsip.telegram.calls.call import (
    CONNECT_TIMEOUT,
    RING_TIMEOUT,
    Action,
    Answered,
    Connected,
    ConnectMedia,
    CreateMedia,
    Ended,
    EndReason,
    MediaState,
    PrivateCall,
    Ringing,
    Send,
    SignalMedia,
    StopMedia,
)
from tgsip.telegram.calls.dh import DhParams, validate_params
from tgsip.telegram.calls.ports import PcmPort

if TYPE_CHECKING:  # the media module loads ntgcalls; the shell only needs its types
    from tgsip.telegram.calls.media import MediaCall, TelegramMedia

log = logging.getLogger(__name__)

#: Calls whose ids are kept after they ended (late discards, rating requests).
ENDED_KEPT = 64
#: Unknown call ids whose early signalling is kept, and blobs kept per id.
EARLY_CALLS = 16
EARLY_BLOBS = 64


class CallServiceError(Exception):
    """A call could not be placed or answered."""


class CallFloodWait(CallServiceError):
    """Telegram asked to wait ``seconds`` before trying again (``FLOOD_WAIT_N``)."""

    def __init__(self, seconds: int) -> None:
        super().__init__(f"FLOOD_WAIT_{seconds}: retry after {seconds} s")
        self.seconds = seconds


class CallRefused(CallServiceError):
    """Telegram refused a request of the call (``name`` is its error, e.g.
    ``USER_PRIVACY_RESTRICTED``) or the user could not be found (``USER_NOT_FOUND``)."""

    def __init__(self, name: str, message: str = "") -> None:
        super().__init__(f"{name}{': ' + message if message else ''}")
        self.name = name


_ERROR_NAMES: dict[type, str] = {cls: name for name, cls in rpc_errors_dict.items()}


def _translate(exc: Exception) -> CallServiceError:
    """Telethon's exception as ours; Telegram's error name is kept (``USER_PRIVACY_RESTRICTED``)."""
    if isinstance(exc, FloodWaitError):
        return CallFloodWait(int(exc.seconds))
    if isinstance(exc, RPCError):
        name = _ERROR_NAMES.get(type(exc)) or str(exc.message)
        return CallRefused(name, str(exc))
    return CallServiceError(repr(exc))


class CallHandle:
    """One call of this session, for the call logic.

    Events: :attr:`ringing` (caller: the callee's device rings), :attr:`answered`,
    :attr:`connected` (media flowing), :attr:`ended` (a future of
    :class:`~tgsip.telegram.calls.call.Ended`). Incoming calls are decided with
    :meth:`accept` or :meth:`decline`; any call ends with :meth:`hangup`.
    """

    def __init__(self, service: CallService, call: PrivateCall, port: PcmPort | None) -> None:
        self.service = service
        self.call = call
        self.port = port
        self.media: MediaCall | None = None
        self.ringing = asyncio.Event()
        self.answered = asyncio.Event()
        self.connected = asyncio.Event()
        self.ended: asyncio.Future[Ended] = asyncio.get_running_loop().create_future()
        self.emojis: tuple[int, int, int, int] | None = None
        self.created_at = service.now()
        self.connect_seconds: float | None = None
        self._requests: asyncio.Queue[Any] = asyncio.Queue()
        self._sender = asyncio.create_task(self._send_pump(), name=f"tg-call-{call.peer_id}")
        self._timer: asyncio.TimerHandle | None = None

    @property
    def peer_id(self) -> int:
        """The other user's id."""
        return self.call.peer_id

    @property
    def outgoing(self) -> bool:
        """Whether this session placed the call."""
        return self.call.outgoing

    async def accept(self, port: PcmPort) -> None:
        """Answers an incoming call with ``port`` as its audio. Raises
        :class:`CallServiceError` when the DH config cannot be fetched (the call then ends)."""
        if self.call.ended:
            return
        self.port = port
        try:
            params, random = await self.service.dh_config()
        except CallServiceError as exc:
            self._run(self.call.fail(str(exc), self.service.now()))
            raise
        self._run(self.call.accept(params, random, self.service.now()))

    def decline(self) -> None:
        """Refuses an incoming call (``busy``)."""
        self._run(self.call.decline(self.service.now()))

    def hangup(self, reason: EndReason | None = None) -> None:
        """Ends the call with the reason its state calls for, or ``reason``."""
        self._run(self.call.hangup(self.service.now(), reason))

    async def wait_ended(self, timeout: float) -> Ended:
        """The end of the call (bounded wait), after its media leg is gone."""
        end = await asyncio.wait_for(asyncio.shield(self.ended), timeout)
        if self.media is not None:
            await self.media.wait_closed(timeout)
        return end

    async def drain(self, timeout: float = 5.0) -> None:
        """Waits (bounded) until every queued request was sent."""
        await asyncio.wait_for(self._requests.join(), timeout)

    # -- running actions -------------------------------------------------------------------

    def _run(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                self._requests.put_nowait(action.request)
            elif isinstance(action, CreateMedia):
                self._create_media()
            elif isinstance(action, ConnectMedia):
                if self.media is not None:
                    self.media.connect(
                        action.key,
                        outgoing=action.outgoing,
                        servers=action.servers,
                        versions=action.versions,
                        p2p_allowed=action.p2p_allowed,
                        custom_parameters=action.custom_parameters,
                    )
            elif isinstance(action, SignalMedia):
                if self.media is not None:
                    self.media.signal(action.data)
            elif isinstance(action, StopMedia):
                if self.media is not None:
                    self.media.close()
            elif isinstance(action, Ringing):
                self.ringing.set()
            elif isinstance(action, Answered):
                self.answered.set()
            elif isinstance(action, Connected):
                self.emojis = action.emojis
                self.connect_seconds = self.service.now() - self.created_at
                log.info(
                    "call %s with %s connected (versions %s, emoji indices %s)",
                    self.call.call_id,
                    self.peer_id,
                    ",".join(self.call.versions),
                    action.emojis,
                )
                self.connected.set()
            elif isinstance(action, Ended):
                log.info(
                    "call %s with %s ended: %s, %d s%s%s",
                    self.call.call_id,
                    self.peer_id,
                    action.reason.value,
                    action.duration,
                    " (by the other side)" if action.by_remote else "",
                    f" ({action.error})" if action.error else "",
                )
                if not self.ended.done():
                    self.ended.set_result(action)
                self.service._ended(self)
        self._schedule()

    def _create_media(self) -> None:
        if self.port is None:
            self._run(self.call.fail("no PCM port", self.service.now()))
            return
        try:
            self.media = self.service.media.open(
                self.peer_id,
                self.port,
                on_state=self._media_state,
                send_signaling=self._send_signaling,
            )
        except Exception as exc:
            self._run(self.call.fail(f"media: {exc}", self.service.now()))

    def _media_state(self, state: MediaState) -> None:
        self._run(self.call.on_media_state(state, self.service.now()))

    async def _send_signaling(self, data: bytes) -> None:
        if self.call.call_id is None or self.call.ended:
            return
        await self.service.client(
            phone.SendSignalingDataRequest(peer=self.call.input_peer, data=data)
        )

    def _schedule(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.call.deadline
        if deadline is not None and not self.call.ended:
            self._timer = self.service.loop.call_at(
                self.service.loop.time() + max(0.0, deadline - self.service.now()), self._tick
            )

    def _tick(self) -> None:
        self._timer = None
        self._run(self.call.tick(self.service.now()))

    async def _send_pump(self) -> None:
        while True:
            request = await self._requests.get()
            try:
                await self._send(request)
            finally:
                self._requests.task_done()

    async def _send(self, request: Any) -> None:
        try:
            result = await self.service.client(request)
        except Exception as exc:
            log.warning("call %s: %s failed: %s", self.call.call_id, type(request).__name__, exc)
            if isinstance(request, phone.AcceptCallRequest | phone.ConfirmCallRequest):
                self._run(self.call.fail(str(_translate(exc)), self.service.now()))
            return
        if isinstance(result, types.phone.PhoneCall):
            self._run(self.call.on_phone_call(result.phone_call, self.service.now()))
        elif isinstance(result, types.Updates | types.UpdatesCombined):
            # discardCall answers with the final phoneCallDiscarded (need_rating); do not rely
            # on the client dispatching it to handlers.
            for update in result.updates:
                if isinstance(update, types.UpdatePhoneCall):
                    self._run(self.call.on_phone_call(update.phone_call, self.service.now()))

    def _close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._sender.cancel()


IncomingCallback = Callable[[CallHandle], Awaitable[None] | None]


class CallService:
    """Private calls of one signed-in Telethon client (a user account, not a bot).

    ``on_incoming`` receives each incoming call's handle (it must :meth:`CallHandle.accept`
    or :meth:`CallHandle.decline`; without a callback, or while ``max_calls`` calls are
    running, calls are declined as busy). ``versions`` limits the tgcalls library versions
    offered (default: all that ntgcalls supports).
    """

    def __init__(
        self,
        client: Any,
        media: TelegramMedia,
        *,
        on_incoming: IncomingCallback | None = None,
        ring_timeout: float = RING_TIMEOUT,
        answer_timeout: float | None = None,
        connect_timeout: float = CONNECT_TIMEOUT,
        max_calls: int = 100,
        versions: Sequence[str] | None = None,
    ) -> None:
        self.client = client
        self.media = media
        self.loop = asyncio.get_running_loop()
        self.on_incoming = on_incoming
        self.ring_timeout = ring_timeout
        self.answer_timeout = answer_timeout
        self.connect_timeout = connect_timeout
        self.max_calls = max_calls
        info = media.protocol()
        offered = [v for v in info.library_versions if versions is None or v in versions]
        if not offered:
            raise CallServiceError(f"none of {versions} is supported ({info.library_versions})")
        self.protocol = types.PhoneCallProtocol(
            min_layer=info.min_layer,
            max_layer=info.max_layer,
            library_versions=offered,
            udp_p2p=info.udp_p2p,
            udp_reflector=info.udp_reflector,
        )
        self._calls: dict[int, CallHandle] = {}  # by Telegram call id
        self._placing: list[CallHandle] = []  # outgoing calls without an id yet
        self._ended_ids: OrderedDict[int, CallHandle] = OrderedDict()
        self._early: OrderedDict[int, list[bytes]] = OrderedDict()
        self._dh: DhParams | None = None
        self._dh_lock = asyncio.Lock()
        self._handler: Any = None
        self._tasks: set[asyncio.Task[Any]] = set()

    def now(self) -> float:
        """The service's clock (the event loop's monotonic time)."""
        return self.loop.time()

    @property
    def active(self) -> list[CallHandle]:
        """Calls not ended yet."""
        return [h for h in {*self._calls.values(), *self._placing} if not h.call.ended]

    async def start(self) -> None:
        """Registers the update handlers and fetches the DH config once."""
        if self._handler is None:
            self._handler = self._on_update
            self.client.add_event_handler(
                self._handler,
                events.Raw(types=[types.UpdatePhoneCall, types.UpdatePhoneCallSignalingData]),
            )
        await self.dh_config()

    async def stop(self, timeout: float = 5.0) -> None:
        """Hangs up every call (bounded wait) and removes the handlers."""
        handles = self.active
        for h in handles:
            h.hangup()
        for h in handles:
            with contextlib.suppress(Exception):
                await h.drain(timeout)
                await h.wait_ended(timeout)
        if self._handler is not None:
            self.client.remove_event_handler(self._handler)
            self._handler = None
        for h in {*self._calls.values(), *self._ended_ids.values()}:
            h._close()
        for task in list(self._tasks):
            task.cancel()

    async def dh_config(self) -> tuple[DhParams, bytes]:
        """``messages.getDhConfig``: validated parameters (cached by version) and 256 fresh
        random bytes. Raises :class:`CallFloodWait`, :class:`CallRefused` or
        :class:`~tgsip.telegram.calls.dh.DhError`."""
        async with self._dh_lock:
            version = self._dh.version if self._dh is not None else 0
            try:
                cfg = await self.client(
                    messages.GetDhConfigRequest(version=version, random_length=256)
                )
            except Exception as exc:
                raise _translate(exc) from exc
            if isinstance(cfg, types.messages.DhConfig):
                self._dh = await asyncio.to_thread(
                    validate_params, int(cfg.g), bytes(cfg.p), int(cfg.version)
                )
            if self._dh is None:
                raise CallRefused("DH_CONFIG_INVALID", "no DH parameters cached")
            return self._dh, bytes(cfg.random)

    async def resolve(self, user: int | str) -> tuple[Any, int]:
        """``(InputUser, user id)`` for a user id, ``"@username"`` or ``"+phone"`` (the phone
        is imported as a contact). Raises :class:`CallRefused` (``USER_NOT_FOUND``) or
        :class:`CallFloodWait`."""
        try:
            if isinstance(user, int):
                entity = await self.client.get_input_entity(user)
                if not isinstance(entity, types.InputPeerUser | types.InputUser):
                    raise CallRefused("USER_NOT_FOUND", f"{user} is not a user")
                return types.InputUser(entity.user_id, entity.access_hash), int(entity.user_id)
            if user.startswith("@"):
                res = await self.client(contacts.ResolveUsernameRequest(username=user[1:]))
                users = [u for u in res.users if isinstance(u, types.User)]
            elif user.startswith("+"):
                contact = types.InputPhoneContact(
                    client_id=secrets.randbits(62), phone=user[1:], first_name=user, last_name=""
                )
                res = await self.client(contacts.ImportContactsRequest(contacts=[contact]))
                users = [u for u in res.users if isinstance(u, types.User)]
            else:
                raise CallRefused("USER_NOT_FOUND", f"not a user id, @username or +phone: {user}")
        except CallServiceError:
            raise
        except ValueError as exc:  # Telethon: an id it has no access hash for
            raise CallRefused("USER_NOT_FOUND", str(exc)) from exc
        except Exception as exc:
            raise _translate(exc) from exc
        if not users:
            raise CallRefused("USER_NOT_FOUND", str(user))
        u = users[0]
        return types.InputUser(u.id, u.access_hash or 0), int(u.id)

    async def call(self, user: int | str, port: PcmPort) -> CallHandle:
        """Calls ``user`` (id, ``"@username"`` or ``"+phone"``) with ``port`` as the audio.

        Returns once ``phone.requestCall`` was accepted by Telegram; follow the handle's
        events. Raises :class:`CallFloodWait`, :class:`CallRefused` or
        :class:`CallServiceError`.
        """
        input_user, peer_id = await self.resolve(user)
        params, random = await self.dh_config()
        call, actions = PrivateCall.outgoing_call(
            input_user=input_user,
            peer_id=peer_id,
            params=params,
            server_random=random,
            protocol=self.protocol,
            now=self.now(),
            ring_timeout=self.ring_timeout,
            connect_timeout=self.connect_timeout,
        )
        handle = CallHandle(self, call, port)
        self._placing.append(handle)
        request = None
        for a in actions:
            if isinstance(a, Send):
                request = a.request
            else:
                handle._run([a])
        if call.ended:
            self._placing.remove(handle)
            handle._close()
            raise CallServiceError(call.end.error if call.end else "the call could not start")
        try:
            result = await self.client(request)
        except Exception as exc:
            self._placing.remove(handle)
            handle._run(call.fail("requestCall refused", self.now()))
            if handle.media is not None:
                with contextlib.suppress(Exception):
                    await handle.media.wait_closed()
            handle._close()
            raise _translate(exc) from exc
        self._placing.remove(handle)
        handle._run(call.on_phone_call(result, self.now()))
        self._register(handle)
        return handle

    # -- updates ---------------------------------------------------------------------------

    def _register(self, handle: CallHandle) -> None:
        cid = handle.call.call_id
        if cid is None:
            return
        if handle.call.ended:
            self._remember_ended(cid, handle)
        else:
            self._calls[cid] = handle
        for data in self._early.pop(cid, []):
            handle._run(handle.call.on_signaling(data))

    def _ended(self, handle: CallHandle) -> None:
        cid = handle.call.call_id
        if cid is not None and self._calls.get(cid) is handle:
            del self._calls[cid]
            self._remember_ended(cid, handle)

    def _remember_ended(self, cid: int, handle: CallHandle) -> None:
        self._ended_ids[cid] = handle
        while len(self._ended_ids) > ENDED_KEPT:
            _, old = self._ended_ids.popitem(last=False)
            old._close()

    async def _on_update(self, update: Any) -> None:
        try:
            if isinstance(update, types.UpdatePhoneCall):
                await self._on_phone_call(update.phone_call)
            elif isinstance(update, types.UpdatePhoneCallSignalingData):
                self._on_signaling(int(update.phone_call_id), bytes(update.data))
        except Exception:
            log.exception("call update %s failed", type(update).__name__)

    async def _on_phone_call(self, obj: Any) -> None:
        now = self.now()
        cid = int(obj.id)
        handle = self._calls.get(cid) or self._ended_ids.get(cid)
        if handle is None and not isinstance(obj, types.PhoneCallRequested):
            # An outgoing call whose requestCall result has not arrived yet.
            participant = getattr(obj, "participant_id", None)
            handle = next((h for h in self._placing if h.peer_id == participant), None)
        if handle is not None:
            handle._run(handle.call.on_phone_call(obj, now))
            return
        if not isinstance(obj, types.PhoneCallRequested):
            return
        call, actions = PrivateCall.incoming_call(
            obj,
            protocol=self.protocol,
            now=now,
            answer_timeout=self.answer_timeout,
            connect_timeout=self.connect_timeout,
        )
        handle = CallHandle(self, call, None)
        self._register(handle)
        handle._run(actions)
        busy = self.on_incoming is None or len(self.active) > self.max_calls
        if busy or any(h.peer_id == call.peer_id for h in self.active if h is not handle):
            handle.decline()
            return
        assert self.on_incoming is not None
        result = self.on_incoming(handle)
        if result is not None:
            task = asyncio.ensure_future(result)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _on_signaling(self, cid: int, data: bytes) -> None:
        handle = self._calls.get(cid)
        if handle is not None:
            handle._run(handle.call.on_signaling(data))
            return
        if cid in self._ended_ids:
            return
        blobs = self._early.setdefault(cid, [])
        if len(blobs) < EARLY_BLOBS:
            blobs.append(data)
        while len(self._early) > EARLY_CALLS:
            self._early.popitem(last=False)


__all__ = [
    "CallFloodWait",
    "CallHandle",
    "CallRefused",
    "CallService",
    "CallServiceError",
]
