"""Registration client for gateway → PBX lines, sans-I/O with a fake clock.

The server side is our own :class:`Registrar` (an independent digest implementation path:
challenge issuing and verification), plus hand-made responses for 423, 503 and errors.
"""

from __future__ import annotations

import random

import pytest

from tgsip.config.lines import LineKind, SipLine, Transport
from tgsip.sip.message import Request, Response, make_response, parse_message
from tgsip.sip.registrar import Registrar
from tgsip.sip.registration import Registration, RegistrationStatus, RegState, split_hostport
from tgsip.sip.transaction import Peer

US = Peer("UDP", "192.0.2.1", 5060)


def gw_line(**kw: object) -> SipLine:
    base: dict[str, object] = {
        "id": 3,
        "session_id": 1,
        "kind": LineKind.GATEWAY_TO_PBX,
        "login": "alice",
        "password": "s3cret-pass",
        "domain": "pbx.example:5070",
    }
    base.update(kw)
    return SipLine(**base)  # type: ignore[arg-type]


def pbx_registrar() -> Registrar:
    """The PBX: our registrar with a PBX → gateway line for the account alice."""
    r = Registrar(b"k" * 32, "pbx.example", min_expires=60, max_expires=3600)
    r.set_line(
        SipLine(
            id=99,
            session_id=9,
            kind=LineKind.PBX_TO_GATEWAY,
            login="alice",
            password="s3cret-pass",
        )
    )
    return r


def wire(req: Request) -> Request:
    msg = parse_message(req.to_bytes())
    assert isinstance(msg, Request)
    return msg


def reply(req: Request, status: int, reason: str, headers: tuple[tuple[str, str], ...]) -> Response:
    resp = make_response(req, status, reason, to_tag="t1")
    for n, v in headers:
        resp.add(n, v)
    msg = parse_message(resp.to_bytes())
    assert isinstance(msg, Response)
    return msg


def exchange(reg: Registration, server: Registrar, now: float) -> Response:
    req = wire(reg.build(now, via_host="192.0.2.1", via_port=5060, contact="192.0.2.1:5060"))
    res = server.register(req, US, now)
    resp = reply(req, res.status, res.reason, res.headers)
    reg.on_response(resp, now)
    return resp


def test_split_hostport() -> None:
    assert split_hostport("pbx.example", 5060) == ("pbx.example", 5060)
    assert split_hostport("10.0.0.1:5070", 5060) == ("10.0.0.1", 5070)
    assert split_hostport("[2001:db8::1]:5080", 5060) == ("2001:db8::1", 5080)
    assert split_hostport("2001:db8::1", 5061) == ("2001:db8::1", 5061)
    for bad in ("", ":5060", "h:0", "h:x", "[::1"):
        with pytest.raises(ValueError, match="bad address"):
            split_hostport(bad, 5060)


def test_registers_with_digest_and_refreshes_between_50_and_80_percent() -> None:
    events: list[RegistrationStatus] = []
    reg = Registration(gw_line(), expires=600, rng=random.Random(1), on_change=events.append)
    server = pbx_registrar()
    reg.start(0.0)
    assert reg.deadline == 0.0
    assert reg.state is RegState.REGISTERING
    first = exchange(reg, server, 0.0)
    assert first.status == 401
    assert reg.deadline == 0.0
    ok = exchange(reg, server, 0.0)
    assert ok.status == 200
    assert reg.state is RegState.REGISTERED
    assert reg.expires_at == 600.0
    assert 300.0 <= reg.deadline <= 480.0
    b = server.binding(99, 1.0)
    assert b is not None
    assert b.contact == f"sip:{reg.contact_user}@192.0.2.1:5060"
    assert reg.target == ("pbx.example", 5070, "UDP")
    # refresh: challenged again, answered, still registered, no state event
    t = reg.deadline
    assert exchange(reg, server, t).status == 401
    assert exchange(reg, server, t).status == 200
    assert [e.state for e in events] == [RegState.REGISTERING, RegState.REGISTERED]
    assert reg.expires_at == t + 600


def test_wrong_password_fails_with_backoff_growing_and_jittered() -> None:
    reg = Registration(gw_line(password="wrong"), rng=random.Random(2), min_backoff=5)
    server = pbx_registrar()
    reg.start(0.0)
    now = 0.0
    delays = []
    for _ in range(5):
        assert exchange(reg, server, now).status == 401
        assert exchange(reg, server, now).status == 403
        assert reg.state is RegState.FAILED
        assert "403" in reg.last_error
        delays.append(reg.deadline - now)
        now = reg.deadline
    for i, d in enumerate(delays):
        assert 5 * 2**i * 0.5 <= d <= 5 * 2**i
    assert len(set(delays)) == 5


def test_second_challenge_is_not_answered_twice() -> None:
    reg = Registration(gw_line(), rng=random.Random(3))
    reg.start(0.0)
    server = pbx_registrar()
    req = wire(reg.build(0.0, via_host="h", via_port=5060, contact="h:5060"))
    res = server.register(req, US, 0.0)
    reg.on_response(reply(req, 401, "Unauthorized", res.headers), 0.0)
    req2 = wire(reg.build(0.0, via_host="h", via_port=5060, contact="h:5060"))
    assert req2.get("Authorization") is not None
    # the PBX challenges again (not stale): give up for now
    reg.on_response(reply(req2, 401, "Unauthorized", server.challenge_headers(0.0)), 0.0)
    assert reg.state is RegState.FAILED
    assert reg.deadline > 0.0
    # a stale challenge is answered
    reg2 = Registration(gw_line(), rng=random.Random(3))
    reg2.start(0.0)
    r = wire(reg2.build(0.0, via_host="h", via_port=5060, contact="h:5060"))
    reg2.on_response(reply(r, 401, "Unauthorized", server.challenge_headers(0.0)), 0.0)
    r = wire(reg2.build(0.0, via_host="h", via_port=5060, contact="h:5060"))
    reg2.on_response(reply(r, 401, "Unauthorized", server.challenge_headers(0.0, stale=True)), 0)
    assert reg2.deadline == 0.0
    assert reg2.state is RegState.REGISTERING


