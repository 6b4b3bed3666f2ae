"""RFC 3261 §17 / RFC 6026 transaction machines on a fake clock."""

from __future__ import annotations

import itertools

import pytest

from tgsip.sip.message import Request, Response, make_response, new_request, parse_message
from tgsip.sip.transaction import (
    Deliver,
    InviteClient,
    InviteServer,
    NonInviteClient,
    NonInviteServer,
    Peer,
    Send,
    State,
    Terminated,
    TimedOut,
    Timers,
    TransactionLayer,
    build_ack_for_non2xx,
)

UDP = Peer("UDP", "127.0.0.1", 5070)
TCP = Peer("TCP", "127.0.0.1", 5070)
T = Timers(t1=0.5, t2=4.0, t4=5.0)


def req(method: str = "INVITE", branch: str = "z9hG4bKabc") -> Request:
    r = new_request(
        method,
        "sip:bob@127.0.0.1",
        "sip:alice@127.0.0.1",
        "sip:bob@127.0.0.1",
        "call-1",
        1,
        "127.0.0.1",
        via_port=5060,
        branch=branch,
    )
    r.add("Route", "<sip:proxy.example;lr>")
    # round-trip through the parser like a received message
    out = parse_message(r.to_bytes())
    assert isinstance(out, Request)
    return out


def resp(r: Request, status: int, tag: str | None = "t1") -> Response:
    out = parse_message(make_response(r, status, "X", to_tag=tag).to_bytes())
    assert isinstance(out, Response)
    return out


def sends(acts: list[object]) -> list[Send]:
    return [a for a in acts if isinstance(a, Send)]


def run_until(layer: TransactionLayer, until: float) -> list[tuple[float, object]]:
    """Drive the layer's single heap like a driver would; returns (time, action)."""
    out: list[tuple[float, object]] = []
    for _ in range(100_000):
        at = layer.next_deadline()
        if at is None or at > until:
            break
        out += [(at, a) for a in layer.tick(at)]
    return out


# ---------------------------------------------------------------------------------------
# INVITE client


def test_invite_client_timer_a_doubles_without_cap_until_timer_b() -> None:
    layer = TransactionLayer(T)
    txn, acts = layer.send_request(req(), UDP, 0.0)
    assert isinstance(txn, InviteClient)
    assert txn.state is State.CALLING
    assert len(sends(acts)) == 1
    events = run_until(layer, 100.0)
    times = [t for t, a in events if isinstance(a, Send)]
    # A fires at 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 -> 6 retransmissions; B at 32 s
    assert times == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    kinds = [type(a) for t, a in events if t == 32.0]
    assert kinds == [TimedOut, Terminated]
    assert txn.state is State.TERMINATED
    assert len(layer) == 0
    assert layer.next_deadline() is None


def test_invite_client_reliable_no_retransmission() -> None:
    layer = TransactionLayer(T)
    _txn, _ = layer.send_request(req(), TCP, 0.0)
    events = run_until(layer, 100.0)
    assert [type(a) for _, a in events] == [TimedOut, Terminated]
    assert events[0][0] == 32.0


def test_invite_client_proceeding_stops_a_and_b() -> None:
    layer = TransactionLayer(T)
    r = req()
    txn, _ = layer.send_request(r, UDP, 0.0)
    acts = layer.receive(resp(r, 180), UDP, 0.2)
    assert [type(a) for a in acts] == [Deliver]
    assert txn.state is State.PROCEEDING
    assert layer.next_deadline() is None
    assert run_until(layer, 1000.0) == []


def test_invite_client_non2xx_acks_inside_and_timer_d() -> None:
    layer = TransactionLayer(T)
    r = req()
    txn, _ = layer.send_request(r, UDP, 0.0)
    final = resp(r, 486)
    acts = layer.receive(final, UDP, 1.0)
    assert txn.state is State.COMPLETED
    ack = sends(acts)[0].message
    assert isinstance(ack, Request)
    assert ack.method == "ACK"
    assert ack.top_via.branch == "z9hG4bKabc"
    assert ack.to.tag == "t1"
    assert ack.cseq.number == 1
    assert ack.cseq.method == "ACK"
    assert ack.get_all("Route") == ["<sip:proxy.example;lr>"]
    assert ack.uri == r.uri
    assert any(isinstance(a, Deliver) for a in acts)
    # retransmitted final -> ACK again, not delivered again
    again = layer.receive(final, UDP, 2.0)
    assert [type(a) for a in again] == [Send]
    assert again[0].message is ack  # type: ignore[union-attr]
    assert layer.next_deadline() == 33.0
    events = run_until(layer, 100.0)
    assert [(t, type(a)) for t, a in events] == [(33.0, Terminated)]


