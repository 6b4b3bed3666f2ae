"""SipService against real SIPp: registrar lines, INVITE digest, IP ⇿ IP trunks, bans.

Sources other than 127.0.0.1 are other loopback addresses (127.0.0.x) that SIPp binds with
``-i``. Every SIPp run is bounded by its own ``-timeout`` and by :func:`run_sipp`'s limit.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from tests.sip.test_sipp import REG_AUTH_XML, free_port, run_sipp, screen_counts
from tgsip.config.lines import LineKind, SipLine
from tgsip.sip.message import Request
from tgsip.sip.service import SipService
from tgsip.sip.transaction import Peer

pytestmark = [
    pytest.mark.peer,
    pytest.mark.skipif(
        shutil.which("sipp") is None, reason="sipp (Debian package sip-tester) is not installed"
    ),
]

PASSWORD = "s3cret-pass-0123456789ab"
# SIPp 3.6 answers only the topmost challenge and only MD5: offer MD5 first.
ALGS = ("MD5", "SHA-256")


def pbx_line(line_id: int = 1, login: str = "alice", **kw: object) -> SipLine:
    return SipLine(
        id=line_id,
        session_id=1,
        kind=LineKind.PBX_TO_GATEWAY,
        login=login,
        password=PASSWORD,
        **kw,  # type: ignore[arg-type]
    )


def ipip_line(line_id: int, address: str, field_value: str = "") -> SipLine:
    return SipLine(
        id=line_id, session_id=1, kind=LineKind.IP_IP, address=address, field_value=field_value
    )


SDP = """
      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 8
      a=rtpmap:8 PCMA/8000
