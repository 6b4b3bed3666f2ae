"""The private-call state machine with a fake clock, fed Telethon's own TL objects."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from telethon.tl import types
from telethon.tl.functions import phone

from tgsip.telegram.calls import dh
from tgsip.telegram.calls.call import (
    MAX_BUFFERED_BLOBS,
    Action,
    Answered,
    CallError,
    Connected,
    ConnectMedia,
    CreateMedia,
    Ended,
    EndReason,
    PrivateCall,
    RelayServer,
    Ringing,
    Send,
    SignalMedia,
    State,
    StopMedia,
)

PARAMS = dh.DhParams(3, dh.TELEGRAM_P, 1)
CALLER, CALLEE = 1001, 1002
CALL_ID, ACCESS = 777, 4242
DATE = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)
PROTO = types.PhoneCallProtocol(92, 92, ["8.0.0", "9.0.0", "12.0.0", "13.0.0"], True, True)
SERVER_PROTO = types.PhoneCallProtocol(92, 92, ["13.0.0", "12.0.0"], True, True)
INPUT_USER = types.InputUser(CALLEE, 99)
RANDOM_A = bytes(range(256))
RANDOM_B = bytes((5 * i + 1) % 256 for i in range(256))
CONNECTIONS = [
    types.PhoneConnection(1, "127.0.0.1", "", 5000, b"T" * 16, tcp=False),
    types.PhoneConnectionWebrtc(2, "127.0.0.1", "", 3478, "tg", "secret", turn=True, stun=False),
    types.PhoneConnectionWebrtc(3, "127.0.0.1", "", 3479, "", "", turn=False, stun=True),
]


def sent(actions: list[Action]) -> list[Any]:
    return [a.request for a in actions if isinstance(a, Send)]


def only(actions: list[Action], kind: type) -> Any:
    found = [a for a in actions if isinstance(a, kind)]
    assert len(found) == 1, actions
    return found[0]


def waiting(receive: bool = False) -> Any:
    return types.PhoneCallWaiting(
        CALL_ID, ACCESS, DATE, CALLER, CALLEE, PROTO, receive_date=DATE if receive else None
    )


def requested(g_a_hash: bytes) -> Any:
    return types.PhoneCallRequested(CALL_ID, ACCESS, DATE, CALLER, CALLEE, g_a_hash, PROTO)


def final(g_a_or_b: bytes, fp: int, *, p2p: bool = True, custom: str | None = None) -> Any:
    return types.PhoneCall(
        CALL_ID,
        ACCESS,
        DATE,
        CALLER,
        CALLEE,
        g_a_or_b,
        fp,
        SERVER_PROTO,
        CONNECTIONS,
        DATE,
        p2p_allowed=p2p,
        custom_parameters=types.DataJSON(custom) if custom is not None else None,
    )


def discarded(reason: Any = None, *, need_rating: bool = False, duration: int = 0) -> Any:
    return types.PhoneCallDiscarded(
        CALL_ID, need_rating=need_rating, reason=reason, duration=duration
    )


def start_outgoing(now: float = 0.0, **kw: Any) -> tuple[PrivateCall, list[Action]]:
    return PrivateCall.outgoing_call(
        input_user=INPUT_USER,
        peer_id=CALLEE,
        params=PARAMS,
        server_random=RANDOM_A,
        protocol=PROTO,
        now=now,
        random_id=5,
        **kw,
    )


class Pair:
    """A caller and a callee machine, with this test standing in for Telegram's relaying."""

    def __init__(self) -> None:
        self.caller, acts = start_outgoing()
        req = only(acts, Send).request
        self.g_a_hash = req.g_a_hash
        self.caller.on_phone_call(types.phone.PhoneCall(waiting(), []), 0.1)
        self.callee, _ = PrivateCall.incoming_call(
            requested(self.g_a_hash), protocol=PROTO, now=0.2
        )

    def answer(self, now: float = 1.0) -> tuple[list[Action], list[Action]]:
        """Callee accepts; caller confirms; both receive the final phoneCall."""
        acts = self.callee.accept(PARAMS, RANDOM_B, now)
        g_b = only(acts, Send).request.g_b
        caller_acts = self.caller.on_phone_call(
            types.PhoneCallAccepted(CALL_ID, ACCESS, DATE, CALLER, CALLEE, g_b, PROTO), now
        )
        confirm = only(caller_acts, Send).request
        caller_conn = self.caller.on_phone_call(final(g_b, confirm.key_fingerprint), now)
        callee_conn = self.callee.on_phone_call(final(confirm.g_a, confirm.key_fingerprint), now)
        return caller_conn, callee_conn