def test_invite_client_non2xx_reliable_timer_d_zero() -> None:
    layer = TransactionLayer(T)
    r = req()
    txn, _ = layer.send_request(r, TCP, 0.0)
    layer.receive(resp(r, 603), TCP, 1.0)
    assert layer.next_deadline() == 1.0
    layer.tick(1.0)
    assert txn.terminated


def test_invite_client_accepted_timer_m_and_2xx_retransmissions() -> None:
    layer = TransactionLayer(T)
    r = req()
    txn, _ = layer.send_request(r, UDP, 0.0)
    ok = resp(r, 200)
    acts = layer.receive(ok, UDP, 0.1)
    assert txn.state is State.ACCEPTED
    assert [type(a) for a in acts] == [Deliver]  # no ACK from the transaction for 2xx
    # a retransmitted 2xx (or one from another fork) is delivered to the TU
    acts = layer.receive(ok, UDP, 0.6)
    assert [type(a) for a in acts] == [Deliver]
    events = run_until(layer, 100.0)
    assert [(t, type(a)) for t, a in events] == [(0.1 + 32.0, Terminated)]
    # after Terminated the stray 2xx is still handed to the TU (txn None)
    acts = layer.receive(ok, UDP, 40.0)
    assert isinstance(acts[0], Deliver)
    assert acts[0].txn is None


def test_build_ack_requires_invite_fields() -> None:
    r = req()
    ack = build_ack_for_non2xx(r, resp(r, 404))
    assert ack.call_id == r.call_id
    assert ack.from_.tag == r.from_.tag


# ---------------------------------------------------------------------------------------
# non-INVITE client


def test_non_invite_client_timer_e_doubles_to_t2_then_f() -> None:
    layer = TransactionLayer(T)
    txn, _ = layer.send_request(req("OPTIONS"), UDP, 0.0)
    assert isinstance(txn, NonInviteClient)
    events = run_until(layer, 100.0)
    times = [t for t, a in events if isinstance(a, Send)]
    # intervals 0.5, 1, 2, 4, 4, 4 ... until F at 32 s
    assert times[:5] == [0.5, 1.5, 3.5, 7.5, 11.5]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(g == 4.0 for g in gaps[3:])
    assert times[-1] == 31.5
    assert len(times) == 10  # 0.5 1.5 3.5 7.5 11.5 ... 31.5
    assert [(t, type(a)) for t, a in events if not isinstance(a, Send)] == [
        (32.0, TimedOut),
        (32.0, Terminated),
    ]


def test_non_invite_client_proceeding_retransmits_every_t2() -> None:
    layer = TransactionLayer(T)
    r = req("OPTIONS")
    txn, _ = layer.send_request(r, UDP, 0.0)
    layer.tick(0.5)  # first retransmission, next E at 1.5
    layer.receive(resp(r, 100), UDP, 0.6)
    assert txn.state is State.PROCEEDING
    events = run_until(layer, 12.0)
    times = [t for t, a in events if isinstance(a, Send)]
    assert times == [1.5, 5.5, 9.5]


def test_non_invite_client_completed_timer_k() -> None:
    layer = TransactionLayer(T)
    r = req("REGISTER")
    txn, _ = layer.send_request(r, UDP, 0.0)
    final = resp(r, 200)
    acts = layer.receive(final, UDP, 0.2)
    assert [type(a) for a in acts] == [Deliver]
    assert txn.state is State.COMPLETED
    assert layer.receive(final, UDP, 0.3) == []  # absorbed
    events = run_until(layer, 100.0)
    assert [(t, type(a)) for t, a in events] == [(5.2, Terminated)]


def test_non_invite_client_reliable() -> None:
    layer = TransactionLayer(T)
    r = req("BYE")
    txn, _ = layer.send_request(r, TCP, 0.0)
    layer.receive(resp(r, 200), TCP, 0.2)
    layer.tick(0.2)
    assert txn.terminated
    assert len(layer) == 0


def test_ack_cannot_create_client_transaction() -> None:
    with pytest.raises(ValueError, match="ACK"):
        TransactionLayer(T).send_request(req("ACK"), UDP, 0.0)


# ---------------------------------------------------------------------------------------
# INVITE server