"""


def uac_xml(extra: str = "", auth: bool = False) -> str:
    """An INVITE/ACK/BYE caller; ``auth`` answers a 401 first; ``extra`` is a header line."""
    extra = f"\n      {extra}" if extra else ""
    head = """
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Max-Forwards: 70"""
    first = f"""
  <send retrans="500"><![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0{head}
      CSeq: 1 INVITE{extra}
      Content-Type: application/sdp
      Content-Length: [len]
{SDP}
  ]]></send>"""
    cseq = 1
    challenge = ""
    if auth:
        cseq = 2
        challenge = f"""
  <recv response="100" optional="true"/>
  <recv response="401" auth="true"/>
  <send><![CDATA[
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      [last_Via:]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>
  <send retrans="500"><![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0{head}
      CSeq: 2 INVITE
      [authentication]{extra}
      Content-Type: application/sdp
      Content-Length: [len]
{SDP}
  ]]></send>"""
    dialog_head = head.replace("[remote_port]>", "[remote_port]>[peer_tag_param]")
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="uac_line">{first}{challenge}
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rtd="true"/>
  <send><![CDATA[
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0{dialog_head}
      CSeq: {cseq} ACK
      Content-Length: 0

  ]]></send>
  <send retrans="500"><![CDATA[
      BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0{dialog_head}
      CSeq: {cseq + 1} BYE
      Content-Length: 0

  ]]></send>
  <recv response="200" crlf="true"/>
</scenario>
"""


@asynccontextmanager
async def service(
    tmp: Path, lines: list[SipLine], **kw: object
) -> AsyncIterator[tuple[SipService, list[tuple[int, Request, Peer]]]]:
    svc = SipService(
        "127.0.0.1",
        udp_port=0,
        tcp_port=0,
        ban_db=tmp / "bans.sqlite",
        registrar_algorithms=ALGS,
        **kw,  # type: ignore[arg-type]
    )
    invites: list[tuple[int, Request, Peer]] = []
    svc.on_invite = lambda line_id, req, src: invites.append((line_id, req, src))
    await svc.start()
    await svc.set_lines(lines)
    try:
        yield svc, invites
    finally:
        await svc.stop()


async def sipp(
    d: Path,
    scenario: str,
    port: int,
    *,
    ip: str = "127.0.0.1",
    service_user: str = "alice",
    password: str = PASSWORD,
    calls: int = 1,
    tcp: bool = False,
    timeout: float = 5.0,
    recv_timeout_ms: int | None = None,
    rate: int = 50,
) -> tuple[int, int, int]:
    """Run a SIPp scenario file in ``d``; returns (rc, successful, failed)."""
    for old in d.glob("*_screen.log"):
        old.unlink()
    sock = socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM
    args = ["-sf", scenario, f"127.0.0.1:{port}", "-i", ip, "-p", str(free_port(sock))]
    args += ["-s", service_user, "-au", service_user, "-ap", password]
    args += ["-m", str(calls), "-r", str(rate), "-timeout", f"{timeout}s", "-timeout_error"]
    args += ["-nostdin", "-trace_screen", "-trace_err", "-mi", ip]
    if tcp:
        args += ["-t", "t1"]
    if recv_timeout_ms is not None:  # a call without an answer fails, SIPp goes on
        args += ["-recv_timeout", str(recv_timeout_ms)]
    rc = await run_sipp(args, d, timeout + 20)
    ok, failed = screen_counts(d)
    return rc, ok, failed


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_sipp_registers_then_calls_in_with_digest(tmp_path: Path, tcp: bool) -> None:
    (tmp_path / "reg.xml").write_text(REG_AUTH_XML)
    (tmp_path / "uac_auth.xml").write_text(uac_xml(auth=True))
    transport = "TCP" if tcp else "UDP"

    async def main() -> None:
        lines = [pbx_line(trusted_ips=("127.0.0.1/32",))]
        async with service(tmp_path, lines) as (svc, invites):
            port = svc.ports[transport]
            changes: list[bool] = []
            svc.add_line_listener(lambda st: changes.append(st.registered))
            assert await sipp(tmp_path, "reg.xml", port, calls=5, tcp=tcp) == (0, 5, 0)
            st = svc.line_status(1)
            assert st is not None
            assert st.registered
            assert st.source is not None
            assert st.source.transport == transport
            assert st.source.host == "127.0.0.1"
            assert st.contact.startswith("sip:alice@127.0.0.1:")
            assert changes[0] is True
            target = await svc.call_target(1, "+15551234")
            assert target is not None
            assert target.peer == st.source
            assert target.request_uri == st.contact
            # the registered PBX calls in: challenged, then accepted for line 1
            assert await sipp(tmp_path, "uac_auth.xml", port, service_user="alice", tcp=tcp) == (
                0,
                1,
                0,
            )
            assert [i[0] for i in invites] == [1]
            assert invites[0][1].get("Authorization") is not None
            assert svc.stats["failures"] == 0

    asyncio.run(main())


def test_wrong_password_gets_403_and_counts(tmp_path: Path) -> None:
    (tmp_path / "reg.xml").write_text(REG_AUTH_XML)
    (tmp_path / "uac_auth.xml").write_text(uac_xml(auth=True))

    async def main() -> None:
        async with service(tmp_path, [pbx_line()]) as (svc, invites):
            port = svc.ports["UDP"]
            rc, ok, failed = await sipp(
                tmp_path, "reg.xml", port, ip="127.0.0.7", password="wrong", calls=3
            )
            assert (ok, failed) == (0, 3)
            assert rc != 0
            assert svc.bans.failures("127.0.0.7", time.time()) == 3
            assert not svc.line_status(1).registered  # type: ignore[union-attr]
            rc, ok, failed = await sipp(
                tmp_path, "uac_auth.xml", port, ip="127.0.0.7", password="wrong"
            )
            assert (ok, failed) == (0, 1)
            assert invites == []
            assert svc.bans.failures("127.0.0.7", time.time()) == 4
            # the fifth failure bans the IP; the listener learns which line was targeted
            banned: list[tuple[str, int | None]] = []
            svc.add_ban_listener(lambda b, line_id: banned.append((b.ip, line_id)))
            await sipp(tmp_path, "reg.xml", port, ip="127.0.0.7", password="wrong")
            assert banned == [("127.0.0.7", 1)]

    asyncio.run(main())


def test_untrusted_source_dropped_banned_and_ban_survives_restart(tmp_path: Path) -> None:
    (tmp_path / "reg.xml").write_text(REG_AUTH_XML)

    async def main() -> None:
        async with service(tmp_path, [pbx_line(trusted_ips=("127.0.0.1/32",))]) as (svc, _):
            port = svc.ports["UDP"]
            bans: list[str] = []
            svc.add_ban_listener(lambda b, _line: bans.append(b.ip))
            rc, ok, _failed = await sipp(
                tmp_path, "reg.xml", port, ip="127.0.0.5", calls=6, recv_timeout_ms=1200
            )
            assert ok == 0
            assert rc != 0
            assert bans == ["127.0.0.5"]
            assert svc.bans.is_banned("127.0.0.5", time.time())
            assert svc.stats["dropped_banned"] >= 1
            # the trusted PBX is never banned, even when it gets its password wrong
            rc, ok, failed = await sipp(tmp_path, "reg.xml", port, password="wrong", calls=6)
            assert (ok, failed) == (0, 6)
            assert not svc.bans.is_banned("127.0.0.1", time.time())
            assert svc.bans.failures("127.0.0.1", time.time()) == 0
            assert (await sipp(tmp_path, "reg.xml", port))[1] == 1
        # restart with a line that trusts everybody: the ban alone keeps 127.0.0.5 out
        async with service(tmp_path, [pbx_line()]) as (svc, _):
            port = svc.ports["UDP"]
            assert svc.bans.is_banned("127.0.0.5", time.time())
            rc, ok, _failed = await sipp(
                tmp_path, "reg.xml", port, ip="127.0.0.5", recv_timeout_ms=1200
            )
            assert ok == 0
            assert rc != 0
            assert not svc.line_status(1).registered  # type: ignore[union-attr]
            rc, ok, _failed = await sipp(tmp_path, "reg.xml", port, ip="127.0.0.6")
            assert (rc, ok) == (0, 1)

    asyncio.run(main())


def test_ip_ip_trunks_by_address_and_field_value(tmp_path: Path) -> None:
    (tmp_path / "plain.xml").write_text(uac_xml())
    (tmp_path / "a.xml").write_text(uac_xml("X-Trunk: a"))
    (tmp_path / "b.xml").write_text(uac_xml("X-Trunk: b"))

    async def main() -> None:
        lines = [
            ipip_line(11, "127.0.0.1:5060", "X-Trunk: a"),
            ipip_line(12, "127.0.0.1", "X-Trunk: b"),
        ]
        async with service(tmp_path, lines) as (svc, invites):
            port = svc.ports["UDP"]
            assert (await sipp(tmp_path, "b.xml", port, service_user="100"))[:2] == (0, 1)
            assert (await sipp(tmp_path, "a.xml", port, service_user="100"))[:2] == (0, 1)
            assert [i[0] for i in invites] == [12, 11]
            # no Field:Value: neither trunk takes it
            rc, ok, _ = await sipp(
                tmp_path, "plain.xml", port, service_user="100", recv_timeout_ms=1200
            )
            assert ok == 0
            assert rc != 0
            assert svc.stats["failures"] == 0  # a known peer is never counted
            # another address: silently dropped and counted
            rc, ok, _ = await sipp(
                tmp_path, "a.xml", port, ip="127.0.0.3", service_user="100", recv_timeout_ms=1200
            )
            assert ok == 0
            assert rc != 0
            assert svc.bans.failures("127.0.0.3", time.time()) == 1
            assert len(invites) == 2
            # outgoing INVITEs on a trunk carry its Field:Value
            target = await svc.call_target(12, "200")
            assert target is not None
            assert target.headers == (("X-Trunk", "b"),)
            assert target.peer == Peer("UDP", "127.0.0.1", 5060)
            assert target.request_uri == "sip:200@127.0.0.1"

    asyncio.run(main())


def test_register_flood_is_rate_limited_then_banned(tmp_path: Path) -> None:
    """Unauthenticated REGISTERs (each answered with a challenge) from one source: beyond the
    rate the source gets nothing, and each second of flooding counts towards a ban."""
    (tmp_path / "reg.xml").write_text(REG_AUTH_XML)
    (tmp_path / "reg_probe.xml").write_text(
        REG_AUTH_XML[: REG_AUTH_XML.index("  <send", 300)] + "</scenario>\n"
    )

    async def main() -> None:
        async with service(
            tmp_path, [pbx_line()], rate_limit=(20.0, 20.0), ban_options={"threshold": 2}
        ) as (svc, _):
            port = svc.ports["UDP"]
            _rc, ok, failed = await sipp(
                tmp_path,
                "reg_probe.xml",
                port,
                ip="127.0.0.8",
                calls=600,
                rate=300,
                recv_timeout_ms=1000,
            )
            assert 20 <= ok < 300  # the burst and the refill get their 401, the rest nothing
            assert failed == 600 - ok
            assert svc.stats["rate_limited"] > 0
            assert svc.bans.is_banned("127.0.0.8", time.time())
            # a PBX that registered is not limited: a burst from it all succeeds
            assert (await sipp(tmp_path, "reg.xml", port, ip="127.0.0.9"))[1] == 1
            rc, ok, failed = await sipp(
                tmp_path, "reg.xml", port, ip="127.0.0.9", calls=100, rate=300
            )
            assert (rc, ok, failed) == (0, 100, 0)

    asyncio.run(main())
