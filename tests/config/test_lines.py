"""The line model and the parsers behind every value an administrator types."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tgsip.config.lines import (
    Codec,
    DtmfMethod,
    LineKind,
    SipLine,
    Transport,
    ValidationError,
    ip_ip_conflicts,
    new_gateway_to_pbx,
    new_ip_ip,
    new_pbx_to_gateway,
    parse_address_port,
    parse_codecs,
    parse_dtmf_methods,
    parse_field_value,
    parse_host,
    parse_number,
    parse_priority,
    parse_trusted_ips,
    strip_backticks,
)

PARSERS = [
    parse_codecs,
    parse_dtmf_methods,
    parse_trusted_ips,
    parse_address_port,
    parse_host,
    parse_field_value,
    parse_priority,
    parse_number,
]


def test_codecs_in_priority_order_with_aliases_and_default() -> None:
    assert parse_codecs("opus, PCMA ,mulaw") == (Codec.OPUS, Codec.ALAW, Codec.MULAW)
    assert parse_codecs("`alaw,alaw,ulaw`") == (Codec.ALAW, Codec.MULAW)
    assert parse_codecs("  ") == (Codec.ALAW, Codec.MULAW)
    with pytest.raises(ValidationError, match="Unknown codec “g729”"):
        parse_codecs("alaw,g729")


def test_dtmf_methods() -> None:
    assert parse_dtmf_methods("info, RFC2833") == (DtmfMethod.INFO, DtmfMethod.RFC2833)
    assert parse_dtmf_methods("") == (DtmfMethod.RFC2833,)
    assert parse_dtmf_methods("rfc-4733 inband") == (DtmfMethod.RFC2833, DtmfMethod.INBAND)
    with pytest.raises(ValidationError, match="Unknown DTMF method"):
        parse_dtmf_methods("sms")


def test_trusted_ips_and_trust() -> None:
    nets = parse_trusted_ips("192.0.2.7, 10.0.0.0/8\n2001:db8::/32")
    assert nets == ("192.0.2.7/32", "10.0.0.0/8", "2001:db8::/32")
    line = SipLine(session_id=1, kind=LineKind.PBX_TO_GATEWAY, trusted_ips=nets)
    assert line.trusts("10.1.2.3")
    assert line.trusts("192.0.2.7")
    assert not line.trusts("192.0.2.8")
    assert line.trusts("2001:db8::5")
    assert line.trusts("::ffff:10.9.9.9")  # IPv4-mapped
    assert not line.trusts("not-an-ip")
    assert SipLine(session_id=1, kind=LineKind.PBX_TO_GATEWAY).trusts("203.0.113.1")
    with pytest.raises(ValidationError, match="network address"):
        parse_trusted_ips("10.0.0.1/8")
    with pytest.raises(ValidationError, match="not an IP address"):
        parse_trusted_ips("10.0.0.300")


def test_addresses() -> None:
    assert parse_address_port("PBX.example.com") == "pbx.example.com:5060"
    assert parse_address_port("sip:192.0.2.1:5080") == "192.0.2.1:5080"
    assert parse_address_port("[2001:db8::1]:5062") == "[2001:db8::1]:5062"
    assert parse_address_port("2001:db8::1") == "[2001:db8::1]:5060"
    assert parse_host("pbx.example.com") == "pbx.example.com"
    assert parse_host("pbx.example.com:5070") == "pbx.example.com:5070"
    bad_addresses = ("", "pbx..com", "1.2.3.4:0", "1.2.3.4:99999", "[::1", "[zz::1]:5", "a b")
    for bad in (*bad_addresses, "999.1.1"):
        with pytest.raises(ValidationError):
            parse_address_port(bad)


def test_field_value() -> None:
    assert parse_field_value("X-Trunk:office2") == "X-Trunk: office2"
    assert parse_field_value("") == ""
    line = SipLine(session_id=1, kind=LineKind.IP_IP, field_value="X-Trunk: office2")
    assert line.field_header() == ("X-Trunk", "office2")
    for bad in ("X-Trunk", "Via: x", "Bad Name: 1", "X-A: \x01"):
        with pytest.raises(ValidationError):
            parse_field_value(bad)


def test_priority_number_backticks() -> None:
    assert parse_priority("`7`") == 7
    with pytest.raises(ValidationError):
        parse_priority("100")
    with pytest.raises(ValidationError):
        parse_priority("-1")
    assert parse_number("+7 926".replace(" ", "")) == "+7926"
    with pytest.raises(ValidationError):
        parse_number("12 34")
    assert strip_backticks(" ```^8=7``` ") == "^8=7"
    assert strip_backticks("`a`b`") == "a`b"


def test_new_lines_and_missing_params() -> None:
    inbound = new_pbx_to_gateway(3)
    assert len(inbound.login) == 10
    assert inbound.login[0].isalpha()
    assert len(inbound.password) == 24
    assert inbound.missing_params() == []
    assert new_pbx_to_gateway(3).password != inbound.password
    out = new_gateway_to_pbx(3)
    assert out.dial_rules == (".*=",)
    assert out.missing_params() == ["Login", "Password", "Domain"]
    assert new_ip_ip(3).missing_params() == ["Address:port"]
    assert Transport.UDP.next() is Transport.TCP
    assert Transport.TLS.next() is Transport.UDP


def test_password_never_in_repr() -> None:
    line = new_pbx_to_gateway(1)
    assert line.password not in repr(line)
    assert line.password not in str(line)
    assert line.login in repr(line)


def test_line_roundtrips_through_json() -> None:
    line = msgspec.structs.replace(
        new_ip_ip(2), address="192.0.2.1:5060", codecs=(Codec.OPUS,), transport=Transport.TLS
    )
    assert msgspec.json.decode(msgspec.json.encode(line), type=SipLine) == line


def test_ip_ip_conflicts() -> None:
    a = SipLine(id=1, session_id=1, kind=LineKind.IP_IP, address="192.0.2.1:5060")
    b = SipLine(id=2, session_id=1, kind=LineKind.IP_IP, address="192.0.2.1:5070")
    assert ip_ip_conflicts([a, b]) == [(1, 2)]
    a2 = msgspec.structs.replace(a, field_value="X-T: 1")
    b2 = msgspec.structs.replace(b, field_value="X-T: 2")
    assert ip_ip_conflicts([a2, b2]) == []
    c = SipLine(id=3, session_id=1, kind=LineKind.IP_IP, address="192.0.2.9:5060")
    assert ip_ip_conflicts([a, c]) == []


@given(st.text(max_size=200))
def test_parsers_never_crash(text: str) -> None:
    for parse in PARSERS:
        try:
            parse(text)
        except ValidationError as e:
            message = str(e)
            assert message, parse.__name__