def test_invite_server_100_trying_and_retransmitted_provisional() -> None:
    layer = TransactionLayer(T)
    r = req()
    acts = layer.receive(r, UDP, 0.0)
    assert isinstance(acts[0], Send)
    assert isinstance(acts[0].message, Response)
    assert acts[0].message.status == 100
    assert isinstance(acts[1], Deliver)
    txn = acts[1].txn
    assert isinstance(txn, InviteServer)
    assert txn.state is State.PROCEEDING
    ringing = make_response(r, 180, "Ringing", to_tag="x")
    assert sends(layer.respond(txn, ringing, 0.1))[0].message is ringing
    again = layer.receive(r, UDP, 0.2)
    assert [a.message for a in sends(again)] == [ringing]
    assert not any(isinstance(a, Deliver) for a in again)


def test_invite_server_non2xx_timer_g_doubles_to_t2_then_h() -> None:
    layer = TransactionLayer(T)
    r = req()
    txn = layer.receive(r, UDP, 0.0)[1].txn
    assert isinstance(txn, InviteServer)
    busy = make_response(r, 486, "Busy Here", to_tag="x")
    layer.respond(txn, busy, 0.0)
    assert txn.state is State.COMPLETED
    events = run_until(layer, 100.0)
    times = [t for t, a in events if isinstance(a, Send)]
    assert times[:5] == [0.5, 1.5, 3.5, 7.5, 11.5]
    assert times[-1] == 31.5
    assert [(t, type(a)) for t, a in events if not isinstance(a, Send)] == [
        (32.0, TimedOut),
        (32.0, Terminated),
    ]


def test_invite_server_ack_confirms_and_timer_i() -> None:
    layer = TransactionLayer(T)
    r = req()
    txn = layer.receive(r, UDP, 0.0)[1].txn
    assert isinstance(txn, InviteServer)
    busy = make_response(r, 486, "Busy Here", to_tag="x")
    layer.respond(txn, busy, 0.0)
    # retransmitted INVITE in Completed gets the final again
    assert [a.message for a in sends(layer.receive(r, UDP, 0.1))] == [busy]
    ack = build_ack_for_non2xx(r, resp(r, 486, "x"))
    assert layer.receive(ack, UDP, 0.2) == []  # absorbed by the transaction
    assert txn.state is State.CONFIRMED
    assert layer.receive(ack, UDP, 0.3) == []
    events = run_until(layer, 100.0)
    assert [(t, type(a)) for t, a in events] == [(5.2, Terminated)]


def test_invite_server_reliable_no_g_and_zero_i() -> None:
    layer = TransactionLayer(T)
    r = req()
    txn = layer.receive(r, TCP, 0.0)[1].txn
    assert isinstance(txn, InviteServer)
    layer.respond(txn, make_response(r, 404, "Not Found", to_tag="x"), 0.0)
    assert layer.next_deadline() == 32.0  # only H
    layer.receive(build_ack_for_non2xx(r, resp(r, 404, "x")), TCP, 1.0)
    assert layer.next_deadline() == 1.0
    layer.tick(1.0)
    assert txn.terminated


def test_invite_server_accepted_timer_l_absorbs_and_passes_ack() -> None:
    layer = TransactionLayer(T)
    r = req()
    txn = layer.receive(r, UDP, 0.0)[1].txn
    assert isinstance(txn, InviteServer)
    ok = make_response(r, 200, "OK", to_tag="x")
    layer.respond(txn, ok, 0.0)
    assert txn.state is State.ACCEPTED
    assert layer.receive(r, UDP, 0.1) == []  # retransmitted INVITE absorbed
    # TU retransmits the 2xx through the transaction
    assert sends(layer.respond(txn, ok, 0.5))[0].message is ok
    ack = Request(method="ACK", uri=r.uri, headers=list(r.headers))
    ack.headers = [(n, "1 ACK" if n == "CSeq" else v) for n, v in r.headers]
    acts = layer.receive(ack, UDP, 0.6)
    assert [type(a) for a in acts] == [Deliver]
    events = run_until(layer, 100.0)
    assert [(t, type(a)) for t, a in events] == [(32.0, Terminated)]


def test_invite_server_without_trying() -> None:
    layer = TransactionLayer(T)
    acts = layer.receive(req(), UDP, 0.0, send_trying=False)
    assert [type(a) for a in acts] == [Deliver]


# ---------------------------------------------------------------------------------------
# non-INVITE server