# -- outgoing ------------------------------------------------------------------------------


def test_outgoing_start_creates_media_then_requests() -> None:
    call, acts = start_outgoing()
    assert acts[0] == CreateMedia(CALLEE)
    req = acts[1].request  # type: ignore[union-attr]
    assert isinstance(req, phone.RequestCallRequest)
    assert req.user_id == INPUT_USER
    assert req.protocol == PROTO
    assert req.random_id == 5
    assert len(req.g_a_hash) == 32
    assert call.state is State.REQUESTING
    assert call.deadline == 15.0
    with pytest.raises(CallError, match="no id"):
        _ = call.input_peer


def test_outgoing_ringing_once_when_receive_date_appears() -> None:
    call, _ = start_outgoing()
    assert call.on_phone_call(types.phone.PhoneCall(waiting(False), []), 0.1) == []
    assert call.call_id == CALL_ID
    assert call.on_phone_call(waiting(True), 0.5) == [Ringing()]
    assert call.on_phone_call(waiting(True), 0.6) == []


def test_outgoing_ring_timeout_discards_as_missed() -> None:
    call, _ = start_outgoing(ring_timeout=15.0)
    call.on_phone_call(waiting(True), 0.1)
    assert call.tick(14.99) == []
    acts = call.tick(15.0)
    req = sent(acts)[0]
    assert isinstance(req, phone.DiscardCallRequest)
    assert isinstance(req.reason, types.PhoneCallDiscardReasonMissed)
    assert req.duration == 0
    assert req.peer == types.InputPhoneCall(CALL_ID, ACCESS)
    assert StopMedia(CALLEE) in acts
    assert acts[-1] == Ended(EndReason.MISSED, 0, False, "ring timeout")
    assert call.ended
    assert call.tick(100.0) == []
    assert call.hangup(100.0) == []


def test_outgoing_full_flow_and_hangup_duration() -> None:
    pair = Pair()
    caller_conn, _ = pair.answer(now=2.0)
    conn = only(caller_conn, ConnectMedia)
    assert conn.outgoing
    assert conn.peer_id == CALLEE
    assert conn.versions == ("13.0.0", "12.0.0")
    assert conn.p2p_allowed
    assert conn.custom_parameters is None
    assert conn.servers == (
        RelayServer(1, "127.0.0.1", "", 5000, None, None, True, False, False, b"T" * 16),
        RelayServer(2, "127.0.0.1", "", 3478, "tg", "secret", True, False, False, None),
        RelayServer(3, "127.0.0.1", "", 3479, "", "", False, True, False, None),
    )
    assert pair.caller.state is State.CONNECTING
    assert pair.caller.on_media_state("CONNECTING", 2.05) == []
    acts = pair.caller.on_media_state("CONNECTED", 2.1)
    assert acts == [Connected(pair.caller.key.emojis)]  # type: ignore[union-attr]
    assert pair.caller.on_media_state("CONNECTED", 2.2) == []
    acts = pair.caller.hangup(64.0)
    req = sent(acts)[0]
    assert isinstance(req.reason, types.PhoneCallDiscardReasonHangup)
    assert req.duration == 61
    assert acts[-1] == Ended(EndReason.HANGUP, 61, False)


def test_caller_events_ringing_answered_on_accept_without_receive_date() -> None:
    pair = Pair()
    acts = pair.callee.accept(PARAMS, RANDOM_B, 1.0)
    assert isinstance(acts[1].request, phone.AcceptCallRequest)  # type: ignore[union-attr]
    assert Answered() in acts
    g_b = acts[1].request.g_b  # type: ignore[union-attr]
    acts = pair.caller.on_phone_call(
        types.PhoneCallAccepted(CALL_ID, ACCESS, DATE, CALLER, CALLEE, g_b, PROTO), 1.1
    )
    assert [type(a) for a in acts] == [Ringing, Send, Answered]
    confirm = acts[1].request  # type: ignore[union-attr]
    assert isinstance(confirm, phone.ConfirmCallRequest)
    assert hashlib.sha256(confirm.g_a).digest() == pair.g_a_hash
    assert confirm.key_fingerprint == dh.key_fingerprint(pair.caller.key.key)  # type: ignore[union-attr]
    assert pair.caller.state is State.CONFIRMING
    # A repeated accepted update changes nothing.
    assert (
        pair.caller.on_phone_call(
            types.PhoneCallAccepted(CALL_ID, ACCESS, DATE, CALLER, CALLEE, g_b, PROTO), 1.2
        )
        == []
    )


