"""Random message/timer sequences through the transaction layer (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tgsip.sip.message import Request, Response, make_response, new_request, parse_message
from tgsip.sip.transaction import (
    InviteClient,
    InviteServer,
    NonInviteClient,
    NonInviteServer,
    Peer,
    Send,
    State,
    Timers,
    TransactionLayer,
    build_ack_for_non2xx,
)

STATUSES = [100, 180, 183, 200, 202, 302, 404, 486, 503, 603]


def request(method: str) -> Request:
    r = new_request(
        method,
        "sip:b@127.0.0.1",
        "sip:a@127.0.0.1",
        "sip:b@127.0.0.1",
        "fz",
        1,
        "127.0.0.1",
        via_port=5060,
        branch="z9hG4bKfz",
    )
    out = parse_message(r.to_bytes())
    assert isinstance(out, Request)
    return out


def response(r: Request, status: int) -> Response:
    out = parse_message(make_response(r, status, "X", to_tag="t").to_bytes())
    assert isinstance(out, Response)
    return out


events = st.lists(
    st.tuples(st.sampled_from(["msg", "tick", "tu"]), st.sampled_from(STATUSES), st.floats(0, 40)),
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(
    method=st.sampled_from(["INVITE", "OPTIONS"]),
    side=st.sampled_from(["client", "server"]),
    transport=st.sampled_from(["UDP", "TCP"]),
    evs=events,
)
def test_random_sequences_never_break_invariants(
    method: str, side: str, transport: str, evs: list[tuple[str, int, float]]
) -> None:
    layer = TransactionLayer(Timers())
    peer = Peer(transport, "127.0.0.1", 5060)
    r = request(method)
    now = 0.0
    if side == "client":
        txn, _ = layer.send_request(r, peer, now)
    else:
        acts = layer.receive(r, peer, now)
        txn = acts[-1].txn  # type: ignore[union-attr]
    finals_sent = 0
    for kind, status, dt in evs:
        if kind == "tick":
            now += dt
            acts = layer.tick(now)
        elif kind == "msg":
            if side == "client":
                acts = layer.receive(response(r, status), peer, now)
            elif status >= 300 and method == "INVITE":
                acts = layer.receive(build_ack_for_non2xx(r, response(r, status)), peer, now)
            else:
                acts = layer.receive(r, peer, now)  # retransmission
        else:
            if side == "server" and isinstance(txn, InviteServer | NonInviteServer):
                acts = layer.respond(txn, make_response(r, status, "X", to_tag="t"), now)
                finals_sent += sum(
                    1
                    for a in acts
                    if isinstance(a, Send) and a.message.status >= 200  # type: ignore[union-attr]
                )
            continue
        for a in acts:
            if isinstance(a, Send) and transport == "TCP" and kind == "tick":
                raise AssertionError("retransmission over a reliable transport")
    # server: the TU's finals go out once (retransmissions come only from timers/requests)
    if side == "server" and method != "INVITE":
        assert finals_sent <= 1
    # with no more input, every timer eventually fires and the heap empties
    for _ in range(10_000):
        at = layer.next_deadline()
        if at is None:
            break
        layer.tick(at)
    assert layer.next_deadline() is None
    # only states waiting for the TU or for a final response have no timer; a request
    # retransmitted after Terminated legitimately starts a new server transaction
    waiting = {
        InviteClient: {State.PROCEEDING},
        NonInviteClient: set(),
        InviteServer: {State.PROCEEDING},
        NonInviteServer: {State.TRYING, State.PROCEEDING},
    }
    left = [*layer.clients.values(), *layer.servers.values()]
    for t in left:
        assert t.state in waiting[type(t)], (type(t).__name__, t.state)
    assert txn.terminated or txn in left
