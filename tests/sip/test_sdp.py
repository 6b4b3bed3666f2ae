"""Tests for tgsip.sip.sdp: parsing, serialization and RFC 3264 offer/answer."""

from __future__ import annotations

from pathlib import Path

import pytest

from tgsip.sip.message import parse_message
from tgsip.sip.sdp import (
    NegotiatedMedia,
    OfferAnswerError,
    SdpError,
    answer_offer,
    build_offer,
    negotiated_from_answer,
    parse_sdp,
)

OFFER = (
    b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
    b"m=audio 40000 RTP/AVP 111 0 8 101\r\na=rtpmap:111 opus/48000/2\r\n"
    b"a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-16\r\na=ptime:30\r\na=sendrecv\r\n"
    b"m=video 40002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
)


def test_parse_and_round_trip() -> None:
    sd = parse_sdp(OFFER)
    assert sd.origin == "- 1 1 IN IP4 192.0.2.1"
    audio = sd.media[0]
    assert (audio.kind, audio.port, audio.fmts) == ("audio", 40000, ["111", "0", "8", "101"])
    assert audio.rtpmap()[111] == ("opus", 48000, 2)
    assert audio.attr("ptime") == "30"
    assert sd.direction(audio) == "sendrecv"
    assert sd.to_bytes() == OFFER
    assert parse_sdp(sd.to_bytes()) == sd


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"v=1\r\n",
        b"v=0\r\ns=-\r\n",
        b"v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nm=audio x RTP/AVP 0\r\n",
        b"v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nc=IN IP4 2001:db8::1\r\n",
        b"v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nbad line\r\n",
        b"\xff\xfe",
    ],
)
def test_malformed(body: bytes) -> None:
    with pytest.raises(SdpError):
        parse_sdp(body)


def test_answer_uses_our_priority_and_keeps_te_pt() -> None:
    answer, neg = answer_offer(
        parse_sdp(OFFER), "203.0.113.5", 30000, ["alaw", "mulaw"], session_id=7
    )
    assert neg == NegotiatedMedia("192.0.2.1", 40000, "PCMA", 8, 8000, 1, 101, 30, "sendrecv")
    a = answer.media[0]
    assert a.fmts == ["8", "101"]
    assert answer.media[1].port == 0  # video rejected, m-line kept (RFC 3264 §6)
    assert answer.connection == "IN IP4 203.0.113.5"
    again = parse_sdp(answer.to_bytes())
    assert negotiated_from_answer(parse_sdp(OFFER), again).codec == "PCMA"


def test_answer_opus_first() -> None:
    _, neg = answer_offer(parse_sdp(OFFER), "::1", 30000, ["opus", "alaw"], session_id=1)
    assert (neg.codec, neg.payload_type, neg.clock_rate, neg.channels) == ("opus", 111, 48000, 2)
    assert neg.telephone_event_pt == 101  # no telephone-event/48000 offered: the 8000 one


def test_no_common_codec_is_488() -> None:
    with pytest.raises(OfferAnswerError) as err:
        answer_offer(parse_sdp(OFFER), "192.0.2.9", 1, ["g722"], session_id=1)
    assert err.value.status == 488


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (b"a=sendrecv", "sendrecv"),
        (b"a=sendonly", "recvonly"),
        (b"a=recvonly", "sendonly"),
        (b"a=inactive", "inactive"),
    ],
)
def test_hold_directions(change: bytes, expected: str) -> None:
    offer = parse_sdp(OFFER.replace(b"a=sendrecv", change))
    answer, neg = answer_offer(offer, "192.0.2.9", 1000, ["PCMU"], session_id=1)
    assert neg.direction == expected
    assert answer.direction(answer.media[0]) == expected


def test_hold_rfc2543_zero_address() -> None:
    offer = parse_sdp(OFFER.replace(b"c=IN IP4 192.0.2.1", b"c=IN IP4 0.0.0.0"))
    _, neg = answer_offer(offer, "192.0.2.9", 1000, ["PCMU"], session_id=1)
    assert neg.direction == "recvonly"
    assert neg.remote_host == "0.0.0.0"


def test_port_zero_stream_skipped() -> None:
    offer = parse_sdp(OFFER.replace(b"m=audio 40000", b"m=audio 0"))
    with pytest.raises(OfferAnswerError):
        answer_offer(offer, "192.0.2.9", 1000, ["PCMU"], session_id=1)


def test_offer_and_peer_answer() -> None:
    offer = build_offer("192.0.2.1", 4000, ["opus", "alaw", "mulaw"], session_id=5, ptime_ms=20)
    audio = offer.media[0]
    assert audio.fmts == ["111", "8", "0", "101", "110"]
    assert audio.rtpmap()[110] == ("telephone-event", 48000, 1)
    assert audio.direction == "sendrecv"
    assert parse_sdp(offer.to_bytes()) == offer
    # The peer answers with its own preference (PCMU) and our telephone-event PT.
    answer, neg_peer = answer_offer(
        parse_sdp(offer.to_bytes()), "198.51.100.7", 5000, ["mulaw"], session_id=9
    )
    neg = negotiated_from_answer(offer, answer)
    assert neg == NegotiatedMedia("198.51.100.7", 5000, "PCMU", 0, 8000, 1, 101, 20, "sendrecv")
    assert neg_peer.remote_port == 4000
    held = build_offer("192.0.2.1", 4000, ["alaw"], session_id=5, direction="sendonly")
    answer, _ = answer_offer(held, "198.51.100.7", 5000, ["alaw"], session_id=9)
    assert negotiated_from_answer(held, answer).direction == "sendonly"


def test_rfc5118_ipv6_sdp(shared: Path) -> None:
    base = shared / "corpus/sip/rfc5118"
    data = (base / "ipv6-in-sdp").read_bytes()
    body = data.split(b"\n\n", 1)[1]
    sd = parse_sdp(body)
    assert sd.connection_address(sd.media[0]) == "2001:db8::20"
    with pytest.raises(OfferAnswerError):  # G726-32 only: nothing we speak
        answer_offer(sd, "2001:db8::1", 4000, ["alaw", "mulaw"], session_id=1)
    mult = parse_sdp((base / "mult-ip-in-sdp").read_bytes().split(b"\n\n", 1)[1])
    addrs = [mult.connection_address(m) for m in mult.media]
    assert any(":" in a for a in addrs)
    assert any("." in a for a in addrs)
    assert parse_sdp(mult.to_bytes()) == mult


def test_sdp_from_parsed_invite(shared: Path) -> None:
    msg = parse_message((shared / "corpus/sip/rfc4475/wsinv.dat").read_bytes())
    assert msg.content_type is not None
    assert msg.content_type.mime == "application/sdp"
    sd = parse_sdp(msg.body)
    assert sd.media[0].kind == "audio"