def test_both_sides_get_the_same_key_and_emojis() -> None:
    pair = Pair()
    a, b = pair.answer()
    ka, kb = only(a, ConnectMedia), only(b, ConnectMedia)
    assert ka.key == kb.key
    assert len(ka.key) == 256
    assert ka.outgoing
    assert not kb.outgoing
    assert pair.caller.on_media_state("CONNECTED", 2) == pair.callee.on_media_state("CONNECTED", 2)
    assert ka.key.hex() not in repr(ka)


def test_caller_refuses_bad_g_b() -> None:
    call, _ = start_outgoing()
    call.on_phone_call(waiting(), 0.1)
    bad = (dh.TELEGRAM_P - 1).to_bytes(256, "big")
    acts = call.on_phone_call(
        types.PhoneCallAccepted(CALL_ID, ACCESS, DATE, CALLER, CALLEE, bad, PROTO), 1.0
    )
    req = sent(acts)[0]
    assert isinstance(req.reason, types.PhoneCallDiscardReasonDisconnect)
    end = acts[-1]
    assert isinstance(end, Ended)
    assert end.reason is EndReason.DISCONNECT
    assert end.error is not None
    assert "range" in end.error


def test_caller_refuses_final_call_with_other_fingerprint() -> None:
    pair = Pair()
    acts = pair.callee.accept(PARAMS, RANDOM_B, 1.0)
    g_b = only(acts, Send).request.g_b
    conf = only(
        pair.caller.on_phone_call(
            types.PhoneCallAccepted(CALL_ID, ACCESS, DATE, CALLER, CALLEE, g_b, PROTO), 1.0
        ),
        Send,
    ).request
    acts = pair.caller.on_phone_call(final(g_b, conf.key_fingerprint + 1), 1.1)
    assert only(acts, Ended).error == "key fingerprint mismatch"
    assert not any(isinstance(a, ConnectMedia) for a in acts)


def test_hangup_before_request_returns_sends_discard_when_id_known() -> None:
    call, _ = start_outgoing()
    acts = call.hangup(1.0)
    assert sent(acts) == []
    assert acts == [StopMedia(CALLEE), Ended(EndReason.MISSED, 0, False)]
    later = call.on_phone_call(types.phone.PhoneCall(waiting(), []), 1.5)
    req = only(later, Send).request
    assert isinstance(req, phone.DiscardCallRequest)
    assert isinstance(req.reason, types.PhoneCallDiscardReasonMissed)
    assert call.on_phone_call(waiting(True), 2.0) == []


def test_caller_cancel_before_answer_is_missed_after_answer_hangup() -> None:
    call, _ = start_outgoing()
    call.on_phone_call(waiting(True), 0.1)
    req = sent(call.hangup(3.0))[0]
    assert isinstance(req.reason, types.PhoneCallDiscardReasonMissed)
    pair = Pair()
    pair.callee.accept(PARAMS, RANDOM_B, 1.0)
    req = sent(pair.callee.hangup(1.5))[0]
    assert isinstance(req.reason, types.PhoneCallDiscardReasonHangup)
    assert req.duration == 0


def test_connect_timeout_discards_with_disconnect() -> None:
    pair = Pair()
    pair.answer(now=1.0)
    assert pair.caller.deadline == 31.0
    assert pair.caller.tick(30.9) == []
    acts = pair.caller.tick(31.0)
    assert isinstance(sent(acts)[0].reason, types.PhoneCallDiscardReasonDisconnect)
    assert only(acts, Ended).error == "connect timeout"


@pytest.mark.parametrize("state", ["FAILED", "TIMEOUT", "CLOSED"])
def test_media_failure_ends_with_disconnect_and_duration(state: Any) -> None:
    pair = Pair()
    pair.answer(now=1.0)
    pair.callee.on_media_state("CONNECTED", 1.2)
    acts = pair.callee.on_media_state(state, 11.7)
    req = sent(acts)[0]
    assert isinstance(req.reason, types.PhoneCallDiscardReasonDisconnect)
    assert req.duration == 10
    assert acts[-1] == Ended(EndReason.DISCONNECT, 10, False, f"media {state.lower()}")


