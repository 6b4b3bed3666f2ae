"""Tests for tgsip.sip.headers: Via, name-addr, CSeq, media types, list splitting, auth."""

from __future__ import annotations

import pytest

from tgsip.sip.headers import (
    CSeq,
    HeaderError,
    format_auth,
    parse_auth,
    parse_contacts,
    parse_cseq,
    parse_delta_seconds,
    parse_max_forwards,
    parse_media_type,
    parse_name_addr,
    parse_via,
    split_list,
)


def test_via_fields() -> None:
    (v,) = parse_via("SIP/2.0/udp 192.0.2.1:5060;branch=z9hG4bK776;rport;received=192.0.2.9")
    assert (v.transport, v.host, v.port, v.branch) == ("UDP", "192.0.2.1", 5060, "z9hG4bK776")
    assert v.has_rport
    assert v.rport is None
    assert v.received == "192.0.2.9"
    assert v.is_rfc3261_branch
    assert str(v) == "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776;rport;received=192.0.2.9"
    (w,) = parse_via("SIP/2.0/TCP [2001:db8::1];rport=4000;maddr=224.2.0.1;ttl=16;branch=x")
    assert (w.rport, w.maddr, w.ttl, w.host) == (4000, "224.2.0.1", 16, "[2001:db8::1]")


def test_via_lws_and_list() -> None:
    vias = parse_via("SIP  /  2.0 / TCP  host.example.com : 5070 ; branch=a, SIP/2.0/SCTP h2")
    assert [(v.transport, v.host, v.port) for v in vias] == [
        ("TCP", "host.example.com", 5070),
        ("SCTP", "h2", None),
    ]


@pytest.mark.parametrize(
    "value",
    [
        "SIP/2.0/UDP 192.0.2.15;;,;,,",
        "SIP/2.0/UDP",
        "SIP/2.0 host",
        "SIP/2.0/UDP host;ttl=300",
        "SIP/2.0/UDP host;rport=abc",
        "SIP/2.0/UDP host:70000",
        "SIP/2.0/UDP host;branch",
    ],
)
def test_via_malformed(value: str) -> None:
    with pytest.raises(HeaderError):
        parse_via(value)


def test_name_addr_forms() -> None:
    na = parse_name_addr('"Mr. \\"J\\" User" <sip:j@example.com;transport=tcp>;tag=abc;x')
    assert na.display_name == 'Mr. "J" User'
    assert na.uri.param("transport") == "tcp"
    assert na.tag == "abc"
    assert na.param("x") == ""
    plain = parse_name_addr("sip:+12125551212@phone2net.com;tag=887s")
    assert plain.display_name is None
    assert plain.tag == "887s"
    assert plain.uri.params == ()
    tok = parse_name_addr("Bob  Smith<sip:bob@b.example>")
    assert tok.display_name == "Bob Smith"
    assert str(parse_name_addr(str(na))) == str(na)
    assert parse_name_addr(str(na)) == na


@pytest.mark.parametrize(
    "value",
    [
        '"Mr. J. User <sip:j.user@example.com>',  # quotbal
        '"Watson, Thomas" < sip:t.watson@example.org >',  # badaspec
        "Bell, Alexander <sip:a.g.bell@example.com>;tag=43",  # baddn
        "sip:user@example.com?Route=%3Csip:sip.example.com%3E",  # regbadct
        "<sip:a@b>;tag",
        "<sip:a@b> junk",
        "<sip:a@b",
        "",
    ],
)
def test_name_addr_malformed(value: str) -> None:
    with pytest.raises(HeaderError):
        parse_name_addr(value)


def test_contacts() -> None:
    assert parse_contacts(" * ") is None
    cs = parse_contacts('"A, B" <sip:a@x>;expires=60;q=0.7, <sip:b@y>;q=1, sip:c@z;expires=0')
    assert cs is not None
    assert [(str(c.uri), c.expires, c.q) for c in cs] == [
        ("sip:a@x", 60, 0.7),
        ("sip:b@y", None, 1.0),
        ("sip:c@z", 0, None),
    ]
    with pytest.raises(HeaderError):
        parse_contacts("<sip:user@host129.example.com>;expires=280297596632815")
    with pytest.raises(HeaderError):
        parse_contacts("<sip:a@x>;q=1.5")


def test_split_list() -> None:
    assert split_list('a, "b,c" <sip:x,y>, d') == ["a", '"b,c" <sip:x,y>', "d"]
    with pytest.raises(HeaderError):
        split_list("a,,b")
    with pytest.raises(HeaderError):
        split_list('a, "b')


def test_scalars() -> None:
    assert parse_cseq("4711   INVITE") == CSeq(4711, "INVITE")
    assert str(CSeq(1, "BYE")) == "1 BYE"
    for bad in ("36893488147419103232 REGISTER", "2147483648 INVITE", "x INVITE", "1"):
        with pytest.raises(HeaderError):
            parse_cseq(bad)
    assert parse_max_forwards("70") == 70
    with pytest.raises(HeaderError):
        parse_max_forwards("300")
    assert parse_delta_seconds("4294967295") == 2**32 - 1
    with pytest.raises(HeaderError):
        parse_delta_seconds("4294967296")


def test_media_type() -> None:
    mt = parse_media_type('Multipart/Mixed ; boundary="unique-boundary-1"')
    assert mt.mime == "multipart/mixed"
    assert mt.param("boundary") == "unique-boundary-1"
    with pytest.raises(HeaderError):
        parse_media_type("application")


def test_auth_parse_and_format() -> None:
    value = (
        'Digest realm="atlanta.com", qop="auth,auth-int", nonce="ab\\"c",'
        ' algorithm=SHA-256, stale=FALSE, opaque=""'
    )
    h = parse_auth(value)
    assert h.scheme == "Digest"
    assert h.get("REALM") == "atlanta.com"
    assert h.get("nonce") == 'ab"c'
    assert h.get("algorithm") == "SHA-256"
    assert h.get("opaque") == ""
    out = format_auth("Digest", [("realm", "r"), ("qop", "auth"), ("nc", "00000001")])
    assert out == 'Digest realm="r", qop=auth, nc=00000001'
    assert parse_auth(out).params == {"realm": "r", "qop": "auth", "nc": "00000001"}
    assert 'qop="auth"' in format_auth("Digest", [("qop", "auth")], challenge=True)
    for bad in ("Digest realm", 'Digest realm="x" nonce="y"', "Dig=est a=b", 'Digest a="x'):
        with pytest.raises(HeaderError):
            parse_auth(bad)
