"""Line matching of incoming requests, sans-I/O."""

from __future__ import annotations

from tgsip.config.lines import LineKind, SipLine
from tgsip.sip.auth import DigestClient
from tgsip.sip.lines import LineTable, field_header
from tgsip.sip.message import Request, new_request, parse_message
from tgsip.sip.registrar import Registrar
from tgsip.sip.transaction import Peer


def invite(user: str = "100", *headers: tuple[str, str], method: str = "INVITE") -> Request:
    req = new_request(
        method,
        f"sip:{user}@192.0.2.1",
        "<sip:pbx@192.0.2.50>",
        f"<sip:{user}@192.0.2.1>",
        "call-1",
        1,
        "192.0.2.50",
        extra_headers=headers,
    )
    msg = parse_message(req.to_bytes())
    assert isinstance(msg, Request)
    return msg


def table(*lines: SipLine) -> LineTable:
    t = LineTable(Registrar(b"s" * 32, "tgsip"))
    t.set_lines(lines)
    return t


def src(ip: str) -> Peer:
    return Peer("UDP", ip, 5060)


def ipip(line_id: int, address: str, field_value: str = "", **kw: object) -> SipLine:
    return SipLine(
        id=line_id,
        session_id=1,
        kind=LineKind.IP_IP,
        address=address,
        field_value=field_value,
        **kw,  # type: ignore[arg-type]
    )


def test_field_header() -> None:
    assert field_header("X-Line: 2") == ("X-Line", "2")
    assert field_header("") is None
    assert field_header("nocolon") is None


def test_unknown_source_is_dropped_and_counted() -> None:
    t = table(ipip(1, "192.0.2.50"))
    t.set_addresses(1, ["192.0.2.50"])
    m = t.match(invite(), src("203.0.113.7"), 0.0)
    assert m.dropped
    assert m.failure == "unknown source"
    assert not t.known_source("203.0.113.7")
    assert t.known_source("192.0.2.50")
    assert t.is_trusted("192.0.2.50")


def test_ip_ip_by_address_and_field_value() -> None:
    t = table(ipip(1, "192.0.2.50", "X-Trunk: a"), ipip(2, "192.0.2.50", "X-Trunk: b"))
    t.set_addresses(1, ["192.0.2.50"])
    t.set_addresses(2, ["::ffff:192.0.2.50"])  # mapped form is normalised
    assert t.match(invite("1", ("X-Trunk", "a")), src("192.0.2.50"), 0).line_id == 1
    assert t.match(invite("1", ("x-trunk", " b ")), src("192.0.2.50"), 0).line_id == 2
    m = t.match(invite("1"), src("192.0.2.50"), 0)
    assert (m.status, m.reason, m.failure) == (404, "No lines for call", "")
    # one plain line next to field lines is the fallback
    t.update_line(ipip(3, "192.0.2.50"))
    t.set_addresses(3, ["192.0.2.50"])
    assert t.match(invite("1"), src("192.0.2.50"), 0).line_id == 3
    t.remove_line(3)
    assert t.match(invite("1"), src("192.0.2.50"), 0).status == 404


def test_ip_ip_extra_trusted_ips() -> None:
    t = table(ipip(1, "192.0.2.50", trusted_ips=("198.51.100.0/24",)))
    t.set_addresses(1, ["192.0.2.50"])
    assert t.match(invite(), src("198.51.100.9"), 0).line_id == 1
    assert t.match(invite(), src("198.51.101.9"), 0).dropped


def test_gateway_to_pbx_needs_registrar_source_and_contact_user() -> None:
    line = SipLine(
        id=5,
        session_id=1,
        kind=LineKind.GATEWAY_TO_PBX,
        login="alice",
        password="pw",
        domain="pbx.example",
    )
    t = table(line)
    t.set_addresses(5, ["192.0.2.60"])
    t.set_contact_user(5, "gabc")
    assert t.match(invite("gabc"), src("192.0.2.60"), 0).line_id == 5
    wrong_user = t.match(invite("100"), src("192.0.2.60"), 0)
    assert wrong_user.status == 404
    assert not wrong_user.failure
    ghost = t.match(invite("gabc"), src("203.0.113.7"), 0)
    assert ghost.dropped
    assert ghost.failure
    # changing the domain forgets the resolved addresses until resolved again
    t.update_line(SipLine(**{**_fields(line), "domain": "other.example"}))  # type: ignore[arg-type]
    assert t.match(invite("gabc"), src("192.0.2.60"), 0).dropped


def _fields(line: SipLine) -> dict[str, object]:
    return {f: getattr(line, f) for f in line.__struct_fields__}


def test_pbx_to_gateway_invite_is_challenged_then_accepted() -> None:
    line = SipLine(
        id=9,
        session_id=1,
        kind=LineKind.PBX_TO_GATEWAY,
        login="pbxlogin01",
        password="pw-0123456789-0123456789",
        trusted_ips=("192.0.2.70/32",),
    )
    t = table(line)
    assert t.match(invite(), src("203.0.113.7"), 0).dropped
    inv = invite()
    m = t.match(inv, src("192.0.2.70"), 0)
    assert m.status == 401
    assert not m.failure
    auth = DigestClient("pbxlogin01", "pw-0123456789-0123456789").authorize(
        [v for _, v in m.headers], "INVITE", inv.uri
    )
    good = invite("100", ("Authorization", auth))
    assert t.match(good, src("192.0.2.70"), 0).line_id == 9
    bad = DigestClient("pbxlogin01", "nope").authorize([v for _, v in m.headers], "INVITE", inv.uri)
    m = t.match(invite("100", ("Authorization", bad)), src("192.0.2.70"), 0)
    assert m.status == 403
    assert m.failure
    # OPTIONS keep-alive from the trusted PBX: no challenge
    assert t.match(invite(method="OPTIONS"), src("192.0.2.70"), 0).line_id == 9
    t.set_lines([])
    assert t.match(good, src("192.0.2.70"), 0).dropped


def test_gateway_to_pbx_extra_trusted_ips() -> None:
    line = SipLine(
        id=6,
        session_id=1,
        kind=LineKind.GATEWAY_TO_PBX,
        login="alice",
        password="pw",
        domain="pbx.example",
        trusted_ips=("198.51.100.0/24",),
    )
    t = table(line)
    t.set_contact_user(6, "gxyz")  # not resolved yet: the trusted network still works
    assert t.match(invite("gxyz"), src("198.51.100.20"), 0).line_id == 6
    assert t.match(invite("other"), src("198.51.100.20"), 0).status == 404
    assert t.is_trusted("198.51.100.20")
    assert t.match(invite("gxyz"), src("203.0.113.5"), 0).dropped
