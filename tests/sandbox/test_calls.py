"""Private calls between real Telethon clients: DH, states, signalling, errors, timeouts."""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import os
import secrets
import socket
import sys
from pathlib import Path
from typing import Any

import pytest
from telethon import TelegramClient, events, functions, types
from telethon.errors import RPCError
from telethon.errors.rpcerrorlist import rpc_errors_dict
from telethon.sessions import StringSession

from tgsip.sandbox import DEFAULT_API_HASH, DEFAULT_API_ID, Sandbox, ScriptedUser
from tgsip.sandbox.calls import DH_PRIME, CallState, DiscardReason

from .conftest import TIMEOUT, ClientFactory, login

ERROR_NAMES = {cls: name for name, cls in rpc_errors_dict.items()}
# Telegram's prime as printed in the spec (telegram_calls.md §2).
SPEC_PRIME = int(
    "C71CAEB9C6B1C9048E6C522F70F13F73980D40238E3E21C14934D037563D930F"
    "48198A0AA7C14058229493D22530F4DBFA336F6E0AC925139543AED44CCE7C37"
    "20FD51F69458705AC68CD4FE6B6B13ABDC9746512969328454F18FAF8C595F64"
    "2477FE96BB2A941D5BCD1D4AC8CC49880708FA9B378E3C4F3A9060BEE67CF9A4"
    "A4A695811051907E162753B56B0F6B410DBA74D8A84B2A14B3144E0EF1284754"
    "FD17ED950D5965B4B9DD46582DB1178D169C6BC465B0D6FF9CA3928FEF5B9AE4"
    "E418FC15E83EBEA0F87FA9FF5EED70050DED2849F47BF959D956850CE929851F"
    "0D8115F635B105EE2E4E15D04B2454BF6F4FADF034B10403119CD8E3B92FCC5B",
    16,
)
NTGCALLS_VERSIONS = ["8.0.0", "9.0.0", "12.0.0", "13.0.0"]
MARKER = "--marker--"


def proto(versions: list[str] | None = None, p2p: bool = True, relay: bool = True) -> Any:
    return types.PhoneCallProtocol(
        min_layer=92,
        max_layer=92,
        library_versions=versions if versions is not None else list(NTGCALLS_VERSIONS),
        udp_p2p=p2p,
        udp_reflector=relay,
    )


