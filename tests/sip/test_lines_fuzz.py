"""Hostile REGISTER and INVITE headers never crash the registrar or the line matcher: every
request gets a verdict (a response status, an accepted line or a silent drop)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tgsip.config.lines import LineKind, SipLine
from tgsip.sip.lines import LineTable
from tgsip.sip.message import Request, SipParseError, parse_message
from tgsip.sip.registrar import Registrar
from tgsip.sip.transaction import Peer

HEADER_TEXT = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=126), min_size=0, max_size=60
)
VALUES = st.one_of(
    HEADER_TEXT,
    st.sampled_from(
        [
            "*",
            "<sip:a@b>;expires=0",
            "<sip:a@b>;expires=-1",
            "<sip:a@b>;expires=99999999999",
            "<sip:a@b>;expires=x",
            "<sip:a@b>, *",
            '"x" <sips:[::1]:5061;transport=tls>;q=2',
            'Digest username="pbxlogin01", realm="tgsip", nonce="AAAA", uri="sip:x", '
            'response="00", qop=auth, nc=00000001, cnonce="c"',
            'Digest username="pbxlogin01", uri="sip:gw:99999"',
            "Basic Zm9vOmJhcg==",
            "4294967296",
            "",
        ]
    ),
)


def build(method: str, ruri: str, headers: dict[str, str]) -> Request | None:
    lines = [
        f"{method} {ruri} SIP/2.0",
        "Via: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bKfuzz",
        "From: <sip:pbxlogin01@gw>;tag=f",
        "Call-ID: fuzz",
        f"CSeq: 1 {method}",
        "Max-Forwards: 70",
    ]
    lines += [f"{n}: {v}" for n, v in headers.items()]
    if "To" not in headers:
        lines.append("To: <sip:pbxlogin01@gw>")
    data = ("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode()
    try:
        msg = parse_message(data)
    except (SipParseError, ValueError):
        return None
    return msg if isinstance(msg, Request) else None


def table() -> LineTable:
    t = LineTable(Registrar(b"f" * 32, "tgsip"))
    t.set_lines(
        [
            SipLine(
                id=1,
                session_id=1,
                kind=LineKind.PBX_TO_GATEWAY,
                login="pbxlogin01",
                password="p" * 24,
            ),
            SipLine(
                id=2,
                session_id=1,
                kind=LineKind.IP_IP,
                address="192.0.2.9",
                field_value="X-Trunk: 1",
            ),
            SipLine(id=3, session_id=1, kind=LineKind.IP_IP, address="192.0.2.9"),
        ]
    )
    t.set_addresses(2, ["192.0.2.9"])
    t.set_addresses(3, ["192.0.2.9"])
    return t


TABLE = table()
SRC = Peer("UDP", "192.0.2.9", 5060)
NAMES = st.sampled_from(["Contact", "Expires", "Authorization", "To", "X-Trunk", "m"])


@settings(max_examples=300, deadline=None)
@given(headers=st.dictionaries(NAMES, VALUES, max_size=4), now=st.floats(0, 1e9))
def test_register_always_gets_a_verdict(headers: dict[str, str], now: float) -> None:
    req = build("REGISTER", "sip:gw", headers)
    if req is None:
        return
    res = TABLE.registrar.register(req, SRC, now)
    assert res.status in (200, 400, 401, 403, 423, 500)
    if res.status == 200:
        assert res.line_id == 1


@settings(max_examples=300, deadline=None)
@given(
    headers=st.dictionaries(NAMES, VALUES, max_size=4),
    ruri=st.sampled_from(["sip:100@gw", "sip:gw", "tel:+1555", "sips:%41@[::1]", "sip:g@x;a"]),
    ip=st.sampled_from(["192.0.2.9", "203.0.113.1", "::1", "::ffff:192.0.2.9"]),
    method=st.sampled_from(["INVITE", "OPTIONS", "MESSAGE"]),
)
def test_match_always_gets_a_verdict(
    headers: dict[str, str], ruri: str, ip: str, method: str
) -> None:
    req = build(method, ruri, headers)
    if req is None:
        return
    m = TABLE.match(req, Peer("UDP", ip, 5060), 0.0)
    assert m.accepted or m.dropped or m.status in (400, 401, 403, 404)
    if ip in ("192.0.2.9", "::ffff:192.0.2.9"):
        assert not m.dropped  # a configured trunk is never silently dropped
        assert m.line_id in (None, 2, 3)
