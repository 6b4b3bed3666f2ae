"""Transports on loopback: UDP, TCP, TLS, IPv6, rport, malformed input, keep-alive."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import shutil
import socket
import ssl
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tgsip.sip.message import Request, Response, parse_message
from tgsip.sip.transaction import Peer
from tgsip.sip.transport import StreamConnection, apply_rport, response_peer
from tgsip.sip.ua import UserAgent

OPTIONS = (
    "OPTIONS sip:tgsip@{host} SIP/2.0\r\n"
    "Via: SIP/2.0/{t} {via};branch=z9hG4bK{branch}{rport}\r\n"
    "Max-Forwards: 70\r\n"
    "From: <sip:a@example.com>;tag=1\r\n"
    "To: <sip:tgsip@example.com>\r\n"
    "Call-ID: c{branch}\r\n"
    "CSeq: 1 OPTIONS\r\n"
    "Content-Length: 0\r\n\r\n"
)


def options(
    branch: str = "1", *, t: str = "UDP", via: str = "10.0.0.1:5060", rport: bool = True
) -> bytes:
    return OPTIONS.format(
        host="127.0.0.1", t=t, via=via, branch=branch, rport=";rport" if rport else ""
    ).encode()


def run(coro: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(coro(), 20))


class UdpClient(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[object, ...]) -> None:
        self.queue.put_nowait(data)


async def udp_client(host: str, port: int) -> tuple[asyncio.DatagramTransport, UdpClient, int]:
    loop = asyncio.get_running_loop()
    tr, proto = await loop.create_datagram_endpoint(UdpClient, remote_addr=(host, port))
    return tr, proto, int(tr.get_extra_info("sockname")[1])


# ---------------------------------------------------------------------------------------
# sans-I/O helpers


def test_apply_rport_fills_received_and_rport() -> None:
    req = parse_message(options())
    assert isinstance(req, Request)
    out = apply_rport(req, "192.0.2.7", 40000)
    assert out.top_via.received == "192.0.2.7"
    assert out.top_via.rport == 40000
    assert response_peer(out, Peer("UDP", "192.0.2.7", 40000)) == Peer("UDP", "192.0.2.7", 40000)


def test_apply_rport_without_flag_uses_sent_by_port() -> None:
    req = parse_message(options(rport=False))
    assert isinstance(req, Request)
    out = apply_rport(req, "192.0.2.7", 40000)
    assert out.top_via.received == "192.0.2.7"
    assert out.top_via.rport is None
    assert response_peer(out, Peer("UDP", "192.0.2.7", 40000)) == Peer("UDP", "192.0.2.7", 5060)


def test_apply_rport_same_host_unchanged() -> None:
    req = parse_message(options(via="192.0.2.7:5060", rport=False))
    assert isinstance(req, Request)
    assert apply_rport(req, "192.0.2.7", 5060) is req


# ---------------------------------------------------------------------------------------
# UDP


def test_udp_options_rport_and_malformed() -> None:
    async def main() -> None:
        ua = UserAgent("127.0.0.1")
        await ua.start(udp_port=0)
        tr, cl, myport = await udp_client("127.0.0.1", ua.ports["UDP"])
        try:
            tr.sendto(options("u1"))
            resp = parse_message(await cl.queue.get())
            assert isinstance(resp, Response)
            assert resp.status == 200
            assert resp.top_via.received == "127.0.0.1"
            assert resp.top_via.rport == myport
            # wrong SIP version -> 505 (RFC 4475 §3.1.2.14)
            tr.sendto(options("u2").replace(b"SIP/2.0\r\n", b"SIP/7.0\r\n", 1))
            resp = parse_message(await cl.queue.get())
            assert isinstance(resp, Response)
            assert resp.status == 505
            # unknown scheme -> 416
            bad_invite = options("u3").replace(b"OPTIONS", b"INVITE")
            tr.sendto(bad_invite.replace(b"sip:tgsip@127.0.0.1", b"nope:x", 1))
            resp = parse_message(await cl.queue.get())
            assert isinstance(resp, Response)
            assert resp.status == 416
            # garbage and a malformed response are dropped; the socket still works after
            for junk in (b"\x00\xff" * 50, b"SIP/2.0 200 OK\r\nVia: x\r\n\r\n", b"\r\n\r\n"):
                tr.sendto(junk)
            tr.sendto(options("u4"))
            resp = parse_message(await cl.queue.get())
            assert isinstance(resp, Response)
            assert resp.status == 200
            assert resp.call_id == "cu4"
            assert ua.udp is not None
            assert ua.udp.dropped == 3
            # a retransmitted request gets the same response from the transaction
            tr.sendto(options("u4"))
            again = parse_message(await cl.queue.get())
            assert isinstance(again, Response)
            assert again.to.tag == resp.to.tag
        finally:
            tr.close()
            await ua.close()

    run(main)


@given(st.binary(max_size=600))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_udp_hostile_bytes_never_crash(data: bytes) -> None:
    """Any datagram: answered or dropped, and the UA still answers OPTIONS afterwards."""

    async def main() -> None:
        ua = UserAgent("127.0.0.1")
        await ua.start(udp_port=0)
        assert ua.udp is not None
        tr, cl, _ = await udp_client("127.0.0.1", ua.ports["UDP"])
        try:
            ua.udp.datagram_received(data, ("127.0.0.1", 1))
            ua.udp.datagram_received(b"INVITE sip:a@b SIP/2.0\r\n" + data, ("127.0.0.1", 1))
            tr.sendto(options("alive"))
            for _ in range(5):
                resp = parse_message(await cl.queue.get())
                if isinstance(resp, Response) and resp.call_id == "calive":
                    break
            else:
                raise AssertionError("no answer after hostile input")
        finally:
            tr.close()
            await ua.close()

    run(main)


def test_udp_ipv6_loopback() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")

    async def main() -> None:
        ua = UserAgent("::1")
        try:
            await ua.start(udp_port=0)
        except OSError as exc:
            pytest.skip(f"cannot bind ::1: {exc}")
        tr, cl, myport = await udp_client("::1", ua.ports["UDP"])
        try:
            tr.sendto(options("v6", via="[2001:db8::9]:5060"))
            resp = parse_message(await cl.queue.get())
            assert isinstance(resp, Response)
            assert resp.status == 200
            assert resp.top_via.received == "::1"
            assert resp.top_via.rport == myport
        finally:
            tr.close()
            await ua.close()

    run(main)


# ---------------------------------------------------------------------------------------
# TCP / TLS


async def read_message(reader: asyncio.StreamReader) -> Response:
    head = await reader.readuntil(b"\r\n\r\n")
    msg = parse_message(head)
    assert isinstance(msg, Response)
    n = int(msg.get("Content-Length") or 0)
    if n:
        await reader.readexactly(n)
    return msg


def test_tcp_framing_pong_and_split_writes() -> None:
    async def main() -> None:
        ua = UserAgent("127.0.0.1")
        await ua.start(udp_port=None, tcp_port=0)
        reader, writer = await asyncio.open_connection("127.0.0.1", ua.ports["TCP"])
        try:
            # RFC 5626 §3.5.1: CRLFCRLF ping -> CRLF pong
            writer.write(b"\r\n\r\n")
            assert await reader.readexactly(2) == b"\r\n"
            # two messages in one write, then one split byte by byte
            a = options("t1", t="TCP")
            b = options("t2", t="TCP")
            writer.write(a + b)
            got = {(await read_message(reader)).call_id, (await read_message(reader)).call_id}
            assert got == {"ct1", "ct2"}
            c = options("t3", t="TCP")
            for i in range(len(c)):
                writer.write(c[i : i + 1])
                await writer.drain()
            r = await read_message(reader)
            assert r.call_id == "ct3"
            assert r.top_via.received == "127.0.0.1"
        finally:
            writer.close()
            await ua.close()

    run(main)


def test_tcp_unframeable_stream_is_closed() -> None:
    async def main() -> None:
        ua = UserAgent("127.0.0.1")
        await ua.start(udp_port=None, tcp_port=0)
        reader, writer = await asyncio.open_connection("127.0.0.1", ua.ports["TCP"])
        try:
            writer.write(options("x", t="TCP").replace(b"Content-Length: 0\r\n", b""))
            assert await reader.read() == b""  # EOF: no Content-Length on a stream
            reader2, writer2 = await asyncio.open_connection("127.0.0.1", ua.ports["TCP"])
            writer2.write(b"A" * 70_000)  # over the size cap without a header end
            assert await reader2.read() == b""
            writer2.close()
        finally:
            writer.close()
            await ua.close()

    run(main)


def test_stream_connection_size_cap_unit() -> None:
    conn = StreamConnection("TCP", lambda m, p: None, {}, max_message=100)
    conn.peer = Peer("TCP", "127.0.0.1", 1)
    conn.data_received(b"X" * 101)
    assert conn.buf == b""


def make_cert(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (cryptography, else the openssl CLI)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        if shutil.which("openssl") is None:
            pytest.skip("neither the cryptography package nor openssl is available")
        args = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
        args += ["-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1"]
        args += ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
        subprocess.run(
            args,
            check=True,
            capture_output=True,
            timeout=30,
        )
        return cert, key
    pk = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    c = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(pk.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(pk, hashes.SHA256())
    )
    cert.write_bytes(c.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        pk.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert, key


def test_tls_options_and_call_between_two_uas(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(cert))

    async def main() -> None:
        uas = UserAgent("127.0.0.1")
        await uas.start(udp_port=None, tls_port=0, tls_server=server_ctx, tls_client=client_ctx)
        uac = UserAgent("127.0.0.1")
        await uac.start(udp_port=None, tls_port=0, tls_server=server_ctx, tls_client=client_ctx)
        try:
            peer = Peer("TLS", "127.0.0.1", uas.ports["TLS"])
            resp = await uac.request(uac.new_request("OPTIONS", "sip:x@127.0.0.1", peer), peer)
            assert resp.status == 200
            call = await uac.invite(f"sip:x@127.0.0.1:{peer.port}", peer)
            assert await call.wait_answer(5)
            assert call.final is not None
            assert call.final.status == 200
            bye = await uac.bye(call)
            assert bye.status == 200
            assert uas.stats["calls_ended"] == 1
        finally:
            await uac.close()
            await uas.close()

    run(main)


def test_tcp_per_ip_connection_cap() -> None:
    async def main() -> None:
        ua = UserAgent("127.0.0.1")
        await ua.start(udp_port=None, tcp_port=0)
        assert ua.tcp is not None
        ua.tcp.max_per_ip = 2
        port = ua.ports["TCP"]
        conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
        try:
            # the third is closed at once; the first two still answer
            assert await conns[2][0].read() == b""
            for i, (reader, writer) in enumerate(conns[:2]):
                writer.write(options(f"cap{i}", t="TCP"))
                assert (await read_message(reader)).status == 200
            assert ua.tcp.refused == 1
            conns[0][1].close()
            await conns[0][1].wait_closed()
            assert await conns[0][0].read() == b""
        finally:
            for _, w in conns:
                w.close()
            await ua.close()

    run(main)


def test_tcp_ipv6_loopback() -> None:
    async def main() -> None:
        ua = UserAgent("::1")
        try:
            await ua.start(udp_port=None, tcp_port=0)
        except OSError as exc:
            pytest.skip(f"cannot bind ::1: {exc}")
        reader, writer = await asyncio.open_connection("::1", ua.ports["TCP"])
        try:
            writer.write(options("v6t", t="TCP", via="[::1]:5060"))
            r = await read_message(reader)
            assert r.status == 200
            assert r.call_id == "cv6t"
            assert r.top_via.received == "::1"  # rport requested: received is always added
            assert r.top_via.rport == writer.get_extra_info("sockname")[1]
        finally:
            writer.close()
            await ua.close()

    run(main)
