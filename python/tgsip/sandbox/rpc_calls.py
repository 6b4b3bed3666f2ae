"""MTProto methods for private calls: messages.getDhConfig and phone.* (telegram_calls.md §1-3).

A mixin of :class:`tgsip.sandbox.rpc.Api`. The call state machine and its storage are in
:mod:`tgsip.sandbox.calls`; this module checks who may do what, turns calls into TL objects
for each side, and pushes ``updatePhoneCall`` / ``updatePhoneCallSignalingData`` to exactly the
party (and, once a call is bound to them, the authorization) that must see them.

Error names are Telegram's (core.telegram.org/method/phone.*). Where Telegram documents no
name, the sandbox uses ``DH_G_A_INVALID`` (bad g_a_hash length, g_a out of range or not
matching g_a_hash), ``DH_G_B_INVALID`` (g_b out of range), ``RATING_INVALID`` and
``DATA_TOO_LONG`` (signalling blob above 64 KiB).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from telethon.tl import types  # type: ignore[import-untyped]

from tgsip.sandbox.calls import (
    CALL_CONNECT_TIMEOUT_MS,
    CALL_PACKET_TIMEOUT_MS,
    CALL_RECEIVE_TIMEOUT_MS,
    CALL_RING_TIMEOUT_MS,
    DH_G,
    DH_PRIME,
    DH_VERSION,
    Call,
    CallError,
    CallProtocol,
    CallState,
    CallStore,
    DiscardReason,
)
from tgsip.sandbox.server import Connection, RpcError
from tgsip.sandbox.world import SERVICE_USER_ID, User

if TYPE_CHECKING:
    from tgsip.sandbox.sandbox import Sandbox

__all__ = [
    "CALL_CONNECT_TIMEOUT_MS",
    "CALL_PACKET_TIMEOUT_MS",
    "CALL_RECEIVE_TIMEOUT_MS",
    "CALL_RING_TIMEOUT_MS",
    "REFLECTOR_CONNECTION_ID",
    "TURN_CONNECTION_ID",
    "CallsApi",
]

REFLECTOR_CONNECTION_ID = 1
TURN_CONNECTION_ID = 2
MAX_RANDOM_LENGTH = 1024

_REASONS_IN: dict[type, DiscardReason] = {
    types.PhoneCallDiscardReasonMissed: DiscardReason.MISSED,
    types.PhoneCallDiscardReasonDisconnect: DiscardReason.DISCONNECT,
    types.PhoneCallDiscardReasonHangup: DiscardReason.HANGUP,
    types.PhoneCallDiscardReasonBusy: DiscardReason.BUSY,
    # A move to a conference call ends the private call like a hang-up.
    types.PhoneCallDiscardReasonMigrateConferenceCall: DiscardReason.HANGUP,
}
_REASONS_OUT: dict[DiscardReason, Any] = {
    DiscardReason.MISSED: types.PhoneCallDiscardReasonMissed,
    DiscardReason.DISCONNECT: types.PhoneCallDiscardReasonDisconnect,
    DiscardReason.HANGUP: types.PhoneCallDiscardReasonHangup,
    DiscardReason.BUSY: types.PhoneCallDiscardReasonBusy,
}

CALL_CONFIG: dict[str, Any] = {
    "audio_frame_size": 60,
    "jitter_min_delay_60": 2,
    "jitter_max_delay_60": 10,
    "jitter_max_slots_60": 20,
    "jitter_losses_to_reset": 20,
    "jitter_resync_threshold": 0.5,
    "audio_congestion_window": 1024,
    "audio_max_bitrate": 20000,
    "audio_init_bitrate": 16000,
    "audio_min_bitrate": 8000,
    "use_tcp": False,
    "force_tcp": False,
}
"""phone.getCallConfig's JSON (libtgvoip-era tuning; tgcalls ignores it)."""


@contextlib.contextmanager
def _as_rpc_error() -> Iterator[None]:
    try:
        yield
    except CallError as exc:
        raise RpcError(exc.code, exc.name) from exc


def _protocol(tl: Any) -> CallProtocol:
    versions = tuple(str(v) for v in tl.library_versions if isinstance(v, str) and v)[:16]
    return CallProtocol(
        min_layer=int(tl.min_layer),
        max_layer=int(tl.max_layer),
        library_versions=versions,
        udp_p2p=bool(tl.udp_p2p),
        udp_reflector=bool(tl.udp_reflector),
    )


