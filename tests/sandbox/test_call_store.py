"""The call state machine and its SQLite table, without the network."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tgsip.sandbox.calls import (
    DH_PRIME,
    CallError,
    CallProtocol,
    CallState,
    CallStore,
    DiscardReason,
    check_dh_value,
)

PROTO = CallProtocol(92, 92, ("8.0.0", "9.0.0", "12.0.0", "13.0.0"))
G_A = pow(3, 2**1500 + 12345, DH_PRIME).to_bytes(256, "big")
G_B = pow(3, 2**1600 + 777, DH_PRIME).to_bytes(256, "big")
HASH = hashlib.sha256(G_A).digest()


@pytest.fixture
def db(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(str(tmp_path / "calls.sqlite3"), isolation_level=None)
    conn.row_factory = sqlite3.Row
    yield conn
    conn.close()


def test_states_and_errors(db: sqlite3.Connection) -> None:
    store = CallStore(db, 1000)
    call = store.request(1, 11, 2, 5, HASH, PROTO, False, 1000)
    assert call.state is CallState.REQUESTED
    with pytest.raises(CallError) as dup:
        store.request(1, 11, 2, 5, HASH, PROTO, False, 1000)
    assert (dup.value.name, dup.value.code) == ("RANDOM_ID_DUPLICATE", 500)
    assert store.party_call(call.id, call.access_hash, 2) == call
    for args in ((call.id, call.access_hash, 3), (call.id, call.access_hash + 1, 1)):
        with pytest.raises(CallError, match="CALL_PEER_INVALID"):
            store.party_call(*args)

    call, new = store.received(call, 2, 1001)
    assert new
    assert call.receive_date == 1001
    assert store.received(call, 2, 1005) == (call, False)

    # Bob also rings from Carol meanwhile (busy), then answers Alice.
    busy = store.request(3, 33, 2, 1, HASH, PROTO, False, 1002)
    assert (busy.state, busy.reason) == (CallState.DISCARDED, DiscardReason.BUSY)
    answered = CallProtocol(92, 92, ("13.0.0", "12.0.0"), udp_p2p=False)
    call = store.accept(call, 2, 22, G_B, answered, 1003)
    assert call.state is CallState.ACCEPTED
    assert call.participant_key == 22
    assert call.protocol == CallProtocol(92, 92, ("12.0.0", "13.0.0"), False, True)
    with pytest.raises(CallError, match="CALL_ALREADY_ACCEPTED"):
        store.accept(call, 2, 22, G_B, PROTO, 1003)
    with pytest.raises(CallError, match="DH_G_A_INVALID"):
        store.confirm(call, 1, G_B, 7, True, 1004)
    call = store.confirm(call, 1, G_A, 7, False, 1004)
    assert (call.state, call.start_date, call.p2p_allowed) == (CallState.ACTIVE, 1004, False)
    store.signaling(call, 1, 100, 1005)
    with pytest.raises(CallError, match="DATA_TOO_LONG"):
        store.signaling(call, 1, 70_000, 1005)
    with pytest.raises(CallError, match="CALL_PEER_INVALID"):
        store.rate(call, 2, 5, "", 1005)  # not over yet
    call = store.discard(call, 2, DiscardReason.HANGUP, 999, 1064)
    assert (call.duration, call.need_rating, call.discarded_by) == (60, True, 2)
    with pytest.raises(CallError, match="RATING_INVALID"):
        store.rate(call, 1, 6, "", 1065)
    assert store.rate(call, 1, 4, "x" * 5000, 1065).admin_comment == "x" * 1024
    with pytest.raises(CallError, match="DATA_JSON_INVALID"):
        store.save_debug(call, 1, "{not json", 1065)
    store.save_debug(call, 1, '{"a": 1}', 1065)
    assert [e.kind for e in store.events(call.id)] == [
        "requested",
        "received",
        "accepted",
        "confirmed",
        "signaling",
        "discarded:hangup",
        "rated",
        "debug",
    ]
    assert [c.id for c in store.of_user(2)] == [busy.id, call.id]
    assert store.ongoing_of(2) == []


def test_protocol_checks() -> None:
    with pytest.raises(CallError, match="CALL_PROTOCOL_FLAGS_INVALID"):
        CallProtocol(92, 92, ("9.0.0",), False, False).check()
    for low, high in ((93, 92), (10, 64), (-1, 92)):
        with pytest.raises(CallError, match="CALL_PROTOCOL_LAYER_INVALID"):
            CallProtocol(low, high, ("9.0.0",)).check()
    assert PROTO.merge(CallProtocol(92, 92, ("2.4.4",))) is None
    assert PROTO.merge(CallProtocol(65, 91, PROTO.library_versions)) is None
    assert CallProtocol.from_json(PROTO.to_json()) == PROTO


def test_timeouts_and_restart(db: sqlite3.Connection) -> None:
    store = CallStore(db, 0)
    ringing = store.request(1, 11, 2, 1, HASH, PROTO, False, 100)
    other = store.request(3, 33, 4, 1, HASH, PROTO, False, 100)
    other = store.accept(other, 4, 44, G_B, PROTO, 110)
    running = store.request(5, 55, 6, 1, HASH, PROTO, False, 100)
    running = store.confirm(store.accept(running, 6, 66, G_B, PROTO, 101), 5, G_A, 1, True, 102)
    assert store.expire(139) == []
    (lost,) = store.expire(140)
    assert (lost.id, lost.reason) == (other.id, DiscardReason.DISCONNECT)
    (missed,) = store.expire(190)
    assert (missed.id, missed.reason, missed.need_rating) == (
        ringing.id,
        DiscardReason.MISSED,
        False,
    )
    assert store.expire(10_000) == []  # running calls have no server timeout
    assert store.active_calls() == [running]

    again = CallStore(db, 500)
    ended = again.get(running.id)
    assert ended is not None
    assert (ended.state, ended.reason, ended.duration) == (
        CallState.DISCARDED,
        DiscardReason.DISCONNECT,
        398,
    )
    assert again.events(running.id)[-1].detail == "restart"
    assert again.end(ended, DiscardReason.HANGUP, 600) == ended


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_dh_value_range(value: bytes) -> None:
    x = int.from_bytes(value, "big")
    margin = 1 << 1984
    assert check_dh_value(value) == (len(value) == 256 and margin < x < DH_PRIME - margin)
