"""Two of our user agents call each other over loopback with real media lines.

Audio (a tone pushed at one end, measured at the other), RFC 4733 and INFO DTMF, hold and
resume, a codec change by re-INVITE, early media, CANCEL, rejection and REFER/NOTIFY.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio

from tests.media.helpers import UdpPeer, level_at, tone
from tgsip.media import EngineConfig, MediaEngine
from tgsip.sip.call import (
    Answered,
    CallEvent,
    CallState,
    Dtmf,
    EarlyMedia,
    Ended,
    Held,
    Resumed,
    Ringing,
    SipCall,
    TransferProgress,
    TransferRequested,
)
from tgsip.sip.dialog import Dialog
from tgsip.sip.offer import MediaPolicy, make_offer
from tgsip.sip.sdp import parse_sdp
from tgsip.sip.transaction import Peer, Timers
from tgsip.sip.ua import UserAgent

FAST = Timers(t1=0.05, t2=0.4, t4=0.5)


@dataclass
class Pair:
    uac: UserAgent
    uas: UserAgent
    peer: Peer
    incoming: asyncio.Queue[SipCall]


@pytest_asyncio.fixture
async def pair() -> AsyncIterator[Pair]:
    e1 = MediaEngine(EngineConfig(workers=1, port_min=44000, port_max=44999))
    e2 = MediaEngine(EngineConfig(workers=1, port_min=45000, port_max=45999))
    uas = UserAgent("127.0.0.1", timers=FAST, media=e1, codecs=("alaw", "mulaw", "opus"))
    uac = UserAgent("127.0.0.1", timers=FAST, media=e2, codecs=("alaw", "mulaw", "opus"))
    incoming: asyncio.Queue[SipCall] = asyncio.Queue()
    uas.on_call = incoming.put_nowait
    await uas.start(udp_port=0)
    await uac.start(udp_port=0)
    try:
        yield Pair(uac, uas, Peer("UDP", "127.0.0.1", uas.ports["UDP"]), incoming)
    finally:
        await uac.close()
        await uas.close()
        e1.close()
        e2.close()


async def next_event(call: SipCall, kind: type, timeout: float = 5.0) -> CallEvent:
    """The next event of type ``kind`` (others are skipped), within ``timeout``."""
    async with asyncio.timeout(timeout):
        while True:
            ev = await call.events.get()
            if isinstance(ev, kind):
                return ev


async def exchange_audio(a: SipCall, b: SipCall, freq: float, ms: int = 1000) -> bytes:
    """``a`` sends a tone for ``ms`` (paced at 10 ms); returns what ``b`` received."""
    pcm = tone([freq], ms)
    got: list[bytes] = []
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    for i in range(ms // 10):
        a.push_pcm(pcm[i * 160 : (i + 1) * 160])
        got.append(b.pull_pcm())
        delay = t0 + (i + 1) * 0.010 - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
    return b"".join(got)


async def connect(p: Pair, policy: MediaPolicy | None = None) -> tuple[SipCall, SipCall]:
    out = await p.uac.invite(f"sip:x@127.0.0.1:{p.peer.port}", p.peer, policy=policy)
    inc = await asyncio.wait_for(p.incoming.get(), 5)
    inc.ring()
    await next_event(out, Ringing)
    inc.answer()
    assert await out.wait_answer(5)
    await asyncio.wait_for(inc.acked.wait(), 5)
    return out, inc


@pytest.mark.parametrize(
    ("codecs", "expect"), [(("alaw",), "PCMA"), (("mulaw",), "PCMU"), (("opus",), "opus")]
)
async def test_audio_both_ways_per_codec(pair: Pair, codecs: tuple[str, ...], expect: str) -> None:
    out, inc = await connect(pair, MediaPolicy.of(codecs, ("rfc2833",)))
    assert out.negotiated is not None
    assert inc.negotiated is not None
    assert out.negotiated.codec == inc.negotiated.codec == expect
    assert out.line is not None
    assert inc.line is not None
    assert out.line.config.codec == inc.line.config.codec == expect
    rx = await exchange_audio(out, inc, 1000.0)
    # skip the jitter buffer's start; the tone was sent at -10 dBFS
    assert level_at(rx[len(rx) // 2 :], 1000.0) > -16
    assert level_at(rx[len(rx) // 2 :], 1700.0) < -40
    rx2 = await exchange_audio(inc, out, 700.0)
    assert level_at(rx2[len(rx2) // 2 :], 700.0) > -16
    stats = inc.line.stats()
    assert (stats["packets_received"] or 0) >= 40
    bye = await pair.uac.bye(out)
    assert bye.status == 200
    ended = await next_event(inc, Ended)
    assert isinstance(ended, Ended)
    assert ended.by_peer
    assert ended.code == 200
    assert inc.line is None
    assert out.line is None
    assert not pair.uas.calls
    assert not pair.uac.calls


async def test_dtmf_rfc2833_and_info(pair: Pair) -> None:
    out, inc = await connect(pair)
    assert out.dtmf_method == "rfc2833"
    for d in "15#":
        await out.send_dtmf(d, 120)
        ev = await next_event(inc, Dtmf)
        assert isinstance(ev, Dtmf)
        assert (ev.digit, ev.method) == (d, "rfc2833")
        await asyncio.sleep(0.05)  # digits must not overlap on the wire
    # INFO: a line whose only DTMF method is info
    await pair.uac.bye(out)
    out2, inc2 = await connect(pair, MediaPolicy.of(("alaw",), ("info",)))
    assert out2.dtmf_method == "info"
    assert out2.negotiated is not None
    assert out2.negotiated.telephone_event_pt is None
    for d in "9*":
        await out2.send_dtmf(d, 200)
        ev = await next_event(inc2, Dtmf)
        assert isinstance(ev, Dtmf)
        assert (ev.digit, ev.method, ev.duration_ms) == (d, "info", 200)
    await pair.uac.bye(out2)
    # the application/dtmf body format (the digit alone; duration is not carried)
    pol3 = MediaPolicy.of(("alaw",), ("info",), info_type="application/dtmf")
    out3, inc3 = await connect(pair, pol3)
    await out3.send_dtmf("B", 200)
    ev3 = await next_event(inc3, Dtmf)
    assert isinstance(ev3, Dtmf)
    assert (ev3.digit, ev3.method, ev3.duration_ms) == ("B", "info", 160)
    await pair.uac.bye(out3)


async def test_hold_resume_and_codec_change(pair: Pair) -> None:
    out, inc = await connect(pair)
    assert inc.negotiated is not None
    assert inc.negotiated.codec == "PCMA"
    resp = await out.hold()
    assert resp.status == 200
    held = await next_event(inc, Held)
    assert isinstance(held, Held)
    assert held.by_peer
    assert held.direction == "recvonly"
    assert inc.negotiated.direction == "recvonly"
    assert out.negotiated is not None
    assert out.negotiated.direction == "sendonly"
    assert isinstance(await next_event(out, Held), Held)
    assert (await out.resume()).status == 200
    assert isinstance(await next_event(inc, Resumed), Resumed)
    assert inc.negotiated.direction == "sendrecv"
    # codec change: the caller offers PCMU only; both lines reopen with PCMU
    old_port = out.line.local_address[1] if out.line else 0
    assert (await out.change_codecs(("mulaw",))).status == 200
    assert out.negotiated.codec == inc.negotiated.codec == "PCMU"
    assert out.line is not None
    assert out.line.config.codec == "PCMU"
    assert out.line.local_address[1] != old_port
    assert inc.line is not None
    assert inc.line.config.codec == "PCMU"
    rx = await exchange_audio(out, inc, 1000.0, 800)
    assert level_at(rx[len(rx) // 2 :], 1000.0) > -16
    # the callee holds the caller with inactive, then resumes
    assert (await inc.hold("inactive")).status == 200
    h = await next_event(out, Held)
    assert isinstance(h, Held)
    assert h.direction == "inactive"
    assert (await inc.resume()).status == 200
    assert isinstance(await next_event(out, Resumed), Resumed)
    assert (await out.options()).status == 200
    await inc.hangup()
    assert isinstance(await next_event(out, Ended), Ended)


async def test_early_media_cancel_reject(pair: Pair) -> None:
    out = await pair.uac.invite(f"sip:x@127.0.0.1:{pair.peer.port}", pair.peer)
    inc = await asyncio.wait_for(pair.incoming.get(), 5)
    inc.ring(early_media=True)
    assert isinstance(await next_event(out, EarlyMedia), EarlyMedia)
    assert out.state is CallState.EARLY
    rx = await exchange_audio(inc, out, 1000.0, 600)  # early media: callee to caller
    assert level_at(rx[len(rx) // 2 :], 1000.0) > -16
    await out.cancel()
    ended = await next_event(out, Ended)
    assert isinstance(ended, Ended)
    assert ended.code == 487
    e2 = await next_event(inc, Ended)
    assert isinstance(e2, Ended)
    assert e2.code == 487
    assert e2.by_peer
    assert out.line is None
    assert inc.line is None
    # rejection
    out2 = await pair.uac.invite(f"sip:x@127.0.0.1:{pair.peer.port}", pair.peer)
    inc2 = await asyncio.wait_for(pair.incoming.get(), 5)
    inc2.reject(486, "Busy Here")
    ended2 = await next_event(out2, Ended)
    assert isinstance(ended2, Ended)
    assert (ended2.code, ended2.by_peer) == (486, True)
    assert not pair.uas.pending
    assert not pair.uac.pending


async def test_no_common_codec_is_488(pair: Pair) -> None:
    pair.uas.policy = MediaPolicy.of(("opus",), ("rfc2833",))
    out = await pair.uac.invite(
        f"sip:x@127.0.0.1:{pair.peer.port}", pair.peer, policy=MediaPolicy.of(("alaw",), ())
    )
    ended = await next_event(out, Ended)
    assert isinstance(ended, Ended)
    assert ended.code == 488
    assert pair.incoming.empty()


async def test_refer_and_notify(pair: Pair) -> None:
    out, inc = await connect(pair)
    resp = await out.refer("sip:200@127.0.0.1", referred_by="<sip:tgsip@127.0.0.1>")
    assert resp.status == 202
    req = await next_event(inc, TransferRequested)
    assert isinstance(req, TransferRequested)
    assert req.target == "sip:200@127.0.0.1"
    assert req.referred_by == "<sip:tgsip@127.0.0.1>"
    first = await next_event(out, TransferProgress)
    assert isinstance(first, TransferProgress)
    assert first.status == 100
    assert (await inc.transfer_progress(180, "Ringing")).status == 200
    assert (await inc.transfer_progress(200, "OK")).status == 200
    p1 = await next_event(out, TransferProgress)
    p2 = await next_event(out, TransferProgress)
    assert isinstance(p1, TransferProgress)
    assert isinstance(p2, TransferProgress)
    assert (p1.status, p2.status) == (180, 200)
    await out.hangup()
    assert isinstance(await next_event(inc, Ended), Ended)


async def test_answered_event_and_ua_without_listener(pair: Pair) -> None:
    pair.uas.on_call = None  # accept-all: 180 then 200
    seen: list[SipCall | None] = []
    pair.uas.on_invite = lambda req: seen.append(pair.uas.call_for(req))
    out = await pair.uac.invite(f"sip:x@127.0.0.1:{pair.peer.port}", pair.peer)
    assert isinstance(await next_event(out, Answered), Answered)
    (inc,) = pair.uas.calls.values()
    assert seen == [inc]
    assert inc.line is not None
    assert inc.state is CallState.CONFIRMED
    await out.hangup()
    assert isinstance(await next_event(inc, Ended), Ended)


async def test_inband_dtmf(pair: Pair) -> None:
    pol = MediaPolicy.of(("alaw",), ("inband",))
    pair.uas.policy = pol
    out, inc = await connect(pair, pol)
    assert out.dtmf_method == "inband"
    assert out.line is not None
    assert out.line.config.dtmf_method == "inband"
    assert inc.line is not None
    assert inc.line.config.detect_inband_dtmf
    got: list[str] = []
    for d in "28":
        await out.send_dtmf(d, 120)
        loop = asyncio.get_running_loop()
        end = loop.time() + 3
        while loop.time() < end:  # pull the received audio so the detector runs on it
            inc.pull_pcm()
            out.push_pcm(bytes(160))
            if not inc.events.empty():
                ev = inc.events.get_nowait()
                if isinstance(ev, Dtmf):
                    got.append(f"{ev.digit}:{ev.method}")
                    break
            await asyncio.sleep(0.01)
    assert got == ["2:inband", "8:inband"]
    await out.hangup()


def _answer_sdp(port: int, pt: int, name: str) -> bytes:
    return (
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP {pt}\r\na=rtpmap:{pt} {name}/8000\r\na=sendrecv\r\n"
    ).encode()


async def _late_offer(
    pair: Pair, answer_pt: int, answer_name: str, port: int
) -> tuple[SipCall, Dialog]:
    invite = pair.uac.new_request("INVITE", f"sip:x@127.0.0.1:{pair.peer.port}", pair.peer)
    resp = await pair.uac.request(invite, pair.peer)
    assert resp.status == 200
    offer = parse_sdp(resp.body)
    assert offer.media[0].fmts[:2] == ["8", "0"]
    (inc,) = [c for c in pair.uas.calls.values() if c.invite.call_id == invite.call_id]
    assert inc.negotiated is None
    dialog = Dialog.as_uac(invite, resp)
    ack = dialog.new_request(
        "ACK",
        "127.0.0.1",
        via_port=pair.uac.ports["UDP"],
        cseq=invite.cseq.number,
        body=_answer_sdp(port, answer_pt, answer_name),
        content_type="application/sdp",
    )
    pair.uac._send(ack, pair.peer)
    await asyncio.wait_for(inc.acked.wait(), 5)
    return inc, dialog


async def test_late_offer_answer_in_ack(pair: Pair) -> None:
    """An INVITE without SDP: our offer goes in the 200, the caller's answer in the ACK."""
    pair.uas.on_call = None
    pair.uas.policy = MediaPolicy.of(("alaw", "mulaw"), ("info",))
    rtp = UdpPeer()  # the caller's RTP: a plain UDP socket
    try:
        _host, port = rtp.address
        inc, dialog = await _late_offer(pair, 8, "PCMA", port)
        assert inc.negotiated is not None
        assert (inc.negotiated.codec, inc.negotiated.remote_port) == ("PCMA", port)
        packets = await rtp.collect(0.3, limit=50)
        assert len(packets) >= 5  # the line sends 20 ms PCMA to the ACK's address
        assert {p[1] & 0x7F for p in packets} == {8}
        bye = dialog.new_request("BYE", "127.0.0.1", via_port=pair.uac.ports["UDP"])
        assert (await pair.uac.request(bye, pair.peer)).status == 200
        assert isinstance(await next_event(inc, Ended), Ended)
        # An answer with our second codec: the line reopens with PCMU on a new port and a
        # re-INVITE announces it; this caller keeps no dialog and answers 481, which ends
        # the call (RFC 3261 §14.1).
        inc2, _ = await _late_offer(pair, 0, "PCMU", port)
        assert inc2.negotiated is not None
        assert inc2.negotiated.codec == "PCMU"
        ended = await next_event(inc2, Ended)
        assert isinstance(ended, Ended)
        assert ended.code == 481
    finally:
        rtp.close()