def test_media_state_before_keys_is_ignored() -> None:
    call, _ = start_outgoing()
    assert call.on_media_state("TIMEOUT", 1.0) == []
    assert call.on_media_state("CONNECTED", 1.0) == []
    assert call.state is State.REQUESTING


# -- incoming ------------------------------------------------------------------------------


def test_incoming_acknowledges_at_once() -> None:
    call, acts = PrivateCall.incoming_call(requested(b"h" * 32), protocol=PROTO, now=0.0)
    req = sent(acts)[0]
    assert isinstance(req, phone.ReceivedCallRequest)
    assert req.peer == types.InputPhoneCall(CALL_ID, ACCESS)
    assert len(acts) == 1
    assert call.peer_id == CALLER
    assert call.state is State.RINGING
    assert call.deadline is None
    acts = call.accept(PARAMS, RANDOM_B, 1.0)
    assert acts[0] == CreateMedia(CALLER)
    assert isinstance(acts[1].request, phone.AcceptCallRequest)  # type: ignore[union-attr]


def test_incoming_rejects_other_objects() -> None:
    with pytest.raises(CallError, match="PhoneCallRequested"):
        PrivateCall.incoming_call(waiting(), protocol=PROTO, now=0.0)


def test_incoming_accept_then_connect() -> None:
    pair = Pair()
    _, callee_conn = pair.answer()
    conn = only(callee_conn, ConnectMedia)
    assert conn.peer_id == CALLER
    assert not conn.outgoing
    acts = pair.callee.on_media_state("CONNECTED", 1.5)
    assert isinstance(acts[0], Connected)


def test_incoming_decline_is_busy() -> None:
    call, _ = PrivateCall.incoming_call(requested(b"h" * 32), protocol=PROTO, now=0.0)
    acts = call.decline(1.0)
    assert isinstance(sent(acts)[0].reason, types.PhoneCallDiscardReasonBusy)
    assert acts[-1] == Ended(EndReason.BUSY, 0, False)
    assert not any(isinstance(a, StopMedia) for a in acts)  # no media was created
    assert call.decline(2.0) == []
    assert call.accept(PARAMS, RANDOM_B, 2.0) == []


def test_incoming_hangup_with_a_reason() -> None:
    call, _ = PrivateCall.incoming_call(requested(b"h" * 32), protocol=PROTO, now=0.0)
    acts = call.hangup(1.0, EndReason.HANGUP)
    assert isinstance(sent(acts)[0].reason, types.PhoneCallDiscardReasonHangup)
    assert acts[-1] == Ended(EndReason.HANGUP, 0, False)
    assert call.hangup(2.0, EndReason.HANGUP) == []


def test_incoming_answer_timeout_declines() -> None:
    call, _ = PrivateCall.incoming_call(
        requested(b"h" * 32), protocol=PROTO, now=0.0, answer_timeout=20.0
    )
    assert call.tick(19.0) == []
    acts = call.tick(20.0)
    assert only(acts, Ended) == Ended(EndReason.BUSY, 0, False, "answer timeout")


def test_incoming_g_a_not_matching_hash_is_refused() -> None:
    other, _ = start_outgoing()
    pair = Pair()
    pair.callee.accept(PARAMS, RANDOM_B, 1.0)
    wrong_g_a = dh.CallerExchange(PARAMS, RANDOM_B).g_a
    acts = pair.callee.on_phone_call(final(wrong_g_a, 1), 1.1)
    end = only(acts, Ended)
    assert end.reason is EndReason.DISCONNECT
    assert end.error is not None
    assert "g_a_hash" in end.error
    assert other.state is State.REQUESTING


def test_incoming_wrong_fingerprint_is_refused() -> None:
    pair = Pair()
    acts = pair.callee.accept(PARAMS, RANDOM_B, 1.0)
    g_b = only(acts, Send).request.g_b
    conf = only(
        pair.caller.on_phone_call(
            types.PhoneCallAccepted(CALL_ID, ACCESS, DATE, CALLER, CALLEE, g_b, PROTO), 1.0
        ),
        Send,
    ).request
    acts = pair.callee.on_phone_call(final(conf.g_a, conf.key_fingerprint ^ 0x55), 1.1)
    assert only(acts, Ended).error == "key fingerprint mismatch"


def test_incoming_bad_server_random_ends_call() -> None:
    call, _ = PrivateCall.incoming_call(requested(b"h" * 32), protocol=PROTO, now=0.0)
    acts = call.accept(PARAMS, b"short", 1.0)
    assert only(acts, Ended).reason is EndReason.DISCONNECT


