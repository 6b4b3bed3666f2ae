"""Tests for tgsip.sip.uri: parsing, serialization, escaping, RFC 3261 §19.1.4 comparison."""

from __future__ import annotations

import pytest

from tgsip.sip.uri import Uri, UriError, escape, parse_uri, unescape


@pytest.mark.parametrize(
    "text",
    [
        "sip:alice@example.com",
        "sips:alice:secret@example.com:5061;transport=tcp?subject=project%20x&priority=urgent",
        "sip:+1-212-555-1212:1234@gateway.com;user=phone",
        "sip:alice@192.0.2.4",
        "sip:[2001:db8::10]:5070;lr",
        "sip:user;par=u%40example.net@example.com",
        "sip:%61lice@atlanta.com;transport=TCP",
        "tel:+358-555-1234567;postd=pp22",
        "tel:7042;phone-context=example.com",
        "isbn:2983792873",
    ],
)
def test_round_trip(text: str) -> None:
    assert str(parse_uri(text)) == text


def test_components() -> None:
    u = parse_uri("sips:alice:pw@[2001:db8::1]:5061;transport=tcp;lr?Subject=hi")
    assert (u.scheme, u.user, u.password, u.host, u.port) == (
        "sips",
        "alice",
        "pw",
        "[2001:db8::1]",
        5061,
    )
    assert u.host_address == "2001:db8::1"
    assert u.param("TRANSPORT") == "tcp"
    assert u.param("lr") == ""
    assert u.param("maddr") is None
    assert u.headers == (("Subject", "hi"),)
    assert u.is_sip


@pytest.mark.parametrize(
    "text",
    [
        "sip:",
        "sip:user@",
        "sip:user@exa mple.com",
        "sip:user@example.com:99999",
        "sip:user@[2001:db8:::192.0.2.1]",
        "sip:2001:db8::10",
        "sip:us%zzer@example.com",
        "<sip:user@example.com>",
        "sip:user@example.com?noequals",
        "tel:+12 34",
        "sip:user@256.1.1.1",
        "nocolon",
    ],
)
def test_malformed(text: str) -> None:
    with pytest.raises(UriError):
        parse_uri(text)


# RFC 3261 §19.1.4 examples.
EQUIVALENT = [
    ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
    ("sip:carol@chicago.com;security=on", "sip:carol@chicago.com;newparam=5"),
    (
        "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
        "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
    ),
    (
        "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
        "sip:alice@atlanta.com?priority=urgent&subject=project%20x",
    ),
    ("sip:u@[2001:db8::0:1]", "sip:u@[2001:DB8::1]"),
]
DIFFERENT = [
    ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
    ("sip:bob@biloxi.com", "sips:bob@biloxi.com"),
    ("sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;newparam=6"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),
]


@pytest.mark.parametrize(("a", "b"), EQUIVALENT)
def test_equivalent(a: str, b: str) -> None:
    assert parse_uri(a).equivalent(parse_uri(b))
    assert parse_uri(b).equivalent(parse_uri(a))


@pytest.mark.parametrize(("a", "b"), DIFFERENT)
def test_not_equivalent(a: str, b: str) -> None:
    assert not parse_uri(a).equivalent(parse_uri(b))


def test_escape_unescape() -> None:
    assert escape("a b@c") == "a%20b%40c"
    assert unescape("a%20b%40c") == "a b@c"
    assert unescape("%00") == "\x00"
    assert unescape("100%") == "100%"
    assert unescape(escape("Zoë ☎")) == "Zoë ☎"


def test_with_params() -> None:
    u = parse_uri("sip:a@b;transport=udp")
    assert str(u.with_params(transport="tcp", lr=None)) == "sip:a@b;transport=tcp;lr"
    assert isinstance(u, Uri)