def _tl_protocol(p: CallProtocol) -> Any:
    return types.PhoneCallProtocol(
        min_layer=p.min_layer,
        max_layer=p.max_layer,
        library_versions=list(p.library_versions),
        udp_p2p=p.udp_p2p or None,
        udp_reflector=p.udp_reflector or None,
    )


class CallsApi:
    """Handlers for messages.getDhConfig and the phone.* private-call methods."""

    if TYPE_CHECKING:
        sandbox: Sandbox

        def me(self, conn: Connection) -> User: ...

        def resolve_peer(self, peer: Any, me: User) -> User: ...

        def tl_users(self, ids: set[int], viewer: User) -> list[Any]: ...

    # --- helpers -----------------------------------------------------------------------

    @property
    def calls(self) -> CallStore:
        store: CallStore = self.sandbox.world.calls
        return store

    def _privacy_allows(self, owner: User, other: User, key: str) -> bool:
        """Whether ``owner``'s privacy rules for ``key`` let ``other`` in (user lists first)."""
        world = self.sandbox.world
        rules: list[dict[str, Any]] = world.privacy(owner.id, key)
        for rule in rules:
            if rule["kind"] == "disallow_users" and other.id in rule["users"]:
                return False
        for rule in rules:
            if rule["kind"] == "allow_users" and other.id in rule["users"]:
                return True
        contact = bool(world.is_contact(owner.id, other.id))
        for rule in rules:
            kind = rule["kind"]
            if kind == "allow_all":
                return True
            if kind == "disallow_all":
                return False
            if kind == "allow_contacts":
                return contact
            if kind == "disallow_contacts":
                return not contact
        return True

    def _party(self, conn: Connection, peer: Any) -> tuple[User, Call]:
        me = self.me(conn)
        if not isinstance(peer, types.InputPhoneCall):
            raise RpcError(400, "CALL_PEER_INVALID")
        with _as_rpc_error():
            return me, self.calls.party_call(peer.id, peer.access_hash, me.id)

    def tl_call(self, call: Call, viewer_id: int) -> Any:
        """The PhoneCall object ``viewer_id`` (caller or callee) sees for ``call`` now."""
        common: dict[str, Any] = {
            "id": call.id,
            "access_hash": call.access_hash,
            "date": call.date,
            "admin_id": call.admin_id,
            "participant_id": call.participant_id,
            "video": call.video or None,
        }
        is_admin = viewer_id == call.admin_id
        agreed = call.protocol
        if call.state is CallState.DISCARDED:
            reason = _REASONS_OUT[call.reason or DiscardReason.DISCONNECT]()
            return types.PhoneCallDiscarded(
                id=call.id,
                reason=reason,
                duration=call.duration,
                need_rating=call.need_rating or None,
                video=call.video or None,
            )
        if call.state is CallState.REQUESTED:
            if is_admin:
                return types.PhoneCallWaiting(
                    protocol=_tl_protocol(call.admin_protocol),
                    receive_date=call.receive_date,
                    **common,
                )
            return types.PhoneCallRequested(
                g_a_hash=call.g_a_hash, protocol=_tl_protocol(call.admin_protocol), **common
            )
        assert agreed is not None
        if call.state is CallState.ACCEPTED:
            if is_admin:
                return types.PhoneCallAccepted(
                    g_b=call.g_b, protocol=_tl_protocol(agreed), **common
                )
            return types.PhoneCallWaiting(
                protocol=_tl_protocol(agreed), receive_date=call.receive_date, **common
            )
        return types.PhoneCall(
            g_a_or_b=call.g_b if is_admin else call.g_a,
            key_fingerprint=call.key_fingerprint,
            protocol=_tl_protocol(agreed),
            connections=self._connections(call),
            start_date=call.start_date,
            p2p_allowed=call.p2p_allowed or None,
            custom_parameters=types.DataJSON(json.dumps(self.sandbox.call_custom_parameters)),
            **common,
        )

    def _connections(self, call: Call) -> list[Any]:
        out: list[Any] = []
        reflector = self.sandbox.reflector
        if reflector is not None:
            host, port = reflector.address
            out.append(
                types.PhoneConnection(
                    id=REFLECTOR_CONNECTION_ID,
                    ip=host,
                    ipv6="",
                    port=port,
                    peer_tag=call.peer_tag,
                )
            )
        turn = self.sandbox.turn
        if turn is not None:
            out.append(
                types.PhoneConnectionWebrtc(
                    id=TURN_CONNECTION_ID,
                    ip=turn.host,
                    ipv6="",
                    port=turn.port,
                    username=turn.username,
                    password=turn.password,
                    turn=True,
                    stun=False,
                )
            )
        return out

    def _conns_of(self, call: Call, user_id: int, other_keys: bool = False) -> list[Connection]:
        """``user_id``'s live connections for ``call``: the bound authorization only, or all
        authorizations that take calls while the call is not bound to one yet. With
        ``other_keys``: the authorizations other than the bound one."""
        world = self.sandbox.world
        key = call.admin_key if user_id == call.admin_id else call.participant_key
        out = []
        for conn in list(self.sandbox.server.connections):
            if conn.session_id is None or conn.auth_key is None:
                continue
            record = world.auth_key(conn.key_id)
            if record is None or record.user_id != user_id:
                continue
            if other_keys:
                wanted = key is not None and record.key_id != key
            elif key is not None:
                wanted = record.key_id == key
            else:
                wanted = not record.calls_disabled
            if wanted:
                out.append(conn)
        return out

    def _updates(self, update: Any, call: Call, viewer_id: int) -> Any:
        viewer = self.sandbox.world.user_by_id(viewer_id)
        users = self.tl_users({call.admin_id, call.participant_id}, viewer) if viewer else []
        return types.Updates(
            updates=[update], users=users, chats=[], date=self.sandbox.now(), seq=0
        )

    def push_call(self, call: Call, user_id: int, exclude: Connection | None = None) -> None:
        """Send ``updatePhoneCall`` with ``user_id``'s view of ``call`` to that party."""
        update = self._updates(types.UpdatePhoneCall(self.tl_call(call, user_id)), call, user_id)
        for conn in self._conns_of(call, user_id):
            if conn is not exclude:
                conn.send_update(update)

    def _changed(self, call: Call) -> None:
        reflector = self.sandbox.reflector
        if reflector is not None:
            if call.state is CallState.ACTIVE:
                reflector.core.allow(call.peer_tag)
            elif call.state is CallState.DISCARDED:
                reflector.core.revoke(call.peer_tag)
        self.sandbox.call_touched(call)

    def expire_calls(self) -> list[Call]:
        """End timed-out calls (sandbox clock) and tell both parties; returns them."""
        ended = self.calls.expire(self.sandbox.now())
        for call in ended:
            self.push_call(call, call.admin_id)
            self.push_call(call, call.participant_id)
            self._changed(call)
        return ended

    def end_call(self, call: Call, reason: DiscardReason) -> Call:
        """End ``call`` from the server side and tell both parties."""
        ended = self.calls.end(call, reason, self.sandbox.now())
        if ended is not call:
            self.push_call(ended, ended.admin_id)
            self.push_call(ended, ended.participant_id)
            self._changed(ended)
        return ended

    def _phone_call(self, call: Call, viewer: User) -> Any:
        return types.phone.PhoneCall(
            phone_call=self.tl_call(call, viewer.id),
            users=self.tl_users({call.admin_id, call.participant_id}, viewer),
        )

    # --- methods -----------------------------------------------------------------------

    def on_messages_GetDhConfigRequest(self, conn: Connection, req: Any) -> Any:
        if not 0 <= req.random_length <= MAX_RANDOM_LENGTH:
            raise RpcError(400, "RANDOM_LENGTH_INVALID")
        random = os.urandom(req.random_length)
        if req.version == DH_VERSION:
            return types.messages.DhConfigNotModified(random=random)
        return types.messages.DhConfig(
            g=DH_G, p=DH_PRIME.to_bytes(256, "big"), version=DH_VERSION, random=random
        )

    def on_phone_GetCallConfigRequest(self, conn: Connection, req: Any) -> Any:
        self.me(conn)
        return types.DataJSON(json.dumps(CALL_CONFIG))

    def on_phone_RequestCallRequest(self, conn: Connection, req: Any) -> Any:
        me = self.me(conn)
        if me.is_bot:
            raise RpcError(400, "BOT_METHOD_INVALID")
        try:
            callee = self.resolve_peer(req.user_id, me)
        except RpcError as exc:
            raise RpcError(400, "USER_ID_INVALID") from exc
        if callee.id in (me.id, SERVICE_USER_ID) or callee.is_bot:
            raise RpcError(400, "USER_ID_INVALID")
        protocol = _protocol(req.protocol)
        with _as_rpc_error():
            protocol.check()
        if not self._privacy_allows(callee, me, "phone_call"):
            raise RpcError(403, "USER_PRIVACY_RESTRICTED")
        known = self.sandbox.client_call_versions(callee.id)
        if known is not None and not any(v in known for v in protocol.library_versions):
            raise RpcError(400, "PARTICIPANT_VERSION_OUTDATED")
        with _as_rpc_error():
            call = self.calls.request(
                me.id,
                conn.key_id,
                callee.id,
                int(req.random_id),
                bytes(req.g_a_hash),
                protocol,
                bool(req.video),
                self.sandbox.now(),
            )
        self.sandbox.announce_call_versions(me.id, protocol.library_versions)
        if call.state is CallState.REQUESTED:
            self.push_call(call, callee.id)
        self._changed(call)
        return self._phone_call(call, me)

    def on_phone_ReceivedCallRequest(self, conn: Connection, req: Any) -> Any:
        me, call = self._party(conn, req.peer)
        with _as_rpc_error():
            call, new = self.calls.received(call, me.id, self.sandbox.now())
        if new:
            self.push_call(call, call.admin_id)
            self._changed(call)
        return True

    def on_phone_AcceptCallRequest(self, conn: Connection, req: Any) -> Any:
        me, call = self._party(conn, req.peer)
        protocol = _protocol(req.protocol)
        with _as_rpc_error():
            call = self.calls.accept(
                call, me.id, conn.key_id, bytes(req.g_b), protocol, self.sandbox.now()
            )
        self.sandbox.announce_call_versions(me.id, protocol.library_versions)
        self.push_call(call, call.admin_id)
        # The callee's other devices stop ringing: the call was answered elsewhere.
        gone = self._updates(
            types.UpdatePhoneCall(types.PhoneCallDiscarded(id=call.id)), call, me.id
        )
        for other in self._conns_of(call, me.id, other_keys=True):
            other.send_update(gone)
        self._changed(call)
        return self._phone_call(call, me)

    def on_phone_ConfirmCallRequest(self, conn: Connection, req: Any) -> Any:
        me, call = self._party(conn, req.peer)
        if me.id == call.admin_id and call.state is CallState.ACCEPTED:
            with _as_rpc_error():
                _protocol(req.protocol).check()
        callee = self.sandbox.world.user_by_id(call.participant_id)
        p2p = (
            not self.sandbox.force_relay
            and callee is not None
            and self._privacy_allows(me, callee, "phone_p2p")
            and self._privacy_allows(callee, me, "phone_p2p")
            and (call.protocol is None or call.protocol.udp_p2p)
        )
        with _as_rpc_error():
            call = self.calls.confirm(
                call, me.id, bytes(req.g_a), int(req.key_fingerprint), p2p, self.sandbox.now()
            )
        self._changed(call)
        self.push_call(call, call.participant_id)
        return self._phone_call(call, me)

    def on_phone_DiscardCallRequest(self, conn: Connection, req: Any) -> Any:
        me, call = self._party(conn, req.peer)
        reason = _REASONS_IN.get(type(req.reason))
        if reason is None:
            raise RpcError(400, "CALL_PEER_INVALID")
        with _as_rpc_error():
            call = self.calls.discard(call, me.id, reason, int(req.duration), self.sandbox.now())
        other = call.other(me.id)
        self.push_call(call, other)
        self.push_call(call, me.id, exclude=conn)
        self._changed(call)
        return self._updates(types.UpdatePhoneCall(self.tl_call(call, me.id)), call, me.id)

    def on_phone_SendSignalingDataRequest(self, conn: Connection, req: Any) -> Any:
        me, call = self._party(conn, req.peer)
        data = bytes(req.data)
        with _as_rpc_error():
            self.calls.signaling(call, me.id, len(data), self.sandbox.now())
        other = call.other(me.id)
        update = self._updates(
            types.UpdatePhoneCallSignalingData(phone_call_id=call.id, data=data), call, other
        )
        for peer_conn in self._conns_of(call, other):
            peer_conn.send_update(update)
        self.sandbox.call_touched(call)
        return True

    def on_phone_SetCallRatingRequest(self, conn: Connection, req: Any) -> Any:
        me, call = self._party(conn, req.peer)
        with _as_rpc_error():
            call = self.calls.rate(
                call, me.id, int(req.rating), str(req.comment), self.sandbox.now()
            )
        self.sandbox.call_touched(call)
        return types.Updates(updates=[], users=[], chats=[], date=self.sandbox.now(), seq=0)

    def on_phone_SaveCallDebugRequest(self, conn: Connection, req: Any) -> Any:
        me, call = self._party(conn, req.peer)
        with _as_rpc_error():
            self.calls.save_debug(call, me.id, str(req.debug.data), self.sandbox.now())
        return True