async def test_rtp_timeout_ends_the_call_with_bye(pair: Pair) -> None:
    """No RTP for the line's timeout: the stuck call is ended with BYE (sip.md §8.1)."""
    pair.uas.policy = MediaPolicy.of(("alaw",), ("rfc2833",), rtp_timeout_ms=400)
    out, inc = await connect(pair)
    assert out.line is not None
    out.line.set_sending(False)  # the caller's media dies, its signalling stays
    ended = await next_event(inc, Ended, timeout=5)
    assert isinstance(ended, Ended)
    assert (ended.code, ended.reason, ended.by_peer) == (408, "RTP timeout", False)
    gone = await next_event(out, Ended, timeout=5)
    assert isinstance(gone, Ended)
    assert gone.by_peer


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"garbage", 400),
        (b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n", 488),
        (
            b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n"
            b"m=audio 4000 RTP/AVP 8\r\na=rtpmap:8 PCMA\r\n",
            400,
        ),
    ],
)
async def test_bad_offers_are_refused_without_leaking_lines(
    pair: Pair, body: bytes, status: int
) -> None:
    invite = pair.uac.new_request(
        "INVITE", f"sip:x@127.0.0.1:{pair.peer.port}", pair.peer, body=body
    )
    resp = await pair.uac.request(invite, pair.peer)
    assert resp.status == status
    assert pair.incoming.empty()
    assert not pair.uas.pending
    assert not pair.uas.calls
    assert pair.uas._lines == {}