def probable_prime(n: int, rounds: int = 4) -> bool:
    """Miller-Rabin with random bases."""
    d, r = n - 1, 0
    while d % 2 == 0:
        d, r = d // 2, r + 1
    for _ in range(rounds):
        x = pow(2 + secrets.randbelow(n - 3), d, n)
        if x in (1, n - 1):
            continue
        for _ in range(r - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def fingerprint(key: bytes) -> int:
    return int.from_bytes(hashlib.sha1(key).digest()[-8:], "little", signed=True)


def in_range(value: bytes, p: int) -> bool:
    x = int.from_bytes(value, "big")
    margin = 1 << (2048 - 64)
    return len(value) == 256 and margin < x < p - margin


class Side:
    """A signed-in Telethon client, its user and every call-related update it receives."""

    def __init__(self, client: TelegramClient, user: ScriptedUser, sandbox: Sandbox) -> None:
        self.client = client
        self.user = user
        self.sandbox = sandbox
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.p = 0
        self.g = 0
        self.secret = 0
        client.add_event_handler(
            self._on_update,
            events.Raw(
                types=[
                    types.UpdatePhoneCall,
                    types.UpdatePhoneCallSignalingData,
                    types.UpdateNewMessage,
                ]
            ),
        )

    @property
    def input_user(self) -> Any:
        return types.InputUser(user_id=self.user.id, access_hash=self.user.user.access_hash)

    async def _on_update(self, update: Any) -> None:
        await self.queue.put(update)

    async def __call__(self, request: Any) -> Any:
        return await asyncio.wait_for(self.client(request), TIMEOUT)

    async def next(self) -> Any:
        """The next call update (phone call object or signalling update)."""
        while True:
            update = await asyncio.wait_for(self.queue.get(), TIMEOUT)
            if isinstance(update, types.UpdateNewMessage):
                continue
            return update.phone_call if isinstance(update, types.UpdatePhoneCall) else update

    async def assert_quiet(self) -> None:
        """No call update arrived: a marker message pushed now comes first in this stream."""
        marker = self.sandbox.create_user(f"1559{secrets.randbelow(10**7):07d}", "Marker")
        await marker.send_message(self.user, MARKER)
        while True:
            update = await asyncio.wait_for(self.queue.get(), TIMEOUT)
            if isinstance(update, types.UpdateNewMessage):
                if update.message.message == MARKER:
                    return
                continue
            raise AssertionError(f"unexpected update {update!r}")

    async def dh(self) -> bytes:
        """Fetch the DH config and pick a secret; returns g^secret mod p (256 bytes)."""
        config = await self(functions.messages.GetDhConfigRequest(version=0, random_length=256))
        self.p = int.from_bytes(config.p, "big")
        self.g = config.g
        while True:
            mine = int.from_bytes(os.urandom(256), "big") ^ int.from_bytes(config.random, "big")
            self.secret = mine % (self.p - 1)
            public = pow(self.g, self.secret, self.p).to_bytes(256, "big")
            if in_range(public, self.p):
                return public

    def key(self, other_public: bytes) -> bytes:
        assert in_range(other_public, self.p)
        return pow(int.from_bytes(other_public, "big"), self.secret, self.p).to_bytes(256, "big")


async def side(
    sandbox: Sandbox, make_client: ClientFactory, phone: str, name: str, **kw: Any
) -> Side:
    user = sandbox.create_user(phone, name, **kw)
    client = await make_client()
    await login(client, sandbox, phone)
    return Side(client, user, sandbox)


def peer(call: Any) -> Any:
    return types.InputPhoneCall(id=call.id, access_hash=call.access_hash)


async def rpc_error(side: Side, request: Any) -> str:
    """The Telegram error name the request fails with."""
    with pytest.raises(RPCError) as info:
        await side(request)
    return ERROR_NAMES.get(type(info.value), str(info.value.message))


async def request(caller: Side, callee: Side, versions: list[str] | None = None) -> Any:
    """requestCall from caller to callee; returns (caller's PhoneCallWaiting, g_a)."""
    g_a = await caller.dh()
    result = await caller(
        functions.phone.RequestCallRequest(
            user_id=callee.input_user,
            g_a_hash=hashlib.sha256(g_a).digest(),
            protocol=proto(versions),
            random_id=secrets.randbits(31),
        )
    )
    return result.phone_call, g_a


async def connect(caller: Side, callee: Side) -> tuple[Any, Any, bytes]:
    """A call up to phoneCall on both sides; returns (caller's, callee's view, key)."""
    waiting, g_a = await request(caller, callee)
    requested = await callee.next()
    assert isinstance(requested, types.PhoneCallRequested)
    g_b = await callee.dh()
    await callee(functions.phone.AcceptCallRequest(peer(requested), g_b, proto()))
    accepted = await caller.next()
    assert isinstance(accepted, types.PhoneCallAccepted)
    key = caller.key(accepted.g_b)
    confirmed = await caller(
        functions.phone.ConfirmCallRequest(peer(waiting), g_a, fingerprint(key), proto())
    )
    theirs = await callee.next()
    assert isinstance(theirs, types.PhoneCall)
    assert callee.key(theirs.g_a_or_b) == key
    return confirmed.phone_call, theirs, key


async def test_dh_config(sandbox: Sandbox, make_client: ClientFactory) -> None:
    alice = await side(sandbox, make_client, "15556001", "Alice")
    config = await alice(functions.messages.GetDhConfigRequest(version=0, random_length=256))
    assert isinstance(config, types.messages.DhConfig)
    assert config.g == 3
    p = int.from_bytes(config.p, "big")
    assert p == SPEC_PRIME
    assert 1 << 2047 < p < 1 << 2048
    assert probable_prime(p)
    assert probable_prime((p - 1) // 2)  # a safe prime
    assert p % 3 == 2  # g = 3 generates the subgroup of order (p-1)/2 (spec §2)
    assert len(config.random) == 256
    again = await alice(
        functions.messages.GetDhConfigRequest(version=config.version, random_length=256)
    )
    assert isinstance(again, types.messages.DhConfigNotModified)
    assert len(again.random) == 256
    assert again.random != config.random
    assert (
        await rpc_error(alice, functions.messages.GetDhConfigRequest(0, 4096))
        == "RANDOM_LENGTH_INVALID"
    )
    tuned = await alice(functions.phone.GetCallConfigRequest())
    assert isinstance(tuned, types.DataJSON)
    assert tuned.data.startswith("{")
    cfg = await alice(functions.help.GetConfigRequest())
    assert (cfg.call_receive_timeout_ms, cfg.call_ring_timeout_ms) == (20000, 90000)
    assert (cfg.call_connect_timeout_ms, cfg.call_packet_timeout_ms) == (30000, 10000)


async def test_full_call(sandbox: Sandbox, make_client: ClientFactory) -> None:
    reflector_port = await sandbox.start_reflector("127.0.0.1", 0)
    sandbox.configure_turn("127.0.0.1", 3478, "tg", "secret")
    sandbox.call_custom_parameters = {"network_use_default_route": False}
    alice = await side(sandbox, make_client, "15556101", "Alice")
    bob = await side(sandbox, make_client, "15556102", "Bob")
    carol = await side(sandbox, make_client, "15556103", "Carol")

    waiting, g_a = await request(alice, bob)
    assert isinstance(waiting, types.PhoneCallWaiting)
    assert waiting.receive_date is None
    assert (waiting.admin_id, waiting.participant_id) == (alice.user.id, bob.user.id)

    requested = await bob.next()
    assert isinstance(requested, types.PhoneCallRequested)
    assert requested.id == waiting.id
    assert requested.g_a_hash == hashlib.sha256(g_a).digest()
    assert requested.protocol.library_versions == NTGCALLS_VERSIONS

    assert await bob(functions.phone.ReceivedCallRequest(peer(requested))) is True
    ringing = await alice.next()
    assert isinstance(ringing, types.PhoneCallWaiting)
    assert ringing.receive_date is not None

    g_b = await bob.dh()
    bob_protocol = proto(["13.0.0", "9.0.0", "7.0.0"])
    answer = await bob(functions.phone.AcceptCallRequest(peer(requested), g_b, bob_protocol))
    assert isinstance(answer.phone_call, types.PhoneCallWaiting)
    accepted = await alice.next()
    assert isinstance(accepted, types.PhoneCallAccepted)
    assert accepted.g_b == g_b
    # The intersection of both lists, in the caller's order.
    assert accepted.protocol.library_versions == ["9.0.0", "13.0.0"]

    with pytest.raises(TimeoutError):
        await sandbox.wait_call(waiting.id, {CallState.ACTIVE}, timeout=0.05)
    active = asyncio.create_task(sandbox.wait_call(waiting.id, {CallState.ACTIVE}))
    key = alice.key(accepted.g_b)
    confirmed = await alice(
        functions.phone.ConfirmCallRequest(peer(waiting), g_a, fingerprint(key), proto())
    )
    assert (await asyncio.wait_for(active, TIMEOUT)).key_fingerprint == fingerprint(key)
    mine = confirmed.phone_call
    assert isinstance(mine, types.PhoneCall)
    assert mine.g_a_or_b == g_b
    assert mine.p2p_allowed
    assert mine.protocol.library_versions == ["9.0.0", "13.0.0"]
    assert mine.start_date is not None
    assert mine.custom_parameters.data == '{"network_use_default_route": false}'
    reflector, turn = mine.connections
    assert isinstance(reflector, types.PhoneConnection)
    assert (reflector.ip, reflector.port) == ("127.0.0.1", reflector_port)
    assert len(reflector.peer_tag) == 16
    assert isinstance(turn, types.PhoneConnectionWebrtc)
    assert (turn.port, turn.username, turn.password, turn.turn) == (3478, "tg", "secret", True)

    theirs = await bob.next()
    assert isinstance(theirs, types.PhoneCall)
    assert theirs.g_a_or_b == g_a
    assert hashlib.sha256(theirs.g_a_or_b).digest() == requested.g_a_hash
    bob_key = bob.key(theirs.g_a_or_b)
    assert bob_key == key
    assert fingerprint(bob_key) == theirs.key_fingerprint == fingerprint(key)
    assert theirs.connections[0].peer_tag == reflector.peer_tag
    assert theirs.protocol.library_versions == ["9.0.0", "13.0.0"]

    # The reflector serves this call's tag while it runs (spec §5.2 hello, echoed).
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        udp.setblocking(False)
        hello = reflector.peer_tag[:12] + b"\x00\x00\x00\x01" + b"\xff" * 12 + b"\xfe"
        hello += b"\xff" * 3 + os.urandom(8)
        udp.sendto(hello, ("127.0.0.1", reflector_port))
        loop = asyncio.get_running_loop()
        assert await asyncio.wait_for(loop.sock_recv(udp, 2048), TIMEOUT) == hello

    # Signalling is relayed byte-exact to the other party only.
    blob_a, blob_b = os.urandom(1500), os.urandom(77)
    assert await alice(functions.phone.SendSignalingDataRequest(peer(waiting), blob_a)) is True
    got = await bob.next()
    assert isinstance(got, types.UpdatePhoneCallSignalingData)
    assert (got.phone_call_id, got.data) == (waiting.id, blob_a)
    assert await bob(functions.phone.SendSignalingDataRequest(peer(requested), blob_b)) is True
    got = await alice.next()
    assert (got.phone_call_id, got.data) == (waiting.id, blob_b)
    await alice.assert_quiet()
    await bob.assert_quiet()
    await carol.assert_quiet()

    sandbox.advance(42)
    result = await alice(
        functions.phone.DiscardCallRequest(
            peer(waiting), 42, types.PhoneCallDiscardReasonHangup(), 0
        )
    )
    ended = result.updates[0].phone_call
    assert isinstance(ended, types.PhoneCallDiscarded)
    assert isinstance(ended.reason, types.PhoneCallDiscardReasonHangup)
    assert ended.need_rating
    assert 42 <= ended.duration <= 44
    gone = await bob.next()
    assert isinstance(gone, types.PhoneCallDiscarded)
    assert isinstance(gone.reason, types.PhoneCallDiscardReasonHangup)
    assert gone.duration == ended.duration
    assert gone.need_rating

    await bob(functions.phone.SetCallRatingRequest(peer(requested), 5, "clear"))
    await bob(functions.phone.SaveCallDebugRequest(peer(requested), types.DataJSON('{"rtt": 3}')))
    call = sandbox.call(waiting.id)
    assert call is not None
    assert call.state is CallState.DISCARDED
    assert call.reason is DiscardReason.HANGUP
    assert call.discarded_by == alice.user.id
    assert (call.participant_rating, call.participant_comment) == (5, "clear")
    assert call.protocol is not None
    assert call.protocol.library_versions == ("9.0.0", "13.0.0")
    kinds = [e.kind for e in sandbox.call_history(waiting.id)]
    assert kinds == [
        "requested",
        "received",
        "accepted",
        "confirmed",
        "signaling",
        "signaling",
        "discarded:hangup",
        "rated",
        "debug",
    ]
    assert [e.detail for e in sandbox.call_history(waiting.id) if e.kind == "signaling"] == [
        "1500",
        "77",
    ]
    assert [c.id for c in alice.user.calls()] == [waiting.id]
    assert sandbox.calls_of(carol.user) == []
    # The reflector forgot the ended call's tag.
    assert sandbox.reflector is not None
    assert sandbox.reflector.core.handle(reflector.peer_tag + b"\xff" * 24, ("1.2.3.4", 1), 0) == []

    # Ended is ended.
    assert (
        await rpc_error(
            bob,
            functions.phone.DiscardCallRequest(
                peer(requested), 0, types.PhoneCallDiscardReasonHangup(), 0
            ),
        )
        == "CALL_ALREADY_DECLINED"
    )
    assert (
        await rpc_error(alice, functions.phone.SendSignalingDataRequest(peer(waiting), b"x"))
        == "CALL_ALREADY_DECLINED"
    )


async def test_busy_and_decline(sandbox: Sandbox, make_client: ClientFactory) -> None:
    alice = await side(sandbox, make_client, "15556201", "Alice")
    bob = await side(sandbox, make_client, "15556202", "Bob")
    carol = await side(sandbox, make_client, "15556203", "Carol")
    await request(alice, bob)
    requested = await bob.next()

    # Bob is ringing: Carol's call ends at once as busy and never reaches Bob.
    busy, _ = await request(carol, bob)
    assert isinstance(busy, types.PhoneCallDiscarded)
    assert isinstance(busy.reason, types.PhoneCallDiscardReasonBusy)
    assert not busy.need_rating
    await bob.assert_quiet()
    assert sandbox.call_history(busy.id)[-1].kind == "discarded:busy"

    # Bob declines Alice's call as busy.
    await bob(
        functions.phone.DiscardCallRequest(
            peer(requested), 0, types.PhoneCallDiscardReasonBusy(), 0
        )
    )
    declined = await alice.next()
    assert isinstance(declined, types.PhoneCallDiscarded)
    assert isinstance(declined.reason, types.PhoneCallDiscardReasonBusy)
    assert declined.duration == 0
    assert not declined.need_rating
    g_b = await bob.dh()
    assert (
        await rpc_error(bob, functions.phone.AcceptCallRequest(peer(requested), g_b, proto()))
        == "CALL_ALREADY_DECLINED"
    )
    assert (
        await rpc_error(bob, functions.phone.ReceivedCallRequest(peer(requested)))
        == "CALL_ALREADY_DECLINED"
    )
    await carol.assert_quiet()


async def test_missed_after_ring_timeout(sandbox: Sandbox, make_client: ClientFactory) -> None:
    alice = await side(sandbox, make_client, "15556301", "Alice")
    bob = await side(sandbox, make_client, "15556302", "Bob")
    waiting, _ = await request(alice, bob)
    requested = await bob.next()
    await bob(functions.phone.ReceivedCallRequest(peer(requested)))
    await alice.next()
    call = sandbox.call(waiting.id)
    assert call is not None
    # One second short of call_ring_timeout_ms = 90 000 (advance() expires synchronously).
    sandbox.advance(call.date + 90 - sandbox.now() - 1)
    assert sandbox.call(waiting.id).state is CallState.REQUESTED  # type: ignore[union-attr]
    sandbox.advance(1)
    for who in (alice, bob):
        missed = await who.next()
        assert isinstance(missed, types.PhoneCallDiscarded)
        assert isinstance(missed.reason, types.PhoneCallDiscardReasonMissed)
        assert missed.id == waiting.id
        assert not missed.need_rating
    call = await sandbox.wait_call(waiting.id, timeout=1)
    assert call.reason is DiscardReason.MISSED
    assert call.discarded_by is None
    g_b = await bob.dh()
    assert (
        await rpc_error(bob, functions.phone.AcceptCallRequest(peer(requested), g_b, proto()))
        == "CALL_ALREADY_DECLINED"
    )

    # Accepted but never confirmed: the connect timeout (30 s) ends it as disconnect.
    await request(alice, bob)
    requested = await bob.next()
    await bob(functions.phone.AcceptCallRequest(peer(requested), await bob.dh(), proto()))
    assert isinstance(await alice.next(), types.PhoneCallAccepted)
    sandbox.advance(30)
    for who in (alice, bob):
        lost = await who.next()
        assert isinstance(lost.reason, types.PhoneCallDiscardReasonDisconnect)


async def test_privacy_and_p2p(sandbox: Sandbox, make_client: ClientFactory) -> None:
    alice = await side(sandbox, make_client, "15556401", "Alice")
    bob = await side(sandbox, make_client, "15556402", "Bob")
    await bob(
        functions.account.SetPrivacyRequest(
            types.InputPrivacyKeyPhoneCall(), [types.InputPrivacyValueDisallowAll()]
        )
    )
    g_a = await alice.dh()
    call_bob = functions.phone.RequestCallRequest(
        user_id=bob.input_user,
        g_a_hash=hashlib.sha256(g_a).digest(),
        protocol=proto(),
        random_id=1,
    )
    assert await rpc_error(alice, call_bob) == "USER_PRIVACY_RESTRICTED"
    assert sandbox.calls_of(bob.user) == []
    await bob.assert_quiet()

    # Contacts only, and Alice is one: allowed. Alice forbids P2P: relay only.
    await bob(
        functions.account.SetPrivacyRequest(
            types.InputPrivacyKeyPhoneCall(), [types.InputPrivacyValueAllowContacts()]
        )
    )
    await bob(
        functions.contacts.ImportContactsRequest(
            [types.InputPhoneContact(client_id=1, phone="15556401", first_name="A", last_name="")]
        )
    )
    await alice(
        functions.account.SetPrivacyRequest(
            types.InputPrivacyKeyPhoneP2P(), [types.InputPrivacyValueDisallowAll()]
        )
    )
    mine, theirs, _ = await connect(alice, bob)
    assert not mine.p2p_allowed
    assert not theirs.p2p_allowed
    await alice(
        functions.phone.DiscardCallRequest(peer(mine), 0, types.PhoneCallDiscardReasonHangup(), 0)
    )
    assert isinstance(await bob.next(), types.PhoneCallDiscarded)

    # P2P allowed by both, but the sandbox forces relay-only.
    await alice(
        functions.account.SetPrivacyRequest(
            types.InputPrivacyKeyPhoneP2P(), [types.InputPrivacyValueAllowAll()]
        )
    )
    mine, theirs, _ = await connect(alice, bob)
    assert mine.p2p_allowed
    assert theirs.p2p_allowed
    await alice(
        functions.phone.DiscardCallRequest(peer(mine), 0, types.PhoneCallDiscardReasonHangup(), 0)
    )
    assert isinstance(await bob.next(), types.PhoneCallDiscarded)
    sandbox.force_relay = True
    mine, theirs, _ = await connect(alice, bob)
    assert not mine.p2p_allowed
    assert not theirs.p2p_allowed


async def test_versions(sandbox: Sandbox, make_client: ClientFactory) -> None:
    alice = await side(sandbox, make_client, "15556501", "Alice")
    bob = await side(sandbox, make_client, "15556502", "Bob")
    sandbox.set_call_versions(bob.user, ["2.4.4"])
    g_a = await alice.dh()
    req = functions.phone.RequestCallRequest(
        user_id=bob.input_user,
        g_a_hash=hashlib.sha256(g_a).digest(),
        protocol=proto(),
        random_id=7,
    )
    assert await rpc_error(alice, req) == "PARTICIPANT_VERSION_OUTDATED"
    sandbox.set_call_versions(bob.user, None)

    # Bob's client answers with versions Alice does not speak.
    waiting, _ = await request(alice, bob)
    requested = await bob.next()
    g_b = await bob.dh()
    bad = functions.phone.AcceptCallRequest(peer(requested), g_b, proto(["11.0.0"]))
    assert await rpc_error(bob, bad) == "CALL_PROTOCOL_COMPAT_LAYER_INVALID"
    flags = functions.phone.AcceptCallRequest(peer(requested), g_b, proto(p2p=False, relay=False))
    assert await rpc_error(bob, flags) == "CALL_PROTOCOL_FLAGS_INVALID"
    assert sandbox.call(waiting.id).state is CallState.REQUESTED  # type: ignore[union-attr]
    await alice.assert_quiet()
    await bob(
        functions.phone.DiscardCallRequest(
            peer(requested), 0, types.PhoneCallDiscardReasonHangup(), 0
        )
    )
    assert isinstance(await alice.next(), types.PhoneCallDiscarded)
    # Bob's client last offered only 11.0.0: the server now refuses Alice's call up front.
    sandbox.set_call_versions(bob.user, ["11.0.0"])
    assert await rpc_error(alice, req) == "PARTICIPANT_VERSION_OUTDATED"
    no_flags = functions.phone.RequestCallRequest(
        user_id=bob.input_user,
        g_a_hash=hashlib.sha256(g_a).digest(),
        protocol=proto(p2p=False, relay=False),
        random_id=8,
    )
    assert await rpc_error(alice, no_flags) == "CALL_PROTOCOL_FLAGS_INVALID"


async def test_malformed_requests(sandbox: Sandbox, make_client: ClientFactory) -> None:
    alice = await side(sandbox, make_client, "15556601", "Alice")
    bob = await side(sandbox, make_client, "15556602", "Bob")
    carol = await side(sandbox, make_client, "15556603", "Carol")
    bot = sandbox.create_bot("calls_bot", "Bot")
    g_a = await alice.dh()

    def call_to(user_id: int, g_a_hash: bytes) -> Any:
        return functions.phone.RequestCallRequest(
            user_id=user_id, g_a_hash=g_a_hash, protocol=proto(), random_id=secrets.randbits(31)
        )

    assert await rpc_error(alice, call_to(bob.input_user, b"\x01" * 31)) == "DH_G_A_INVALID"
    assert await rpc_error(alice, call_to(alice.input_user, b"\x01" * 32)) == "USER_ID_INVALID"
    to_bot = types.InputUser(user_id=bot.id, access_hash=bot.access_hash)
    assert await rpc_error(alice, call_to(to_bot, b"\x01" * 32)) == "USER_ID_INVALID"
    wrong_hash = types.InputUser(user_id=bob.user.id, access_hash=bob.user.user.access_hash ^ 1)
    assert await rpc_error(alice, call_to(wrong_hash, b"\x01" * 32)) == "USER_ID_INVALID"
    assert sandbox.calls_of(alice.user) == []

    waiting, g_a = await request(alice, bob)
    requested = await bob.next()
    good = peer(requested)
    forged = types.InputPhoneCall(id=requested.id, access_hash=requested.access_hash ^ 1)
    unknown = types.InputPhoneCall(id=requested.id ^ 1, access_hash=requested.access_hash)
    g_b = await bob.dh()
    for bad_peer in (forged, unknown):
        assert (
            await rpc_error(bob, functions.phone.AcceptCallRequest(bad_peer, g_b, proto()))
            == "CALL_PEER_INVALID"
        )
    # Somebody else's call, with the right id and access hash.
    assert (
        await rpc_error(carol, functions.phone.AcceptCallRequest(good, g_b, proto()))
        == "CALL_PEER_INVALID"
    )
    assert (
        await rpc_error(carol, functions.phone.SendSignalingDataRequest(good, b"x"))
        == "CALL_PEER_INVALID"
    )
    assert (
        await rpc_error(
            carol,
            functions.phone.DiscardCallRequest(good, 0, types.PhoneCallDiscardReasonHangup(), 0),
        )
        == "CALL_PEER_INVALID"
    )
    # The caller cannot answer its own call, nor confirm before the answer.
    assert (
        await rpc_error(alice, functions.phone.AcceptCallRequest(good, g_b, proto()))
        == "CALL_PEER_INVALID"
    )
    assert (
        await rpc_error(alice, functions.phone.ConfirmCallRequest(good, g_a, 1, proto()))
        == "CALL_PEER_INVALID"
    )
    # Signalling before the answer has nobody to go to.
    assert (
        await rpc_error(alice, functions.phone.SendSignalingDataRequest(good, b"x"))
        == "CALL_PEER_INVALID"
    )
    # g_b of the wrong size or outside (2^1984, p - 2^1984).
    for bad_g_b in (g_b[:255], (1).to_bytes(256, "big"), (DH_PRIME - 1).to_bytes(256, "big")):
        assert (
            await rpc_error(bob, functions.phone.AcceptCallRequest(good, bad_g_b, proto()))
            == "DH_G_B_INVALID"
        )
    await alice.assert_quiet()
    await bob(functions.phone.AcceptCallRequest(good, g_b, proto()))
    assert (
        await rpc_error(bob, functions.phone.AcceptCallRequest(good, g_b, proto()))
        == "CALL_ALREADY_ACCEPTED"
    )
    accepted = await alice.next()
    key = alice.key(accepted.g_b)
    # A g_a that does not hash to the g_a_hash of requestCall (a valid other value).
    other = pow(3, 12345678901234567890, DH_PRIME).to_bytes(256, "big")
    for bad_g_a in (other, g_a[:200]):
        assert (
            await rpc_error(
                alice, functions.phone.ConfirmCallRequest(good, bad_g_a, fingerprint(key), proto())
            )
            == "DH_G_A_INVALID"
        )
    assert (
        await rpc_error(bob, functions.phone.ConfirmCallRequest(good, g_a, 1, proto()))
        == "CALL_PEER_INVALID"
    )
    await bob.assert_quiet()
    assert sandbox.call(waiting.id).state is CallState.ACCEPTED  # type: ignore[union-attr]
    # The server is still fine and the call still completes.
    done = await alice(functions.phone.ConfirmCallRequest(good, g_a, fingerprint(key), proto()))
    assert isinstance(done.phone_call, types.PhoneCall)
    assert (await bob.next()).key_fingerprint == fingerprint(key)
    assert (
        await rpc_error(alice, functions.phone.ConfirmCallRequest(good, g_a, 1, proto()))
        == "CALL_ALREADY_ACCEPTED"
    )
    too_big = os.urandom(65_537)
    assert (
        await rpc_error(alice, functions.phone.SendSignalingDataRequest(good, too_big))
        == "DATA_TOO_LONG"
    )
    assert (
        await rpc_error(bob, functions.phone.SetCallRatingRequest(good, 5, ""))
        == "CALL_PEER_INVALID"
    )


async def test_second_device_and_disabled_calls(
    sandbox: Sandbox, make_client: ClientFactory
) -> None:
    alice = await side(sandbox, make_client, "15556701", "Alice")
    bob = await side(sandbox, make_client, "15556702", "Bob")
    bob_phone = await make_client()
    await login(bob_phone, sandbox, "15556702")
    second = Side(bob_phone, bob.user, sandbox)
    waiting, _ = await request(alice, bob)
    assert isinstance(await bob.next(), types.PhoneCallRequested)
    requested = await second.next()
    assert isinstance(requested, types.PhoneCallRequested)
    # Answered on the second device: the first stops ringing, the rest goes to the second.
    await second(functions.phone.AcceptCallRequest(peer(requested), await second.dh(), proto()))
    stop = await bob.next()
    assert isinstance(stop, types.PhoneCallDiscarded)
    assert stop.reason is None
    assert isinstance(await alice.next(), types.PhoneCallAccepted)
    await alice(functions.phone.SendSignalingDataRequest(peer(waiting), b"hello"))
    assert (await second.next()).data == b"hello"
    await bob.assert_quiet()
    await alice(
        functions.phone.DiscardCallRequest(
            peer(waiting), 0, types.PhoneCallDiscardReasonHangup(), 0
        )
    )
    assert isinstance(await second.next(), types.PhoneCallDiscarded)
    await bob.assert_quiet()

    # An authorization with call requests disabled does not ring.
    await bob(functions.account.ChangeAuthorizationSettingsRequest(0, call_requests_disabled=True))
    waiting, _ = await request(alice, bob)
    assert isinstance(await second.next(), types.PhoneCallRequested)
    await bob.assert_quiet()

    # The server ends the call (scripted network loss): both sides hear of it.
    ended = sandbox.end_call(waiting.id)
    assert ended.reason is DiscardReason.DISCONNECT
    for who in (alice, second):
        lost = await who.next()
        assert isinstance(lost, types.PhoneCallDiscarded)
        assert isinstance(lost.reason, types.PhoneCallDiscardReasonDisconnect)
    assert sandbox.end_call(waiting.id) == ended


async def test_restart_keeps_call_history(tmp_path: Path, rsa_dir: Path) -> None:
    data = tmp_path / "calls"
    data.mkdir()
    key = rsa_dir / "rsa_key.pem"
    if key.exists():
        (data / "rsa_key.pem").write_bytes(key.read_bytes())
    first = Sandbox(data)
    port = await first.start("127.0.0.1", 0)
    alice = first.create_user("15556801", "Alice")
    bob = first.create_user("15556802", "Bob")
    clients = []
    try:
        sides = []
        for phone, user in (("15556801", alice), ("15556802", bob)):
            client = TelegramClient(
                StringSession(), DEFAULT_API_ID, DEFAULT_API_HASH, timeout=5, connection_retries=1
            )
            client.session.set_dc(first.dc_id, "127.0.0.1", port)
            await asyncio.wait_for(client.connect(), TIMEOUT)
            clients.append(client)
            await login(client, first, phone)
            sides.append(Side(client, user, first))
        a, b = sides
        mine, _, _ = await connect(a, b)
        await a(
            functions.phone.DiscardCallRequest(
                peer(mine), 0, types.PhoneCallDiscardReasonHangup(), 0
            )
        )
        await b.next()
        ringing, _ = await request(a, b)
        await b.next()
    finally:
        for client in clients:
            await asyncio.wait_for(client.disconnect(), TIMEOUT)
        await first.stop()
        first.close()

    second = Sandbox(data)
    try:
        calls = second.calls_of(alice.id)
        assert [c.id for c in calls] == [ringing.id, mine.id]
        assert all(c.state is CallState.DISCARDED for c in calls)
        assert calls[0].reason is DiscardReason.DISCONNECT
        assert second.call_history(ringing.id)[-1].detail == "restart"
        assert calls[1].reason is DiscardReason.HANGUP
        assert [e.kind for e in second.call_history(mine.id)][:4] == [
            "requested",
            "accepted",
            "confirmed",
            "discarded:hangup",
        ]
        assert second.calls_of(bob.id) == calls
    finally:
        second.close()


class NtgcallsPeer:
    """The JSON-lines child process of ntgcalls_dh_peer.py."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def ask(self, **cmd: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        await self.proc.stdin.drain()
        line = await asyncio.wait_for(self.proc.stdout.readline(), TIMEOUT)
        answer: dict[str, Any] = json.loads(line)
        return answer


async def test_key_exchange_with_ntgcalls(sandbox: Sandbox, make_client: ClientFactory) -> None:
    """Both sides' DH done by real ntgcalls (in a child process) through the sandbox."""
    if importlib.util.find_spec("ntgcalls") is None:
        pytest.skip("ntgcalls is not installed (pip install ntgcalls==3.0.5)")
    alice = await side(sandbox, make_client, "15556901", "Alice")
    bob = await side(sandbox, make_client, "15556902", "Bob")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__).with_name("ntgcalls_dh_peer.py")),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    ntg = NtgcallsPeer(proc)
    try:
        offered = await ntg.ask(op="protocol")
        protocol = types.PhoneCallProtocol(
            min_layer=offered["min_layer"],
            max_layer=offered["max_layer"],
            library_versions=offered["versions"],
            udp_p2p=True,
            udp_reflector=True,
        )

        async def init(who: Side, other: Side, g_a_hash: bytes | None) -> bytes:
            config = await who(functions.messages.GetDhConfigRequest(0, 256))
            answer = await ntg.ask(
                op="init",
                who=who.user.user.first_name,
                peer=other.user.id,
                g=config.g,
                p=config.p.hex(),
                random=config.random.hex(),
                g_a_hash=g_a_hash.hex() if g_a_hash else None,
            )
            assert "error" not in answer, answer
            return bytes.fromhex(answer["value"])

        g_a_hash = await init(alice, bob, None)
        waiting = (
            await alice(
                functions.phone.RequestCallRequest(
                    user_id=bob.input_user, g_a_hash=g_a_hash, protocol=protocol, random_id=9
                )
            )
        ).phone_call
        requested = await bob.next()
        assert requested.g_a_hash == g_a_hash
        await bob(functions.phone.ReceivedCallRequest(peer(requested)))
        g_b = await init(bob, alice, requested.g_a_hash)
        await bob(functions.phone.AcceptCallRequest(peer(requested), g_b, protocol))
        while not isinstance(accepted := await alice.next(), types.PhoneCallAccepted):
            assert isinstance(accepted, types.PhoneCallWaiting)
        confirm = await ntg.ask(
            op="exchange", who="Alice", g_a_or_b=accepted.g_b.hex(), fingerprint=0
        )
        assert "error" not in confirm, confirm
        g_a = bytes.fromhex(confirm["g_a_or_b"])
        result = await alice(
            functions.phone.ConfirmCallRequest(peer(waiting), g_a, confirm["fingerprint"], protocol)
        )
        assert result.phone_call.key_fingerprint == confirm["fingerprint"]
        call = await bob.next()
        assert isinstance(call, types.PhoneCall)
        # ntgcalls on the callee side checks SHA256(g_a) against g_a_hash and the fingerprint.
        checked = await ntg.ask(
            op="exchange", who="Bob", g_a_or_b=call.g_a_or_b.hex(), fingerprint=call.key_fingerprint
        )
        assert "error" not in checked, checked
        assert checked["fingerprint"] == call.key_fingerprint
        assert call.protocol.library_versions == offered["versions"]
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), TIMEOUT)
        except TimeoutError:
            proc.kill()
            await proc.wait()
