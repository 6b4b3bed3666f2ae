"""SIP INFO DTMF bodies: parse (tolerant, clear errors), build, fuzz."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tgsip.sip.dtmf_info import (
    DIGITS,
    DTMF,
    DTMF_RELAY,
    DtmfInfo,
    DtmfInfoError,
    UnsupportedInfoType,
    build_info,
    parse_info,
)


@pytest.mark.parametrize(
    ("ctype", "body", "expect"),
    [
        (DTMF_RELAY, b"Signal=5\r\nDuration=160\r\n", DtmfInfo("5", 160)),
        (DTMF_RELAY, b"Duration=300\nSignal=#\n", DtmfInfo("#", 300)),
        ("Application/DTMF-Relay; charset=x", b"signal = *\r\n", DtmfInfo("*", 160)),
        (DTMF_RELAY, b"Signal: 11\r\nDuration: 90\r\nX-Extra=1\r\n", DtmfInfo("#", 90)),
        (DTMF_RELAY, b"Signal=a\r\n", DtmfInfo("A", 160)),
        (DTMF, b"7", DtmfInfo("7", 160)),
        (DTMF, b" 10\r\n", DtmfInfo("*", 160)),
        (DTMF, b"d", DtmfInfo("D", 160)),
    ],
)
def test_parse(ctype: str, body: bytes, expect: DtmfInfo) -> None:
    assert parse_info(ctype, body) == expect


@pytest.mark.parametrize(
    ("ctype", "body", "message"),
    [
        (DTMF_RELAY, b"Duration=100\r\n", "no Signal"),
        (DTMF_RELAY, b"Signal=Z\r\n", "not a DTMF digit"),
        (DTMF_RELAY, b"Signal=1\r\nSignal=2\r\n", "twice"),
        (DTMF_RELAY, b"Signal=1\r\nDuration=-5\r\n", "bad Duration"),
        (DTMF_RELAY, b"garbage\r\n", "bad dtmf-relay line"),
        (DTMF_RELAY, b"Signal=\xff\r\n", "not ASCII"),
        (DTMF, b"", "empty"),
        (DTMF, b"16", "not a DTMF digit"),
        (DTMF_RELAY, b"Signal=1\r\n" * 200, "too long"),
    ],
)
def test_errors_are_clear(ctype: str, body: bytes, message: str) -> None:
    with pytest.raises(DtmfInfoError, match=message):
        parse_info(ctype, body)


def test_other_types_are_unsupported() -> None:
    with pytest.raises(UnsupportedInfoType, match="text/plain"):
        parse_info("text/plain", b"1")
    with pytest.raises(UnsupportedInfoType, match="none"):
        parse_info(None, b"1")


def test_build_round_trip() -> None:
    for d in DIGITS:
        for ctype in (DTMF_RELAY, DTMF):
            t, body = build_info(d, 200, content_type=ctype)
            got = parse_info(t, body)
            assert got.digit == d
            if ctype == DTMF_RELAY:
                assert got.duration_ms == 200
    assert build_info("5") == (DTMF_RELAY, b"Signal=5\r\nDuration=160\r\n")
    for bad in ("", "55", "x"):
        with pytest.raises(ValueError, match="digit"):
            build_info(bad)
    with pytest.raises(ValueError, match="duration"):
        build_info("1", 0)


@settings(max_examples=500, deadline=None)
@given(st.sampled_from([DTMF_RELAY, DTMF]), st.binary(max_size=300))
def test_fuzz_never_crashes(ctype: str, body: bytes) -> None:
    try:
        info = parse_info(ctype, body)
    except DtmfInfoError as exc:
        message = str(exc)
        assert message
        return
    assert info.digit in DIGITS
    assert 0 < info.duration_ms <= 10_000


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["Signal", "signal", "Duration", "X", "SIGNAL"]),
            st.sampled_from(["=", ":", " = "]),
            st.text(alphabet="0123456789*#ABCDabcdZ -", max_size=6),
        ),
        max_size=5,
    )
)
def test_fuzz_structured_relay(fields: list[tuple[str, str, str]]) -> None:
    body = "".join(f"{k}{s}{v}\r\n" for k, s, v in fields).encode()
    try:
        info = parse_info(DTMF_RELAY, body)
    except DtmfInfoError:
        return
    assert info.digit in DIGITS