def test_fail_ends_with_disconnect() -> None:
    pair = Pair()
    pair.callee.accept(PARAMS, RANDOM_B, 1.0)
    acts = pair.callee.fail("CALL_ALREADY_DECLINED", 1.2)
    assert isinstance(sent(acts)[0].reason, types.PhoneCallDiscardReasonDisconnect)
    assert StopMedia(CALLER) in acts
    assert acts[-1] == Ended(EndReason.DISCONNECT, 0, False, "CALL_ALREADY_DECLINED")
    assert pair.callee.fail("again", 2.0) == []


def test_local_misuse_raises() -> None:
    call, _ = start_outgoing()
    with pytest.raises(CallError, match="incoming"):
        call.accept(PARAMS, RANDOM_B, 1.0)
    pair = Pair()
    pair.callee.accept(PARAMS, RANDOM_B, 1.0)
    with pytest.raises(CallError, match="accepting"):
        pair.callee.accept(PARAMS, RANDOM_B, 1.0)


def test_final_call_in_wrong_state_is_ignored() -> None:
    call, _ = PrivateCall.incoming_call(requested(b"h" * 32), protocol=PROTO, now=0.0)
    assert call.on_phone_call(final(b"x" * 256, 1), 1.0) == []
    out, _ = start_outgoing()
    assert out.on_phone_call(final(b"x" * 256, 1), 1.0) == []


# -- discard from the other side, rating ---------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "want"),
    [
        (types.PhoneCallDiscardReasonMissed(), EndReason.MISSED),
        (types.PhoneCallDiscardReasonBusy(), EndReason.BUSY),
        (types.PhoneCallDiscardReasonHangup(), EndReason.HANGUP),
        (types.PhoneCallDiscardReasonDisconnect(), EndReason.DISCONNECT),
        (types.PhoneCallDiscardReasonMigrateConferenceCall("slug"), EndReason.HANGUP),
        (None, EndReason.HANGUP),
    ],
)
def test_remote_discard_reasons(reason: Any, want: EndReason) -> None:
    call, _ = start_outgoing()
    call.on_phone_call(waiting(True), 0.1)
    acts = call.on_phone_call(discarded(reason), 2.0)
    assert sent(acts) == []
    assert acts == [StopMedia(CALLEE), Ended(want, 0, True)]


def test_remote_discard_with_rating_rates_once() -> None:
    pair = Pair()
    pair.answer(1.0)
    pair.caller.on_media_state("CONNECTED", 1.0)
    acts = pair.caller.on_phone_call(
        discarded(types.PhoneCallDiscardReasonHangup(), need_rating=True), 5.5
    )
    rating = sent(acts)[0]
    assert isinstance(rating, phone.SetCallRatingRequest)
    assert rating.rating == 5
    assert rating.comment == ""
    assert rating.peer == types.InputPhoneCall(CALL_ID, ACCESS)
    assert acts[-1] == Ended(EndReason.HANGUP, 4, True)
    assert pair.caller.on_phone_call(discarded(None, need_rating=True), 6.0) == []


def test_own_hangup_then_server_asks_for_rating() -> None:
    pair = Pair()
    pair.answer(1.0)
    pair.callee.hangup(3.0)
    acts = pair.callee.on_phone_call(
        discarded(types.PhoneCallDiscardReasonHangup(), need_rating=True), 3.1
    )
    assert [type(r) for r in sent(acts)] == [phone.SetCallRatingRequest]
    assert not any(isinstance(a, Ended) for a in acts)


def test_objects_of_other_calls_are_ignored() -> None:
    call, _ = start_outgoing()
    call.on_phone_call(waiting(), 0.1)
    other = types.PhoneCallDiscarded(CALL_ID + 1, reason=types.PhoneCallDiscardReasonBusy())
    assert call.on_phone_call(other, 1.0) == []
    assert call.on_phone_call(types.PhoneCallEmpty(CALL_ID), 1.0) == []
    assert call.state is State.REQUESTING


# -- signalling ----------------------------------------------------------------------------