def test_non_invite_server_trying_proceeding_completed_timer_j() -> None:
    layer = TransactionLayer(T)
    r = req("OPTIONS")
    acts = layer.receive(r, UDP, 0.0)
    assert [type(a) for a in acts] == [Deliver]
    txn = acts[0].txn
    assert isinstance(txn, NonInviteServer)
    assert txn.state is State.TRYING
    assert layer.receive(r, UDP, 0.1) == []  # Trying absorbs
    prov = make_response(r, 100, "Trying")
    layer.respond(txn, prov, 0.2)
    assert txn.state is State.PROCEEDING
    assert [a.message for a in sends(layer.receive(r, UDP, 0.3))] == [prov]
    ok = make_response(r, 200, "OK", to_tag="x")
    layer.respond(txn, ok, 1.0)
    assert txn.state is State.COMPLETED
    assert [a.message for a in sends(layer.receive(r, UDP, 2.0))] == [ok]
    assert layer.respond(txn, ok, 2.0) == []  # no second final
    events = run_until(layer, 100.0)
    assert [(t, type(a)) for t, a in events] == [(33.0, Terminated)]


def test_non_invite_server_reliable_j_zero() -> None:
    layer = TransactionLayer(T)
    r = req("BYE")
    txn = layer.receive(r, TCP, 0.0)[0].txn
    assert isinstance(txn, NonInviteServer)
    layer.respond(txn, make_response(r, 200, "OK"), 0.5)
    layer.tick(0.5)
    assert txn.terminated


# ---------------------------------------------------------------------------------------
# Matching


def test_matching_uses_branch_sent_by_and_method() -> None:
    layer = TransactionLayer(T)
    a = req("INVITE", "z9hG4bK1")
    layer.receive(a, UDP, 0.0)
    b = req("INVITE", "z9hG4bK2")
    assert any(isinstance(x, Deliver) for x in layer.receive(b, UDP, 0.0))
    # same branch, different sent-by -> a new transaction
    c = parse_message(a.to_bytes().replace(b"127.0.0.1:5060", b"127.0.0.2:5060"))
    assert any(isinstance(x, Deliver) for x in layer.receive(c, UDP, 0.0))
    assert len(layer.servers) == 3


def test_cancel_is_its_own_transaction_and_finds_the_invite() -> None:
    layer = TransactionLayer(T)
    inv = req("INVITE", "z9hG4bKc")
    txn = layer.receive(inv, UDP, 0.0)[1].txn
    cancel_bytes = (
        inv.to_bytes().replace(b"INVITE sip", b"CANCEL sip").replace(b"1 INVITE", b"1 CANCEL")
    )
    cancel = parse_message(cancel_bytes)
    assert isinstance(cancel, Request)
    acts = layer.receive(cancel, UDP, 0.1)
    ctx = acts[0].txn
    assert isinstance(ctx, NonInviteServer)
    assert ctx is not txn
    assert layer.find_invite_for_cancel(cancel) is txn


def test_response_matching_uses_cseq_method() -> None:
    layer = TransactionLayer(T)
    r = req("INVITE", "z9hG4bKm")
    txn, _ = layer.send_request(r, UDP, 0.0)
    wrong = parse_message(resp(r, 200).to_bytes().replace(b"1 INVITE", b"1 CANCEL"))
    assert isinstance(wrong, Response)
    acts = layer.receive(wrong, UDP, 0.1)
    assert isinstance(acts[0], Deliver)
    assert acts[0].txn is None
    assert txn.state is State.CALLING


def test_rfc2543_request_matching() -> None:
    layer = TransactionLayer(T)
    r = req("INVITE", "old-branch")
    txn = layer.receive(r, UDP, 0.0)[1].txn
    assert isinstance(txn, InviteServer)
    layer.respond(txn, make_response(r, 486, "Busy", to_tag="x"), 0.0)
    ack = build_ack_for_non2xx(r, resp(r, 486, "x"))
    assert layer.receive(ack, UDP, 0.1) == []
    assert txn.state is State.CONFIRMED


def test_many_transactions_one_heap() -> None:
    layer = TransactionLayer(T)
    for i in range(2000):
        layer.send_request(req("OPTIONS", f"z9hG4bKn{i}"), UDP, i * 0.001)
    assert len(layer) == 2000
    events = run_until(layer, 40.0)
    assert sum(isinstance(a, TimedOut) for _, a in events) == 2000
    assert len(layer) == 0
    assert layer.next_deadline() is None
