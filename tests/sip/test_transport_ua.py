"""The UA core over real loopback sockets: CANCEL, BYE, INFO, re-INVITE, 2xx retransmission."""

from __future__ import annotations

import asyncio
import itertools

from tgsip.sip.auth import DigestClient, DigestServer, compute_ha1
from tgsip.sip.message import Request, Response, parse_message
from tgsip.sip.transaction import Peer, Timers
from tgsip.sip.ua import UserAgent

FAST = Timers(t1=0.05, t2=0.4, t4=0.5)


def run(coro: object) -> None:
    asyncio.run(asyncio.wait_for(coro, 20))  # type: ignore[arg-type]


async def pair(**uas_kw: object) -> tuple[UserAgent, UserAgent, Peer]:
    uas = UserAgent("127.0.0.1", **uas_kw)  # type: ignore[arg-type]
    await uas.start(udp_port=0)
    uac = UserAgent("127.0.0.1")
    await uac.start(udp_port=0)
    return uas, uac, Peer("UDP", "127.0.0.1", uas.ports["UDP"])


def test_call_info_reinvite_bye() -> None:
    async def main() -> None:
        uas, uac, peer = await pair()
        try:
            call = await uac.invite(f"sip:x@127.0.0.1:{peer.port}", peer)
            assert await call.wait_answer(5)
            final = call.final
            assert final is not None
            assert final.status == 200
            assert b"m=audio" in final.body
            (server_call,) = uas.calls.values()
            await asyncio.wait_for(server_call.acked.wait(), 5)
            assert server_call.retransmitter is None  # stopped by the ACK
            info = call.dialog.new_request(
                "INFO",
                "127.0.0.1",
                via_port=uac.ports["UDP"],
                body=b"Signal=5\r\nDuration=160\r\n",
                content_type="application/dtmf-relay",
            )
            assert (await uac.request(info, peer)).status == 200
            # re-INVITE with a new Contact refreshes the UAS's remote target (§12.2.2)
            reinvite = call.dialog.new_request(
                "INVITE",
                "127.0.0.1",
                via_port=uac.ports["UDP"],
                contact=f"<sip:moved@127.0.0.1:{uac.ports['UDP']}>",
            )
            resp = await uac.request(reinvite, peer)
            assert resp.status == 200
            assert server_call.dialog.remote_target == f"sip:moved@127.0.0.1:{uac.ports['UDP']}"
            assert server_call.dialog.remote_cseq == reinvite.cseq.number
            bye = await uac.bye(call)
            assert bye.status == 200
            assert uas.calls == {}
            assert uac.calls == {}
            # BYE again: no dialog any more -> 481
            again = call.dialog.new_request("BYE", "127.0.0.1", via_port=uac.ports["UDP"])
            assert (await uac.request(again, peer)).status == 481
            opts = uac.new_request("OPTIONS", "sip:x@127.0.0.1", peer)
            assert (await uac.request(opts, peer)).status == 200
            unknown = uac.new_request("SUBSCRIBE", "sip:x@127.0.0.1", peer)
            assert (await uac.request(unknown, peer)).status == 501
        finally:
            await uac.close()
            await uas.close()

    run(main())


def test_cancel_gets_200_and_invite_487() -> None:
    async def main() -> None:
        uas, uac, peer = await pair(ring_seconds=30.0)
        ringing: asyncio.Future[Request] = asyncio.get_running_loop().create_future()
        uas.on_invite = lambda r: ringing.done() or ringing.set_result(r)  # type: ignore[func-returns-value]
        try:
            invite = uac.new_request("INVITE", f"sip:x@127.0.0.1:{peer.port}", peer)
            pending = asyncio.ensure_future(uac.request(invite, peer))
            await asyncio.wait_for(ringing, 5)
            cancel = await uac.cancel(invite, peer)
            assert cancel.status == 200
            final = await asyncio.wait_for(pending, 5)
            assert final.status == 487
            assert uas.stats["cancelled"] == 1
            assert uas.calls == {}
            # a retransmitted CANCEL matches its own transaction and gets the same 200
            assert (await uac.cancel(invite, peer)).status == 200
            # CANCEL for an INVITE the UAS never saw -> 481
            unknown = uac.new_request("INVITE", f"sip:x@127.0.0.1:{peer.port}", peer)
            assert (await uac.cancel(unknown, peer)).status == 481
        finally:
            await uac.close()
            await uas.close()

    run(main())


