"""One Telegram private call as a sans-I/O state machine (``telegram_calls.md`` §1.5).

:class:`PrivateCall` takes Telethon TL objects (``PhoneCallWaiting``, ``PhoneCallRequested``,
``PhoneCallAccepted``, ``PhoneCall``, ``PhoneCallDiscarded``, the data of
``UpdatePhoneCallSignalingData``), the media leg's state changes and the local user's decisions
(accept, decline, hang up), each with the current time ``now`` (seconds, any monotonic origin).
Every input returns a list of actions for the I/O shell to carry out in order:

* :class:`Send` - a Telethon request (``phone.requestCall``, ``receivedCall``, ``acceptCall``,
  ``confirmCall``, ``discardCall``, ``setCallRating``);
* media commands - :class:`CreateMedia`, :class:`ConnectMedia`, :class:`SignalMedia`,
  :class:`StopMedia`;
* events for the call logic - :class:`Ringing`, :class:`Answered`, :class:`Connected`,
  :class:`Ended`.

The shell also calls :meth:`PrivateCall.tick` at (or after) :attr:`PrivateCall.deadline`.

Contract highlights: an incoming call is acknowledged with ``receivedCall`` at once; an outgoing
call not answered within ``ring_timeout`` is discarded as missed; signalling data that arrives
before the media leg has its key is buffered and replayed after :class:`ConnectMedia`; the
discard reason is ``missed`` (caller gave up before an answer), ``busy`` (callee declined),
``hangup`` (after the answer) or ``disconnect`` (media or key-exchange failure), with the
duration counted from media CONNECTED; ``need_rating`` is answered with a 5-star
``setCallRating`` once.
"""

from __future__ import annotations

import enum
import secrets
from dataclasses import dataclass, field
from typing import Any, Literal

from telethon.tl import types  # type: ignore[import-untyped]
from telethon.tl.functions import phone  # type: ignore[import-untyped]

from tgsip.telegram.calls.dh import CalleeExchange, CallerExchange, DhError, DhParams, KeyResult

#: Default ring timeout of an outgoing call, in seconds (``product.md``: 15 s).
RING_TIMEOUT = 15.0
#: Default time from confirmation to media CONNECTED, in seconds (``call_connect_timeout_ms``).
CONNECT_TIMEOUT = 30.0
#: Buffered early signalling per call: blobs and bytes kept at most (the rest is dropped).
MAX_BUFFERED_BLOBS = 64
MAX_BUFFERED_BYTES = 256 * 1024

MediaState = Literal["CONNECTING", "CONNECTED", "FAILED", "TIMEOUT", "CLOSED"]


class EndReason(enum.Enum):
    """Why a call ended, as ``phoneCallDiscardReason*``."""

    MISSED = "missed"
    BUSY = "busy"
    HANGUP = "hangup"
    DISCONNECT = "disconnect"

    def to_tl(self) -> Any:
        """The Telethon ``PhoneCallDiscardReason*`` object."""
        return {
            EndReason.MISSED: types.PhoneCallDiscardReasonMissed,
            EndReason.BUSY: types.PhoneCallDiscardReasonBusy,
            EndReason.HANGUP: types.PhoneCallDiscardReasonHangup,
            EndReason.DISCONNECT: types.PhoneCallDiscardReasonDisconnect,
        }[self]()

    @classmethod
    def from_tl(cls, reason: Any) -> EndReason:
        """Maps a received reason; ``None`` and unknown ones (the conference migration) are
        treated as hangup."""
        if isinstance(reason, types.PhoneCallDiscardReasonMissed):
            return cls.MISSED
        if isinstance(reason, types.PhoneCallDiscardReasonBusy):
            return cls.BUSY
        if isinstance(reason, types.PhoneCallDiscardReasonDisconnect):
            return cls.DISCONNECT
        return cls.HANGUP


class State(enum.Enum):
    """Where the call is."""

    REQUESTING = "requesting"  # caller: requestCall sent, no answer yet
    RINGING = "ringing"  # callee: receivedCall sent, waiting for accept()/decline()
    ACCEPTING = "accepting"  # callee: acceptCall sent, waiting for phoneCall
    CONFIRMING = "confirming"  # caller: confirmCall sent, waiting for phoneCall
    CONNECTING = "connecting"  # keys done, media connecting
    ACTIVE = "active"  # media connected
    ENDED = "ended"


# -- actions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Send:
    """Send this Telethon request (``phone.*``)."""

    request: Any