async def test_no_rtp_port_left_is_503() -> None:
    """An engine whose only RTP port is taken: the INVITE gets 503 with Retry-After."""
    engine = MediaEngine(EngineConfig(workers=1, port_min=44990, port_max=44991))
    uas = UserAgent("127.0.0.1", timers=FAST, media=engine)
    uac = UserAgent("127.0.0.1", timers=FAST)
    await uas.start(udp_port=0)
    await uac.start(udp_port=0)
    try:
        peer = Peer("UDP", "127.0.0.1", uas.ports["UDP"])
        first = await uac.invite(f"sip:x@127.0.0.1:{peer.port}", peer)
        assert await first.wait_answer(5)  # takes the engine's only port pair
        second = await uac.invite(f"sip:x@127.0.0.1:{peer.port}", peer)
        ended = await next_event(second, Ended)
        assert isinstance(ended, Ended)
        assert ended.code == 503
        assert second.final is not None
        assert second.final.get("Retry-After") == "5"
        await first.hangup()
    finally:
        await uac.close()
        await uas.close()
        engine.close()


async def test_invite_requiring_100rel_gets_420(pair: Pair) -> None:
    """RFC 3261 §8.2.2.3: we do not support reliable provisionals (RFC 3262)."""
    invite = pair.uac.new_request(
        "INVITE",
        f"sip:x@127.0.0.1:{pair.peer.port}",
        pair.peer,
        extra_headers=(("Require", "100rel"),),
    )
    resp = await pair.uac.request(invite, pair.peer)
    assert resp.status == 420
    assert resp.get("Unsupported") == "100rel"
    assert pair.incoming.empty()