class Raw(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[Response] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[object, ...]) -> None:
        msg = parse_message(data)
        assert isinstance(msg, Response)
        self.queue.put_nowait(msg)


def test_uas_retransmits_2xx_until_ack() -> None:
    """RFC 3261 §13.3.1.4: 2xx resent at T1, 2*T1, ... up to T2 until the ACK arrives."""

    async def main() -> None:
        uas = UserAgent("127.0.0.1", timers=FAST)
        await uas.start(udp_port=0)
        loop = asyncio.get_running_loop()
        tr, raw = await loop.create_datagram_endpoint(
            Raw, remote_addr=("127.0.0.1", uas.ports["UDP"])
        )
        port = tr.get_extra_info("sockname")[1]
        try:
            invite = (
                f"INVITE sip:x@127.0.0.1 SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKraw1;rport\r\n"
                "Max-Forwards: 70\r\nFrom: <sip:a@127.0.0.1>;tag=f1\r\n"
                "To: <sip:x@127.0.0.1>\r\nCall-ID: raw1\r\nCSeq: 1 INVITE\r\n"
                f"Contact: <sip:a@127.0.0.1:{port}>\r\nContent-Length: 0\r\n\r\n"
            )
            tr.sendto(invite.encode())
            seen: list[tuple[float, int]] = []
            t0 = loop.time()
            while len([s for _, s in seen if s == 200]) < 5:
                r = await asyncio.wait_for(raw.queue.get(), 3)
                seen.append((loop.time() - t0, r.status))
            assert [s for _, s in seen[:3]] == [100, 180, 200]
            ok_times = [t for t, s in seen if s == 200]
            gaps = [b - a for a, b in itertools.pairwise(ok_times)]
            # 0.05, 0.1, 0.2, 0.4 (doubling) with scheduling slack
            assert 0.04 <= gaps[0] < 0.2
            assert gaps[1] > gaps[0] * 1.5
            assert gaps[2] > gaps[1] * 1.5
            (call,) = uas.calls.values()
            assert call.retransmitter is not None
            assert call.retransmitter.sent == 4
            to_tag = call.dialog.local_tag
            ack = (
                f"ACK sip:tgsip@127.0.0.1:{uas.ports['UDP']} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKraw2;rport\r\n"
                "Max-Forwards: 70\r\nFrom: <sip:a@127.0.0.1>;tag=f1\r\n"
                f"To: <sip:x@127.0.0.1>;tag={to_tag}\r\nCall-ID: raw1\r\nCSeq: 1 ACK\r\n"
                "Content-Length: 0\r\n\r\n"
            )
            tr.sendto(ack.encode())
            await asyncio.wait_for(call.acked.wait(), 3)
            # drain anything already in flight, then nothing more may come within 3*T2
            while not raw.queue.empty():
                raw.queue.get_nowait()
            try:
                extra = await asyncio.wait_for(raw.queue.get(), 1.2)
            except TimeoutError:
                extra = None
            assert extra is None
        finally:
            tr.close()
            await uas.close()

    run(main())


def test_register_binding() -> None:
    async def main() -> None:
        uas, uac, peer = await pair()
        try:
            resp = await uac.register(
                f"sip:127.0.0.1:{peer.port}", "sip:alice@127.0.0.1", peer, expires=60
            )
            assert resp.status == 200
            assert "sip:alice@127.0.0.1" in uas.registrations
            contacts = resp.contacts
            assert contacts
            assert contacts[0].expires == 60
        finally:
            await uac.close()
            await uas.close()

    run(main())


def registrar(ua: UserAgent, password: str = "s3cret-pass") -> None:
    server = DigestServer(b"0123456789abcdef0123", "tgsip.test", algorithms=("SHA-256", "MD5"))

    def lookup(user: str, algorithm: str) -> str | None:
        return compute_ha1(user, "tgsip.test", password, algorithm) if user == "alice" else None

    ua.registrar_auth = (server, lookup)