def test_early_signaling_is_buffered_and_replayed_in_order() -> None:
    pair = Pair()
    acts = pair.callee.accept(PARAMS, RANDOM_B, 1.0)
    g_b = only(acts, Send).request.g_b
    conf = only(
        pair.caller.on_phone_call(
            types.PhoneCallAccepted(CALL_ID, ACCESS, DATE, CALLER, CALLEE, g_b, PROTO), 1.0
        ),
        Send,
    ).request
    assert pair.caller.on_signaling(b"one") == []
    assert pair.caller.on_signaling(b"two") == []
    acts = pair.caller.on_phone_call(final(g_b, conf.key_fingerprint), 1.1)
    assert isinstance(acts[0], ConnectMedia)
    assert acts[1:] == [SignalMedia(CALLEE, b"one"), SignalMedia(CALLEE, b"two")]
    assert pair.caller.on_signaling(b"three") == [SignalMedia(CALLEE, b"three")]
    pair.caller.hangup(2.0)
    assert pair.caller.on_signaling(b"four") == []


def test_early_signaling_buffer_is_bounded() -> None:
    call, _ = start_outgoing()
    for i in range(MAX_BUFFERED_BLOBS + 10):
        assert call.on_signaling(bytes([i % 256])) == []
    assert call.dropped_signaling == 10
    big, _ = start_outgoing()
    assert big.on_signaling(b"x" * (300 * 1024)) == []
    assert big.dropped_signaling == 1


# -- invariants under arbitrary input orders ------------------------------------------------


def _inputs() -> st.SearchStrategy[list[tuple[str, float]]]:
    kinds = st.sampled_from(
        [
            "waiting",
            "ringing",
            "accepted",
            "final",
            "discarded",
            "rated",
            "signal",
            "connected",
            "failed",
            "tick",
            "hangup",
            "accept",
            "decline",
        ]
    )
    return st.lists(st.tuples(kinds, st.floats(0, 5)), max_size=25)


G_B = dh.CalleeExchange(PARAMS, RANDOM_B, b"\x00" * 32).g_b


def _feed(call: PrivateCall, kind: str, now: float) -> list[Action]:
    if kind == "waiting":
        return call.on_phone_call(waiting(False), now)
    if kind == "ringing":
        return call.on_phone_call(waiting(True), now)
    if kind == "accepted":
        return call.on_phone_call(
            types.PhoneCallAccepted(CALL_ID, ACCESS, DATE, CALLER, CALLEE, G_B, PROTO), now
        )
    if kind == "final":
        fp = call.key.fingerprint if call.key is not None else 0
        return call.on_phone_call(final(G_B, fp), now)
    if kind == "discarded":
        return call.on_phone_call(discarded(types.PhoneCallDiscardReasonHangup()), now)
    if kind == "rated":
        return call.on_phone_call(discarded(None, need_rating=True), now)
    if kind == "signal":
        return call.on_signaling(b"s")
    if kind == "connected":
        return call.on_media_state("CONNECTED", now)
    if kind == "failed":
        return call.on_media_state("FAILED", now)
    if kind == "tick":
        return call.tick(now + 100)
    if kind == "hangup":
        return call.hangup(now)
    try:
        if kind == "accept":
            return call.accept(PARAMS, RANDOM_B, now)
        return call.decline(now)
    except CallError:
        return []


@settings(max_examples=150, deadline=None)
@given(_inputs(), st.booleans())
def test_any_input_order_keeps_invariants(inputs: list[tuple[str, float]], out: bool) -> None:
    if out:
        call, acts = start_outgoing()
    else:
        call, acts = PrivateCall.incoming_call(requested(b"h" * 32), protocol=PROTO, now=0.0)
    clock = 0.0
    for kind, step in inputs:
        clock += step
        acts += _feed(call, kind, clock)
    ends = [a for a in acts if isinstance(a, Ended)]
    stops = [a for a in acts if isinstance(a, StopMedia)]
    creates = [a for a in acts if isinstance(a, CreateMedia)]
    assert len(ends) <= 1
    assert len(creates) <= 1
    assert len(stops) <= len(creates)
    if ends:
        assert len(stops) == len(creates)
    assert (len(ends) == 1) == call.ended
    discards = [r for r in sent(acts) if isinstance(r, phone.DiscardCallRequest)]
    assert len(discards) <= 1
    ratings = [r for r in sent(acts) if isinstance(r, phone.SetCallRatingRequest)]
    assert len(ratings) <= 1
    connects = [a for a in acts if isinstance(a, ConnectMedia)]
    assert len(connects) <= 1
    if ends:
        idx = acts.index(ends[0])
        assert not any(isinstance(a, (ConnectMedia, SignalMedia)) for a in acts[idx:])
    if any(isinstance(a, Connected) for a in acts):
        assert connects
