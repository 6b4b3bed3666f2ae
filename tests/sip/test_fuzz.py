"""Property tests: URI and message round trips, stream framing, and robustness on junk input.

Every parser must raise only its own error type on arbitrary input, and finish quickly
(sizes are bounded; hypothesis' deadline catches super-linear behaviour).
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tgsip.sip.auth import DigestServer
from tgsip.sip.headers import (
    HeaderError,
    parse_auth,
    parse_contacts,
    parse_name_addr,
    parse_via,
    split_list,
)
from tgsip.sip.message import (
    Request,
    Response,
    SipParseError,
    find_message_end,
    make_response,
    new_request,
    parse_message,
)
from tgsip.sip.sdp import OfferAnswerError, SdpError, answer_offer, build_offer, parse_sdp
from tgsip.sip.uri import Uri, UriError, escape, parse_uri, unescape

FAST = settings(max_examples=100, deadline=timedelta(milliseconds=500))
_LABEL = st.from_regex(r"[a-z][a-z0-9\-]{0,10}[a-z0-9]", fullmatch=True)
_HOSTS = st.one_of(
    st.lists(_LABEL, min_size=1, max_size=4).map(".".join),
    st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t))),
    st.ip_addresses(v=6).map(lambda a: f"[{a}]"),
)
_TOKEN = st.from_regex(r"[A-Za-z0-9\-.!*_+`'~]{1,12}", fullmatch=True)
_PVAL = st.from_regex(r"[A-Za-z0-9\-_.!~*'()]{1,10}", fullmatch=True)
_USER = st.text(min_size=1, max_size=20).map(escape)
_PARAMS = st.lists(
    st.tuples(st.from_regex(r"[a-z][a-z0-9]{0,6}", fullmatch=True), st.none() | _PVAL),
    max_size=4,
    unique_by=lambda p: p[0],
).map(tuple)


@st.composite
def sip_uris(draw: st.DrawFn) -> Uri:
    return Uri(
        draw(st.sampled_from(["sip", "sips"])),
        draw(st.none() | _USER),
        None,
        draw(_HOSTS),
        draw(st.none() | st.integers(1, 65535)),
        draw(_PARAMS),
        draw(
            st.lists(
                st.tuples(_TOKEN.map(escape), st.text(max_size=8).map(lambda t: escape(t, ""))),
                max_size=2,
            ).map(tuple)
        ),
    )


@FAST
@given(sip_uris())
def test_uri_round_trip(uri: Uri) -> None:
    text = str(uri)
    again = parse_uri(text)
    assert str(again) == text
    assert again.equivalent(uri)
    assert again == uri


@FAST
@given(st.text(max_size=30))
def test_escape_round_trip(text: str) -> None:
    assert unescape(escape(text)) == text


@FAST
@given(
    sip_uris(),
    st.none() | st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=12),
    _TOKEN,
    st.integers(1, 2**31 - 1),
    st.sampled_from(["INVITE", "OPTIONS", "REGISTER", "BYE", "X-Custom.Method"]),
    st.binary(max_size=200),
)
def test_message_round_trip(
    uri: Uri, display: str | None, call_id: str, cseq: int, method: str, body: bytes
) -> None:
    from_ = f'"{display}" <sip:a@example.com>' if display is not None else "sip:a@example.com"
    if display is not None and ('"' in display or "\\" in display):
        from_ = "sip:a@example.com"
    req = new_request(
        method,
        uri.with_params(),
        from_,
        "<sip:b@example.com>",
        call_id,
        cseq,
        "192.0.2.1",
        body=body,
    )
    data = req.to_bytes()
    msg = parse_message(data)
    assert isinstance(msg, Request)
    assert msg.headers[:-1] == req.headers  # Content-Length appended on serialization
    assert msg.body == body
    assert msg.cseq.number == cseq
    assert msg.request_uri == parse_uri(req.uri)
    resp = make_response(msg, 180, "Ringing", to_tag="t1")
    back = parse_message(resp.to_bytes())
    assert isinstance(back, Response)
    assert back.to.tag == "t1"


@FAST
@given(st.lists(st.integers(1, 60), max_size=8), st.integers(0, 3))
def test_stream_framing_any_split(cuts: list[int], keepalives: int) -> None:
    req = new_request("OPTIONS", "sip:a@b", "sip:c@d", "sip:e@f", "x", 1, "h", body=b"hello")
    stream = b"\r\n\r\n" * keepalives + req.to_bytes() + req.to_bytes()
    buf = b""
    out: list[bytes] = []
    pos = 0
    for cut in [*cuts, len(stream)]:
        buf += stream[pos : pos + cut]
        pos += cut
        while (n := find_message_end(buf)) is not None:
            out.append(buf[:n])
            buf = buf[n:]
    buf += stream[pos:]
    while (n := find_message_end(buf)) is not None:
        out.append(buf[:n])
        buf = buf[n:]
    assert len(out) == 2
    assert all(parse_message(m).body == b"hello" for m in out)


JUNK = settings(
    max_examples=300,
    deadline=timedelta(milliseconds=500),
    suppress_health_check=[HealthCheck.too_slow],
)
_SIPISH = st.text(
    alphabet=st.sampled_from(list('sip:@;=<>",?&%[]/ \t.:0123456789abcSIPz*\r\n\\')), max_size=120
)


@JUNK
@given(st.one_of(st.text(max_size=80), _SIPISH))
def test_header_parsers_raise_only_their_errors(text: str) -> None:
    with contextlib.suppress(UriError):
        parse_uri(text)
    for parser in (parse_name_addr, parse_via, parse_contacts, split_list, parse_auth):
        with contextlib.suppress(HeaderError):
            parser(text)  # type: ignore[operator]


@JUNK
@given(st.binary(max_size=300))
def test_sdp_raises_only_sdp_error(data: bytes) -> None:
    with contextlib.suppress(SdpError):
        parse_sdp(b"v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\n" + data)


@JUNK
@given(_SIPISH)
def test_digest_verify_never_raises(text: str) -> None:
    server = DigestServer(b"s" * 16, "r")
    server.verify("Digest " + text, "INVITE", 0.0, lambda u, a: "0" * 32)


BASE = new_request(
    "INVITE",
    "sip:bob@[2001:db8::2]:5060;transport=tcp",
    '"Al" <sip:al@example.com>',
    "sip:bob@example.com",
    "cid",
    7,
    "example.org",
    contact="<sip:al@192.0.2.1>;expires=60;q=0.5",
    body=b"v=0\r\n",
).to_bytes()


@JUNK
@given(st.integers(0, len(BASE) - 1), st.integers(0, 8), _SIPISH.map(str.encode))
def test_mutated_message_raises_only_sip_parse_error(pos: int, cut: int, junk: bytes) -> None:
    data = BASE[:pos] + junk + BASE[pos + cut :]
    for strict in (True, False):
        try:
            msg = parse_message(data, strict=strict)
        except SipParseError:
            continue
        with contextlib.suppress(SipParseError):
            _ = (msg.via, msg.from_, msg.to, msg.cseq, msg.contacts, msg.routes, msg.content_type)
            if isinstance(msg, Request):
                _ = msg.request_uri


def test_large_inputs_stay_fast() -> None:
    """Pathological sizes parse (or fail) in bounded time: no quadratic blow-up."""
    long_params = "sip:a@b" + ";x=1" * 5000
    parse_uri(long_params)
    many = ", ".join(["<sip:a@b>"] * 2000)
    assert len(parse_contacts(many) or []) == 2000
    junk_line = b"INVITE sip:a@b SIP/2.0\r\n" + b"X" * 60000 + b"\r\n\r\n"
    with contextlib.suppress(SipParseError):
        parse_message(junk_line)
    quotes = '"' + "\\" * 20000
    with contextlib.suppress(HeaderError):
        parse_name_addr(quotes)


OFFER_BYTES = build_offer("192.0.2.1", 4000, ["opus", "alaw", "mulaw"], session_id=1).to_bytes()


@JUNK
@given(st.integers(0, len(OFFER_BYTES) - 1), st.integers(0, 6), _SIPISH.map(str.encode))
def test_offer_answer_on_mutated_sdp(pos: int, cut: int, junk: bytes) -> None:
    """A mangled offer is either answered or refused with OfferAnswerError/SdpError."""
    data = OFFER_BYTES[:pos] + junk + OFFER_BYTES[pos + cut :]
    try:
        offer = parse_sdp(data)
        answer, neg = answer_offer(offer, "192.0.2.9", 5000, ["alaw", "mulaw"], session_id=2)
    except (SdpError, OfferAnswerError):
        return
    assert neg.codec in ("PCMA", "PCMU")
    assert parse_sdp(answer.to_bytes()) == answer