def test_register_with_digest_challenge() -> None:
    async def main() -> None:
        uas, uac, peer = await pair()
        registrar(uas)
        try:
            target = f"sip:127.0.0.1:{peer.port}"
            aor = "sip:alice@127.0.0.1"
            plain = await uac.register(target, aor, peer)
            assert plain.status == 401
            assert len(plain.get_all("WWW-Authenticate")) == 2
            good = DigestClient("alice", "s3cret-pass")
            resp = await uac.register(target, aor, peer, credentials=good)
            assert resp.status == 200
            assert good.last_algorithm == "SHA-256"
            assert aor in uas.registrations
            bad = await uac.register(target, aor, peer, credentials=DigestClient("alice", "wrong"))
            assert bad.status == 403
        finally:
            await uac.close()
            await uas.close()

    run(main())


class AnyRaw(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[Request | Response] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[object, ...]) -> None:
        self.queue.put_nowait(parse_message(data))


def test_uas_ends_call_with_bye_when_ack_never_comes() -> None:
    """RFC 3261 §13.3.1.4: no ACK within 64*T1 -> the UAS sends BYE and drops the dialog."""

    async def main() -> None:
        uas = UserAgent("127.0.0.1", timers=Timers(t1=0.01, t2=0.08, t4=0.1))
        await uas.start(udp_port=0)
        loop = asyncio.get_running_loop()
        tr, raw = await loop.create_datagram_endpoint(
            AnyRaw, remote_addr=("127.0.0.1", uas.ports["UDP"])
        )
        port = tr.get_extra_info("sockname")[1]
        try:
            invite = (
                f"INVITE sip:x@127.0.0.1 SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKnoack;rport\r\n"
                "Max-Forwards: 70\r\nFrom: <sip:a@127.0.0.1>;tag=f2\r\n"
                "To: <sip:x@127.0.0.1>\r\nCall-ID: noack\r\nCSeq: 1 INVITE\r\n"
                f"Contact: <sip:a@127.0.0.1:{port}>\r\nContent-Length: 0\r\n\r\n"
            )
            tr.sendto(invite.encode())
            oks = 0
            bye: Request | None = None
            for _ in range(100):
                msg = await asyncio.wait_for(raw.queue.get(), 3)
                if isinstance(msg, Response) and msg.status == 200:
                    oks += 1
                if isinstance(msg, Request):
                    bye = msg
                    break
            assert bye is not None
            assert bye.method == "BYE"
            assert bye.call_id == "noack"
            assert bye.from_.tag != "f2"  # sent by the UAS: its own tag in From
            assert bye.to.tag == "f2"
            assert oks >= 6  # the 2xx and its retransmissions before giving up
            assert uas.calls == {}
            assert uas.stats["no_ack"] == 1
        finally:
            tr.close()
            await uas.close()

    run(main())


def test_bad_late_header_is_dropped_and_ua_survives() -> None:
    """A Record-Route the parser reads lazily is malformed: 400, and the UA keeps going."""

    async def main() -> None:
        uas = UserAgent("127.0.0.1")
        await uas.start(udp_port=0)
        loop = asyncio.get_running_loop()
        tr, raw = await loop.create_datagram_endpoint(
            AnyRaw, remote_addr=("127.0.0.1", uas.ports["UDP"])
        )
        port = tr.get_extra_info("sockname")[1]
        try:
            head = (
                "sip:x@127.0.0.1 SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{{b}};rport\r\n"
                "Max-Forwards: 70\r\nFrom: <sip:a@127.0.0.1>;tag=f3\r\n"
                "To: <sip:x@127.0.0.1>\r\nCall-ID: {b}\r\nCSeq: 1 {m}\r\n"
            )
            bad = "INVITE " + head.format(b="rr", m="INVITE") + "Record-Route: <<<nope\r\n"
            tr.sendto((bad + "Content-Length: 0\r\n\r\n").encode())
            ok = "OPTIONS " + head.format(b="alive", m="OPTIONS") + "Content-Length: 0\r\n\r\n"
            tr.sendto(ok.encode())
            got: dict[str, int] = {}
            for _ in range(10):
                msg = await asyncio.wait_for(raw.queue.get(), 3)
                assert isinstance(msg, Response)
                if msg.status >= 200:
                    got[msg.call_id] = msg.status
                if len(got) == 2:
                    break
            assert got == {"rr": 400, "alive": 200}
            assert uas.stats["calls_answered"] == 0
        finally:
            tr.close()
            await uas.close()

    run(main())