def test_423_raises_expires_to_min_expires() -> None:
    reg = Registration(gw_line(), expires=30, rng=random.Random(4))
    server = pbx_registrar()
    reg.start(0.0)
    assert exchange(reg, server, 0.0).status == 401
    assert exchange(reg, server, 0.0).status == 423
    assert reg.expires == 60
    assert reg.deadline == 0.0
    req = wire(reg.build(0.0, via_host="h", via_port=5060, contact="h:5060"))
    assert req.expires == 60


def test_503_retry_after_and_timeout_and_recovery() -> None:
    reg = Registration(gw_line(), rng=random.Random(5), min_backoff=1)
    reg.start(0.0)
    req = wire(reg.build(0.0, via_host="h", via_port=5060, contact="h:5060"))
    reg.on_response(reply(req, 503, "Service Unavailable", (("Retry-After", "120"),)), 0.0)
    assert reg.state is RegState.FAILED
    assert reg.deadline == 120.0
    reg.build(120.0, via_host="h", via_port=5060, contact="h:5060")
    reg.on_error(120.0, "OSError: connection refused")
    assert reg.last_error == "OSError: connection refused"
    assert reg.deadline > 120.0
    server = pbx_registrar()
    now = reg.deadline
    exchange(reg, server, now)
    exchange(reg, server, now)
    assert reg.state is RegState.REGISTERED
    assert reg.failures == 0
    assert reg.last_error == ""


def test_stop_unregisters_with_expires_0_and_proxy_route() -> None:
    line = gw_line(proxy="10.0.0.5:5090", transport=Transport.TCP)
    reg = Registration(line, rng=random.Random(6))
    server = pbx_registrar()
    reg.start(0.0)
    first = wire(reg.build(0.0, via_host="h", via_port=5060, contact="h:5060"))
    assert reg.target == ("10.0.0.5", 5090, "TCP")
    assert first.uri == "sip:pbx.example:5070"
    assert first.get("Route") == "<sip:10.0.0.5:5090;lr;transport=tcp>"
    assert first.contacts is not None
    assert first.contacts[0].uri.param("transport") == "tcp"
    res = server.register(first, US, 0.0)
    reg.on_response(reply(first, res.status, res.reason, res.headers), 0.0)
    exchange(reg, server, 0.0)
    assert reg.state is RegState.REGISTERED
    assert server.is_registered(99, 1.0)
    assert reg.stop(1.0)
    assert reg.deadline == 1.0
    exchange(reg, server, 1.0)  # 401
    last = exchange(reg, server, 1.0)
    assert last.status == 200
    assert reg.done
    assert reg.state is RegState.UNREGISTERED
    assert not server.is_registered(99, 1.0)
    # stopping a registration that never registered needs no request
    idle = Registration(gw_line(), rng=random.Random(7))
    assert not idle.stop(0.0)
    assert idle.done


def test_contact_users_are_random_per_registration() -> None:
    users = {Registration(gw_line()).contact_user for _ in range(50)}
    assert len(users) == 50


def test_stop_while_a_register_is_in_flight_unregisters_after_it() -> None:
    reg = Registration(gw_line(), rng=random.Random(8))
    server = pbx_registrar()
    reg.start(0.0)
    exchange(reg, server, 0.0)  # 401
    req = wire(reg.build(0.0, via_host="192.0.2.1", via_port=5060, contact="192.0.2.1:5060"))
    assert reg.stop(0.5)  # the answered REGISTER is still in flight
    assert not reg.done
    res = server.register(req, US, 0.5)
    reg.on_response(reply(req, res.status, res.reason, res.headers), 0.5)
    assert res.status == 200
    assert server.is_registered(99, 0.6)
    assert reg.deadline == 0.5
    assert not reg.done
    unreg = wire(reg.build(0.5, via_host="192.0.2.1", via_port=5060, contact="192.0.2.1:5060"))
    assert unreg.expires == 0
    res = server.register(unreg, US, 0.5)
    reg.on_response(reply(unreg, res.status, res.reason, res.headers), 0.5)
    exchange(reg, server, 0.5)
    assert reg.done
    assert not server.is_registered(99, 0.6)


def test_407_is_answered_with_proxy_authorization() -> None:
    reg = Registration(gw_line(proxy="10.0.0.5"), rng=random.Random(9))
    server = pbx_registrar()
    reg.start(0.0)
    req = wire(reg.build(0.0, via_host="h", via_port=5060, contact="h:5060"))
    chal = tuple(("Proxy-Authenticate", v) for _, v in server.challenge_headers(0.0))
    reg.on_response(reply(req, 407, "Proxy Authentication Required", chal), 0.0)
    assert reg.deadline == 0.0
    again = wire(reg.build(0.0, via_host="h", via_port=5060, contact="h:5060"))
    assert again.get("Authorization") is None
    value = again.get("Proxy-Authorization")
    assert value is not None
    assert "algorithm=SHA-256" in value
    assert again.cseq.number == req.cseq.number + 1
    assert again.call_id == req.call_id