@dataclass(frozen=True)
class CreateMedia:
    """Create the media call for ``peer_id`` (the ntgcalls call id) and its PCM streams."""

    peer_id: int


@dataclass(frozen=True)
class RelayServer:
    """A ``phoneConnection`` (reflector) or ``phoneConnectionWebrtc`` (TURN/STUN) entry, in the
    shape ntgcalls' ``RTCServer`` wants (``telegram_calls.md`` §6.2)."""

    id: int
    ip: str
    ipv6: str
    port: int
    username: str | None
    password: str | None
    turn: bool
    stun: bool
    tcp: bool
    peer_tag: bytes | None

    @classmethod
    def from_tl(cls, conn: Any) -> RelayServer | None:
        """Maps a ``PhoneConnection``/``PhoneConnectionWebrtc``; ``None`` for anything else."""
        if isinstance(conn, types.PhoneConnectionWebrtc):
            return cls(
                conn.id,
                conn.ip,
                conn.ipv6,
                conn.port,
                conn.username,
                conn.password,
                bool(conn.turn),
                bool(conn.stun),
                False,
                None,
            )
        if isinstance(conn, types.PhoneConnection):
            return cls(
                conn.id,
                conn.ip,
                conn.ipv6,
                conn.port,
                None,
                None,
                True,
                False,
                bool(conn.tcp),
                bytes(conn.peer_tag),
            )
        return None


@dataclass(frozen=True)
class ConnectMedia:
    """Hand the key to the media call and connect it (``skip_exchange`` + ``connect_p2p``)."""

    peer_id: int
    key: bytes = field(repr=False)
    outgoing: bool
    servers: tuple[RelayServer, ...]
    versions: tuple[str, ...]
    p2p_allowed: bool
    custom_parameters: str | None


@dataclass(frozen=True)
class SignalMedia:
    """Feed one ``updatePhoneCallSignalingData`` blob to the media call."""

    peer_id: int
    data: bytes = field(repr=False)


@dataclass(frozen=True)
class StopMedia:
    """Stop and forget the media call."""

    peer_id: int


@dataclass(frozen=True)
class Ringing:
    """Caller: the callee's device received the call (``phoneCallWaiting.receive_date``)."""


@dataclass(frozen=True)
class Answered:
    """The call was accepted (caller: ``phoneCallAccepted``; callee: our ``acceptCall``)."""


@dataclass(frozen=True)
class Connected:
    """The media leg is connected: audio flows."""

    emojis: tuple[int, int, int, int]


@dataclass(frozen=True)
class Ended:
    """The call is over. ``by_remote``: the other side (or Telegram) discarded it;
    ``error``: a local failure (key exchange, media) explaining a ``disconnect``."""

    reason: EndReason
    duration: int
    by_remote: bool
    error: str | None = None


Action = (
    Send
    | CreateMedia
    | ConnectMedia
    | SignalMedia
    | StopMedia
    | Ringing
    | Answered
    | Connected
    | Ended
)


class CallError(Exception):
    """A local decision that does not fit the call's state (e.g. accept on an outgoing call)."""