async def test_ipv6_call_with_media() -> None:
    """Signalling and RTP on ::1: the SDP says c=IN IP6 and the tone arrives."""
    e1 = MediaEngine(EngineConfig(workers=1, bind_ip="::1", port_min=44800, port_max=44899))
    e2 = MediaEngine(EngineConfig(workers=1, bind_ip="::1", port_min=44900, port_max=44989))
    uas = UserAgent("::1", timers=FAST, media=e1)
    uac = UserAgent("::1", timers=FAST, media=e2)
    incoming: asyncio.Queue[SipCall] = asyncio.Queue()
    uas.on_call = incoming.put_nowait
    try:
        await uas.start(udp_port=0)
        await uac.start(udp_port=0)
        p = Pair(uac, uas, Peer("UDP", "::1", uas.ports["UDP"]), incoming)
        out = await p.uac.invite(f"sip:x@[::1]:{p.peer.port}", p.peer)
        inc = await asyncio.wait_for(p.incoming.get(), 5)
        assert b"c=IN IP6 ::1" in inc.invite.body
        inc.answer()
        assert await out.wait_answer(5)
        assert out.negotiated is not None
        assert out.negotiated.remote_host == "::1"
        rx = await exchange_audio(out, inc, 1000.0, 800)
        assert level_at(rx[len(rx) // 2 :], 1000.0) > -16
        await out.hangup()
        assert isinstance(await next_event(inc, Ended), Ended)
    finally:
        await uac.close()
        await uas.close()
        e1.close()
        e2.close()


async def test_update_refresh_and_offer(pair: Pair) -> None:
    """UPDATE (RFC 3311): without a body a refresh (200); with an offer, the answer is in the
    200 and the callee's line follows the new codec."""
    out, inc = await connect(pair)
    refresh = out._new_request("UPDATE")
    assert (await pair.uac.request(refresh, pair.peer)).status == 200
    offer = make_offer(MediaPolicy.of(("mulaw",), ("rfc2833",)), "127.0.0.1", 9, session_id=5)
    update = out._new_request("UPDATE", body=offer.to_bytes(), content_type="application/sdp")
    resp = await pair.uac.request(update, pair.peer)
    assert resp.status == 200
    answer = parse_sdp(resp.body)
    assert answer.media[0].fmts[0] == "0"
    assert inc.negotiated is not None
    assert inc.negotiated.codec == "PCMU"
    assert inc.line is not None
    assert inc.line.config.codec == "PCMU"
    assert answer.media[0].port == inc.line.local_address[1]
    bad = out._new_request("UPDATE", body=b"garbage", content_type="application/sdp")
    assert (await pair.uac.request(bad, pair.peer)).status == 400
    await out.hangup()
    assert isinstance(await next_event(inc, Ended), Ended)
