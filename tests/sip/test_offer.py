"""Offer/answer from a line's codecs (tgsip.sip.offer), with hypothesis on random offers."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tgsip.config.lines import Codec, DtmfMethod, new_ip_ip
from tgsip.sip.call import needs_reopen
from tgsip.sip.offer import (
    MediaPolicy,
    OfferAnswerError,
    build_answer,
    line_config,
    make_offer,
    negotiate_offer,
    read_answer,
    send_method,
)
from tgsip.sip.sdp import parse_sdp

ALL = MediaPolicy.of(("opus", "alaw", "mulaw"), ("rfc2833", "info"))


def offer_text(
    fmts: str, *rtpmaps: str, direction: str = "sendrecv", host: str = "192.0.2.1"
) -> bytes:
    lines = ["v=0", f"o=- 1 1 IN IP4 {host}", "s=-", f"c=IN IP4 {host}", "t=0 0"]
    lines.append(f"m=audio 4000 RTP/AVP {fmts}")
    lines += [f"a=rtpmap:{r}" for r in rtpmaps]
    lines += ["a=ptime:20", f"a={direction}"]
    return ("\r\n".join(lines) + "\r\n").encode()


def test_offer_lists_codecs_in_line_order_with_telephone_events() -> None:
    sd = make_offer(ALL, "127.0.0.1", 20000, session_id=7)
    (m,) = sd.media
    assert m.fmts == ["111", "8", "0", "101", "110"]
    assert ("rtpmap", "111 opus/48000/2") in m.attributes
    assert ("rtpmap", "101 telephone-event/8000") in m.attributes
    assert ("rtpmap", "110 telephone-event/48000") in m.attributes
    assert m.attr("ptime") == "20"
    assert m.direction == "sendrecv"
    assert sd.connection == "IN IP4 127.0.0.1"
    # no rfc2833 among the methods: no telephone-event; G.711 only: no 48 kHz event
    plain = make_offer(MediaPolicy.of(("alaw",), ("info",)), "::1", 20002, session_id=1)
    assert plain.media[0].fmts == ["8"]
    assert plain.connection == "IN IP6 ::1"
    g711 = make_offer(MediaPolicy.of(("mulaw", "alaw"), ("rfc2833",)), "127.0.0.1", 1, session_id=1)
    assert g711.media[0].fmts == ["0", "8", "101"]
    held = make_offer(ALL, "127.0.0.1", 20000, session_id=7, direction="inactive")
    assert held.media[0].direction == "inactive"
    with pytest.raises(ValueError, match="concrete"):
        make_offer(ALL, "0.0.0.0", 20000, session_id=1)


def test_answer_uses_our_priority_not_the_offers() -> None:
    offer = offer_text("0 8 101", "0 PCMU/8000", "8 PCMA/8000", "101 telephone-event/8000")
    neg = negotiate_offer(MediaPolicy.of(("alaw", "mulaw"), ("rfc2833",)), offer)
    assert (neg.codec, neg.payload_type, neg.telephone_event_pt) == ("PCMA", 8, 101)
    answer, neg2 = build_answer(
        MediaPolicy.of(("alaw", "mulaw"), ("rfc2833",)), offer, "127.0.0.1", 30000, session_id=3
    )
    assert neg2 == neg
    assert answer.media[0].fmts == ["8", "101"]
    assert answer.media[0].port == 30000
    assert (neg.remote_host, neg.remote_port) == ("192.0.2.1", 4000)
    cfg = line_config(MediaPolicy.of(("alaw",), ("rfc2833",)), neg)
    assert (cfg.codec, cfg.payload_type, cfg.telephone_event_pt, cfg.dtmf_method) == (
        "PCMA",
        8,
        101,
        "rfc4733",
    )


def test_answer_without_rfc2833_drops_telephone_event_and_sends_info() -> None:
    offer = offer_text("8 101", "8 PCMA/8000", "101 telephone-event/8000")
    pol = MediaPolicy.of(("alaw",), ("info", "inband"))
    answer, neg = build_answer(pol, offer, "127.0.0.1", 30000, session_id=3)
    assert answer.media[0].fmts == ["8"]
    assert not any(v and "telephone-event" in v for _, v in answer.media[0].attributes)
    assert neg.telephone_event_pt is None
    assert send_method(pol, neg) == "info"
    cfg = line_config(pol, neg)
    assert cfg.dtmf_method == "none"
    assert cfg.detect_inband_dtmf
    # rfc2833 wanted but the peer has no telephone-event: fall back to in-band
    pol2 = MediaPolicy.of(("alaw",), ("rfc2833",))
    neg2 = negotiate_offer(pol2, offer_text("8", "8 PCMA/8000"))
    assert send_method(pol2, neg2) == "inband"
    assert line_config(pol2, neg2).dtmf_method == "inband"


def test_opus_with_48k_events_and_hold_directions() -> None:
    offer = offer_text(
        "96 0 97 101",
        "96 opus/48000/2",
        "0 PCMU/8000",
        "97 telephone-event/48000",
        "101 telephone-event/8000",
        direction="sendonly",
    )
    neg = negotiate_offer(ALL, offer)
    assert (neg.codec, neg.payload_type, neg.telephone_event_pt) == ("opus", 96, 97)
    assert neg.direction == "recvonly"  # the peer holds us
    cfg = line_config(ALL, neg)
    assert (cfg.codec, cfg.payload_type) == ("opus", 96)
    inactive = negotiate_offer(ALL, offer_text("8", "8 PCMA/8000", direction="inactive"))
    assert inactive.direction == "inactive"
    old_style = negotiate_offer(ALL, offer_text("8", "8 PCMA/8000", host="0.0.0.0"))
    assert old_style.direction == "recvonly"  # c=0.0.0.0 hold (RFC 3264 §8.4)


def test_no_common_codec_and_bad_offers() -> None:
    with pytest.raises(OfferAnswerError) as e:
        negotiate_offer(MediaPolicy.of(("opus",), ()), offer_text("8", "8 PCMA/8000"))
    assert e.value.status == 488
    with pytest.raises(OfferAnswerError) as e:
        negotiate_offer(ALL, b"v=0\r\nnonsense\r\n")
    assert e.value.status == 400
    with pytest.raises(OfferAnswerError) as e:
        negotiate_offer(ALL, offer_text("8", "8 PCMA"))
    assert e.value.status == 400
    video_only = (
        b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n"
        b"m=video 5000 RTP/AVP 96\r\n"
    )
    with pytest.raises(OfferAnswerError) as e:
        negotiate_offer(ALL, video_only)
    assert e.value.status == 488
    with pytest.raises(ValueError, match="codec"):
        MediaPolicy.of(("g729",), ())
    with pytest.raises(ValueError, match="DTMF"):
        MediaPolicy.of(("alaw",), ("smoke",))


def test_read_answer_and_first_offer_line() -> None:
    pol = MediaPolicy.of(("alaw", "mulaw"), ("rfc2833",))
    offer = make_offer(pol, "127.0.0.1", 20000, session_id=1)
    first = line_config(pol, first_offer=True)
    assert (first.codec, first.payload_type, first.telephone_event_pt) == ("PCMA", 8, 101)
    answer = offer_text("0 101", "0 PCMU/8000", "101 telephone-event/8000")
    neg = read_answer(pol, offer, answer)
    assert (neg.codec, neg.payload_type) == ("PCMU", 0)
    assert line_config(pol, neg) != first  # the line must be reopened for PCMU
    with pytest.raises(OfferAnswerError):
        read_answer(pol, offer, offer_text("18", "18 G729/8000"))


CODEC_POOL = [
    "PCMA/8000",
    "PCMU/8000",
    "opus/48000/2",
    "G729/8000",
    "telephone-event/8000",
    "telephone-event/48000",
    "G722/8000",
    "speex/16000",
]


@st.composite
def offers(draw: st.DrawFn) -> bytes:
    n = draw(st.integers(0, 6))
    pts = draw(st.lists(st.integers(0, 127), min_size=n, max_size=n, unique=True))
    maps = [f"{pt} {draw(st.sampled_from(CODEC_POOL))}" for pt in pts if draw(st.booleans())]
    direction = draw(st.sampled_from(["sendrecv", "sendonly", "recvonly", "inactive"]))
    text = offer_text(" ".join(map(str, pts)) or "8", *maps, direction=direction)
    if draw(st.booleans()):  # damage a random byte
        i = draw(st.integers(0, len(text) - 1))
        text = text[:i] + bytes([draw(st.integers(0, 255))]) + text[i + 1 :]
    return text


POLICIES = st.builds(
    MediaPolicy.of,
    st.lists(st.sampled_from(["alaw", "mulaw", "opus"]), min_size=1, max_size=3, unique=True),
    st.lists(st.sampled_from(["rfc2833", "info", "inband"]), max_size=3, unique=True),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(POLICIES, offers())
def test_random_offers_never_crash(policy: MediaPolicy, offer: bytes) -> None:
    try:
        answer, neg = build_answer(policy, offer, "127.0.0.1", 20000, session_id=1)
    except OfferAnswerError as exc:
        status = exc.status
        assert status in (400, 488)
        if status == 488 and b"\r\nm=audio 4000 RTP/AVP" in offer:
            # 488 only when no codec of ours is in the offer
            try:
                sd = parse_sdp(offer)
                rtpmap = sd.media[0].rtpmap()
            except ValueError:
                return
            ours = {"PCMA": "alaw", "PCMU": "mulaw", "opus": "opus"}
            offered = {
                ours.get(enc)
                for pt, (enc, rate, _) in rtpmap.items()
                if str(pt) in sd.media[0].fmts and rate in (8000, 48000)
            }
            assert not offered & set(policy.codecs) or sd.media[0].port == 0
        return
    assert neg.codec in ("PCMA", "PCMU", "opus")
    assert {"PCMA": "alaw", "PCMU": "mulaw", "opus": "opus"}[neg.codec] in policy.codecs
    assert answer.media[0].fmts[0] == str(neg.payload_type)
    cfg = line_config(policy, neg)
    assert cfg.payload_type == neg.payload_type
    if neg.telephone_event_pt is not None:
        assert policy.rfc2833
    # the answer is itself valid SDP that we can read as an answer to the offer
    reparsed = parse_sdp(answer.to_bytes())
    assert reparsed.media[0].port == 20000


def test_policy_from_a_configured_line() -> None:
    line = new_ip_ip(1)
    pol = MediaPolicy.from_line(line)
    assert pol.sdp_codecs == ("PCMA", "PCMU")  # the line's default Audio Codecs
    assert pol.rfc2833
    opus_info = msgspec.structs.replace(
        line, codecs=(Codec.OPUS, Codec.ALAW), dtmf_methods=(DtmfMethod.INFO,)
    )
    pol2 = MediaPolicy.from_line(opus_info)
    assert pol2.sdp_codecs == ("opus", "PCMA")
    assert make_offer(pol2, "127.0.0.1", 1, session_id=1).media[0].fmts == ["111", "8"]


def test_needs_reopen() -> None:
    pol = MediaPolicy.of(("alaw", "mulaw"), ("rfc2833", "info"))
    first = line_config(pol, first_offer=True)
    offer = make_offer(pol, "127.0.0.1", 20000, session_id=1)
    no_te = read_answer(pol, offer, offer_text("8", "8 PCMA/8000"))
    # an answer without telephone-event keeps the line (digits go by INFO)
    assert not needs_reopen(first, line_config(pol, no_te))
    assert send_method(pol, no_te) == "info"
    # ... unless digits must now be sent in-band by the line itself
    inband = MediaPolicy.of(("alaw",), ("rfc2833", "inband"))
    assert needs_reopen(line_config(inband, first_offer=True), line_config(inband, no_te))
    pcmu = read_answer(pol, offer, offer_text("0 101", "0 PCMU/8000", "101 telephone-event/8000"))
    assert needs_reopen(first, line_config(pol, pcmu))
    other_te = read_answer(pol, offer, offer_text("8 96", "8 PCMA/8000", "96 telephone-event/8000"))
    assert needs_reopen(first, line_config(pol, other_te))