class PrivateCall:
    """One private call; build it with :meth:`outgoing` or :meth:`incoming`."""

    def __init__(self, *, outgoing: bool, peer_id: int, protocol: Any) -> None:
        self.outgoing = outgoing
        self.peer_id = peer_id
        self.protocol = protocol
        self.state = State.REQUESTING if outgoing else State.RINGING
        self.call_id: int | None = None
        self.access_hash: int | None = None
        self.deadline: float | None = None
        self.connected_at: float | None = None
        self.end: Ended | None = None
        self.versions: tuple[str, ...] = ()
        self.key: KeyResult | None = None
        self._caller: CallerExchange | None = None
        self._callee: CalleeExchange | None = None
        self._g_a_hash = b""
        self._media = False
        self._media_keyed = False
        self._early: list[bytes] = []
        self._early_bytes = 0
        self._rated = False
        self._ringing_sent = False
        self._connect_timeout = CONNECT_TIMEOUT
        self.dropped_signaling = 0
        self._pending_discard: tuple[EndReason, int] | None = None

    # -- construction ----------------------------------------------------------------------

    @classmethod
    def outgoing_call(
        cls,
        *,
        input_user: Any,
        peer_id: int,
        params: DhParams,
        server_random: bytes,
        protocol: Any,
        now: float,
        ring_timeout: float = RING_TIMEOUT,
        connect_timeout: float = CONNECT_TIMEOUT,
        random_id: int | None = None,
        own_random: bytes | None = None,
    ) -> tuple[PrivateCall, list[Action]]:
        """Starts a call to ``input_user`` (an ``InputUser`` of user ``peer_id``).

        Returns the call and its first actions: create the media call, send
        ``phone.requestCall``. Feed the request's result (``phone.PhoneCall``) to
        :meth:`on_phone_call`. Raises :class:`~tgsip.telegram.calls.dh.DhError` on bad
        ``server_random``.
        """
        call = cls(outgoing=True, peer_id=peer_id, protocol=protocol)
        call._connect_timeout = connect_timeout
        call._caller = CallerExchange(params, server_random, own_random)
        call.deadline = now + ring_timeout
        rid = random_id if random_id is not None else secrets.randbits(31)
        req = phone.RequestCallRequest(
            user_id=input_user,
            g_a_hash=call._caller.g_a_hash,
            protocol=protocol,
            video=False,
            random_id=rid,
        )
        call._media = True
        return call, [CreateMedia(peer_id), Send(req)]

    @classmethod
    def incoming_call(
        cls,
        requested: Any,
        *,
        protocol: Any,
        now: float,
        answer_timeout: float | None = None,
        connect_timeout: float = CONNECT_TIMEOUT,
    ) -> tuple[PrivateCall, list[Action]]:
        """A ``PhoneCallRequested`` arrived: acknowledge it at once with ``receivedCall``. The
        media call is created on :meth:`accept` (signalling is buffered here until then).
        ``answer_timeout`` (seconds) declines the call when nobody decides."""
        if not isinstance(requested, types.PhoneCallRequested):
            raise CallError(f"not a PhoneCallRequested: {type(requested).__name__}")
        call = cls(outgoing=False, peer_id=requested.admin_id, protocol=protocol)
        call._connect_timeout = connect_timeout
        call.call_id = requested.id
        call.access_hash = requested.access_hash
        call._g_a_hash = bytes(requested.g_a_hash)
        call.deadline = None if answer_timeout is None else now + answer_timeout
        return call, [Send(phone.ReceivedCallRequest(peer=call.input_peer))]

    # -- properties ------------------------------------------------------------------------

    @property
    def input_peer(self) -> Any:
        """``InputPhoneCall`` of this call (once Telegram gave it an id)."""
        if self.call_id is None or self.access_hash is None:
            raise CallError("the call has no id yet")
        return types.InputPhoneCall(id=self.call_id, access_hash=self.access_hash)

    @property
    def ended(self) -> bool:
        """Whether the call is over."""
        return self.state is State.ENDED

    def duration(self, now: float) -> int:
        """Whole seconds since media CONNECTED (0 if it never connected)."""
        if self.connected_at is None:
            return 0
        return max(0, int(now - self.connected_at))

    # -- local decisions -------------------------------------------------------------------

    def accept(self, params: DhParams, server_random: bytes, now: float) -> list[Action]:
        """Callee: accept the ringing call (send ``phone.acceptCall`` with ``g_b``).

        ``params``/``server_random`` come from ``messages.getDhConfig`` fetched for this call.
        A DH failure ends the call with ``disconnect``.
        """
        if self.outgoing:
            raise CallError("accept() is for incoming calls")
        if self.state is State.ENDED:
            return []
        if self.state is not State.RINGING:
            raise CallError(f"accept() in state {self.state.value}")
        try:
            self._callee = CalleeExchange(params, server_random, self._g_a_hash)
        except DhError as exc:
            return self._finish(EndReason.DISCONNECT, now, by_remote=False, error=str(exc))
        self.state = State.ACCEPTING
        self.deadline = now + self._connect_timeout
        self._media = True
        req = phone.AcceptCallRequest(
            peer=self.input_peer, g_b=self._callee.g_b, protocol=self.protocol
        )
        return [CreateMedia(self.peer_id), Send(req), Answered()]

    def decline(self, now: float) -> list[Action]:
        """Callee: refuse the ringing call (``busy``, as official clients do)."""
        if self.state is State.ENDED:
            return []
        return self._finish(EndReason.BUSY, now, by_remote=False)

    def hangup(self, now: float, reason: EndReason | None = None) -> list[Action]:
        """Hang up: ``missed`` for a caller before the answer, ``busy`` for a callee that has
        not accepted, ``hangup`` after the answer; ``reason`` overrides the choice (a gateway
        whose hunt failed for reasons other than busy ends a ringing call with ``hangup``)."""
        if self.state is State.ENDED:
            return []
        if reason is not None:
            pass
        elif self.state is State.REQUESTING:
            reason = EndReason.MISSED
        elif self.state is State.RINGING:
            reason = EndReason.BUSY
        else:
            reason = EndReason.HANGUP
        return self._finish(reason, now, by_remote=False)

    def fail(self, error: str, now: float) -> list[Action]:
        """A local failure (a request Telegram refused, the media leg): discard with
        ``disconnect`` and ``error`` as the explanation."""
        if self.state is State.ENDED:
            return []
        return self._finish(EndReason.DISCONNECT, now, by_remote=False, error=error)

    def tick(self, now: float) -> list[Action]:
        """Handles an expired :attr:`deadline` (ring, answer or connect timeout)."""
        if self.deadline is None or now < self.deadline or self.state is State.ENDED:
            return []
        if self.state is State.REQUESTING:
            return self._finish(EndReason.MISSED, now, by_remote=False, error="ring timeout")
        if self.state is State.RINGING:
            return self._finish(EndReason.BUSY, now, by_remote=False, error="answer timeout")
        if self.state in (State.ACCEPTING, State.CONFIRMING, State.CONNECTING):
            return self._finish(EndReason.DISCONNECT, now, by_remote=False, error="connect timeout")
        self.deadline = None
        return []

    # -- inputs from Telegram --------------------------------------------------------------

    def on_phone_call(self, obj: Any, now: float) -> list[Action]:
        """Feeds a ``PhoneCall*`` object (from ``updatePhoneCall`` or an RPC result).

        Objects of another call id are ignored; so are repeats and states already passed.
        """
        if isinstance(obj, types.phone.PhoneCall):
            obj = obj.phone_call
        cid = getattr(obj, "id", None)
        if self.call_id is not None and cid != self.call_id:
            return []
        if isinstance(obj, types.PhoneCallDiscarded):
            self._pending_discard = None
            return self._on_discarded(obj, now)
        if self.state is State.ENDED:
            if self._pending_discard is None or cid is None:
                return []
            # Hung up before requestCall returned: discard now that the call has an id.
            self._learn_id(obj)
            reason, duration = self._pending_discard
            self._pending_discard = None
            return [Send(self._discard_request(reason, duration))]
        if isinstance(obj, types.PhoneCallWaiting):
            return self._on_waiting(obj)
        if isinstance(obj, types.PhoneCallAccepted):
            return self._on_accepted(obj, now)
        if isinstance(obj, types.PhoneCall):
            return self._on_call(obj, now)
        return []

    def on_signaling(self, data: bytes) -> list[Action]:
        """Feeds one ``updatePhoneCallSignalingData`` blob: to the media once it has the key,
        buffered (bounded) before."""
        if self.state is State.ENDED:
            return []
        if self._media_keyed:
            return [SignalMedia(self.peer_id, bytes(data))]
        if len(self._early) >= MAX_BUFFERED_BLOBS or self._early_bytes + len(data) > (
            MAX_BUFFERED_BYTES
        ):
            self.dropped_signaling += 1
            return []
        self._early.append(bytes(data))
        self._early_bytes += len(data)
        return []

    # -- inputs from the media leg ---------------------------------------------------------

    def on_media_state(self, state: MediaState, now: float) -> list[Action]:
        """The media leg's connection state: CONNECTED makes the call active; FAILED,
        TIMEOUT and CLOSED end it with ``disconnect``."""
        if self.state is State.ENDED:
            return []
        if state == "CONNECTED":
            if self.state is State.CONNECTING:
                self.state = State.ACTIVE
                self.connected_at = now
                self.deadline = None
                assert self.key is not None
                return [Connected(self.key.emojis)]
            return []
        if state in ("FAILED", "TIMEOUT", "CLOSED"):
            if not self._media_keyed:
                return []
            return self._finish(
                EndReason.DISCONNECT, now, by_remote=False, error=f"media {state.lower()}"
            )
        return []

    # -- internals -------------------------------------------------------------------------

    def _learn_id(self, obj: Any) -> None:
        if self.call_id is None:
            self.call_id = obj.id
            self.access_hash = obj.access_hash

    def _on_waiting(self, obj: Any) -> list[Action]:
        self._learn_id(obj)
        if (
            self.outgoing
            and self.state is State.REQUESTING
            and obj.receive_date is not None
            and not self._ringing_sent
        ):
            self._ringing_sent = True
            return [Ringing()]
        return []

    def _on_accepted(self, obj: Any, now: float) -> list[Action]:
        self._learn_id(obj)
        if not self.outgoing or self.state is not State.REQUESTING:
            return []
        assert self._caller is not None
        try:
            self.key = self._caller.complete(bytes(obj.g_b))
        except DhError as exc:
            return self._finish(EndReason.DISCONNECT, now, by_remote=False, error=str(exc))
        self.state = State.CONFIRMING
        self.deadline = now + self._connect_timeout
        req = phone.ConfirmCallRequest(
            peer=self.input_peer,
            g_a=self._caller.g_a,
            key_fingerprint=self.key.fingerprint,
            protocol=self.protocol,
        )
        out: list[Action] = []
        if not self._ringing_sent:
            self._ringing_sent = True
            out.append(Ringing())
        out += [Send(req), Answered()]
        return out

    def _on_call(self, obj: Any, now: float) -> list[Action]:
        self._learn_id(obj)
        if self.outgoing:
            if self.state is not State.CONFIRMING:
                return []
            assert self.key is not None
            if obj.key_fingerprint != self.key.fingerprint:
                return self._finish(
                    EndReason.DISCONNECT, now, by_remote=False, error="key fingerprint mismatch"
                )
        else:
            if self.state is not State.ACCEPTING:
                return []
            assert self._callee is not None
            try:
                self.key = self._callee.complete(bytes(obj.g_a_or_b), obj.key_fingerprint)
            except DhError as exc:
                return self._finish(EndReason.DISCONNECT, now, by_remote=False, error=str(exc))
        servers = tuple(
            s for s in (RelayServer.from_tl(c) for c in obj.connections or []) if s is not None
        )
        self.versions = tuple(obj.protocol.library_versions) if obj.protocol else ()
        custom = obj.custom_parameters.data if obj.custom_parameters is not None else None
        self.state = State.CONNECTING
        self.deadline = now + self._connect_timeout
        self._media_keyed = True
        out: list[Action] = [
            ConnectMedia(
                peer_id=self.peer_id,
                key=self.key.key,
                outgoing=self.outgoing,
                servers=servers,
                versions=self.versions,
                p2p_allowed=bool(obj.p2p_allowed),
                custom_parameters=custom,
            )
        ]
        out += [SignalMedia(self.peer_id, d) for d in self._early]
        self._early.clear()
        self._early_bytes = 0
        return out

    def _on_discarded(self, obj: Any, now: float) -> list[Action]:
        out: list[Action] = []
        if self.state is not State.ENDED:
            reason = EndReason.from_tl(obj.reason)
            out += self._finish(reason, now, by_remote=True, send=False)
        if obj.need_rating and not self._rated and self.call_id is not None:
            self._rated = True
            out.insert(
                0,
                Send(phone.SetCallRatingRequest(peer=self.input_peer, rating=5, comment="")),
            )
        return out

    def _discard_request(self, reason: EndReason, duration: int) -> Any:
        return phone.DiscardCallRequest(
            peer=self.input_peer,
            duration=duration,
            reason=reason.to_tl(),
            connection_id=0,
            video=False,
        )

    def _finish(
        self,
        reason: EndReason,
        now: float,
        *,
        by_remote: bool,
        error: str | None = None,
        send: bool = True,
    ) -> list[Action]:
        duration = self.duration(now)
        self.state = State.ENDED
        self.deadline = None
        self._early.clear()
        self._early_bytes = 0
        out: list[Action] = []
        if send and self.call_id is not None:
            out.append(Send(self._discard_request(reason, duration)))
        elif send:
            self._pending_discard = (reason, duration)
        if self._media:
            self._media = False
            out.append(StopMedia(self.peer_id))
        self.end = Ended(reason, duration, by_remote, error)
        out.append(self.end)
        return out


__all__ = [
    "CONNECT_TIMEOUT",
    "RING_TIMEOUT",
    "Action",
    "Answered",
    "CallError",
    "ConnectMedia",
    "Connected",
    "CreateMedia",
    "EndReason",
    "Ended",
    "MediaState",
    "PrivateCall",
    "RelayServer",
    "Ringing",
    "Send",
    "SignalMedia",
    "State",
    "StopMedia",
]
