"""Benchmark: parse an INVITE with SDP and read its key headers; serialize a 200 OK."""

from __future__ import annotations

from typing import Any

from tgsip.sip.message import Request, make_response, parse_message

SDP = (
    b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
    b"m=audio 40000 RTP/AVP 111 8 0 101\r\na=rtpmap:111 opus/48000/2\r\n"
    b"a=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n"
)
INVITE = (
    b"INVITE sip:bob@192.0.2.2:5060 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-524287-1---abcdef;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"Contact: <sip:alice@192.0.2.1:5060>\r\n"
    b"To: <sip:bob@192.0.2.2>\r\n"
    b'From: "Alice" <sip:alice@192.0.2.1>;tag=8a7c2d1f\r\n'
    b"Call-ID: 3c26700b5a1c-2a4f@192.0.2.1\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, REFER, NOTIFY\r\n"
    b"Content-Type: application/sdp\r\n"
    b"User-Agent: bench\r\n"
    b"Content-Length: " + str(len(SDP)).encode() + b"\r\n\r\n" + SDP
)


def _parse() -> tuple[str | None, ...]:
    """Strict parse (every header a UAS validates) + the transaction-matching keys."""
    msg = parse_message(INVITE)
    return (msg.top_via.branch, msg.from_.tag, str(msg.cseq), msg.call_id)


def _parse_lazy() -> tuple[str | None, ...]:
    """Structural parse; Via and From parsed on access (the proxy/transaction fast path)."""
    msg = parse_message(INVITE, strict=False)
    return (msg.top_via.branch, msg.from_.tag, str(msg.cseq), msg.call_id)


def _parse_raw() -> tuple[str | None, ...]:
    """Structural parse + raw header strings (what the first benchmark measured)."""
    msg = parse_message(INVITE, strict=False)
    return (msg.get("Via"), msg.get("From"), msg.get("CSeq"), msg.get("Call-ID"))


def test_parse_invite_raw(benchmark: Any) -> None:
    assert benchmark(_parse_raw)[3] == "3c26700b5a1c-2a4f@192.0.2.1"


def test_parse_invite(benchmark: Any) -> None:
    assert benchmark(_parse)[3] == "3c26700b5a1c-2a4f@192.0.2.1"


def test_parse_invite_lazy(benchmark: Any) -> None:
    assert benchmark(_parse_lazy)[1] == "8a7c2d1f"


def test_serialize_200(benchmark: Any) -> None:
    req = parse_message(INVITE)
    assert isinstance(req, Request)
    resp = make_response(req, 200, "OK", to_tag="t1")
    assert benchmark(resp.to_bytes).startswith(b"SIP/2.0 200 OK")
