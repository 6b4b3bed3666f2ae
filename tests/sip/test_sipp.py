"""Our UA against real SIPp (Debian ``sip-tester``) on 127.0.0.1."""

from __future__ import annotations

import asyncio
import random
import re
import shutil
import socket
from pathlib import Path

import pytest

from tgsip.sip.auth import DigestServer, compute_ha1
from tgsip.sip.transaction import Peer
from tgsip.sip.ua import UserAgent

pytestmark = [
    pytest.mark.peer,
    pytest.mark.skipif(
        shutil.which("sipp") is None, reason="sipp (Debian package sip-tester) is not installed"
    ),
]


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_sip_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1, for a peer that listens on both (such
    as baresip's ``sip_listen``). Taken below the kernel's ephemeral range (32768 and up), so
    the local end of some other test's TCP connection cannot take it before the peer binds."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(10000, 19999)
        try:
            with (
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u,
                socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t,
            ):
                u.bind(("127.0.0.1", port))
                t.bind(("127.0.0.1", port))
        except OSError:
            continue
        return port
    raise RuntimeError("no port free for both UDP and TCP in 10000-19999")


def screen_counts(directory: Path) -> tuple[int, int]:
    """(successful, failed) from SIPp's final ``-trace_screen`` statistics."""
    logs = sorted(directory.glob("*_screen.log"))
    assert logs, "SIPp wrote no screen log"
    text = logs[-1].read_text(errors="replace")
    ok = re.findall(r"Successful call\s*\|\s*\d+\s*\|\s*(\d+)", text)
    bad = re.findall(r"Failed call\s*\|\s*\d+\s*\|\s*(\d+)", text)
    assert ok, text[-2000:]
    assert bad, text[-2000:]
    return int(ok[-1]), int(bad[-1])


async def run_sipp(args: list[str], cwd: Path, limit: float) -> int:
    proc = await asyncio.create_subprocess_exec(
        "sipp",
        *args,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with asyncio.timeout(limit):
            return await proc.wait()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_sipp_uac_against_our_uas(tmp_path: Path, transport: str) -> None:
    calls = 200

    async def main() -> tuple[int, UserAgent]:
        ua = UserAgent("127.0.0.1")
        if transport == "udp":
            await ua.start(udp_port=0)
            port = ua.ports["UDP"]
        else:
            await ua.start(udp_port=None, tcp_port=0)
            port = ua.ports["TCP"]
        args = [
            "-sn",
            "uac",
            f"127.0.0.1:{port}",
            "-i",
            "127.0.0.1",
            "-p",
            str(free_port(socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM)),
            "-m",
            str(calls),
            "-r",
            "100",
            "-l",
            str(calls),
            "-d",
            "0",
            "-timeout",
            "20s",
            "-timeout_error",
            "-nostdin",
            "-trace_screen",
            "-trace_err",
        ]
        if transport == "tcp":
            args += ["-t", "t1"]
        try:
            rc = await run_sipp(args, tmp_path, 30)
        finally:
            await ua.close()
        return rc, ua

    rc, ua = asyncio.run(main())
    ok, failed = screen_counts(tmp_path)
    assert (ok, failed) == (calls, 0)
    assert rc == 0
    assert ua.stats["calls_answered"] == calls
    assert ua.stats["calls_ended"] == calls
    assert not ua.calls


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_our_uac_against_sipp_uas(tmp_path: Path, transport: str) -> None:
    calls = 5
    sipp_port = free_port(socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM)

    async def main() -> tuple[int, list[int], list[int]]:
        ua = UserAgent("127.0.0.1")
        if transport == "udp":
            await ua.start(udp_port=0)
        else:
            await ua.start(udp_port=None, tcp_port=0)
        args = ["-sn", "uas", "-i", "127.0.0.1", "-p", str(sipp_port), "-m", str(calls)]
        args += ["-timeout", "20s", "-nostdin", "-trace_screen", "-trace_err"]
        if transport == "tcp":
            args += ["-t", "t1"]
        sipp = asyncio.ensure_future(run_sipp(args, tmp_path, 30))
        peer = Peer(transport.upper(), "127.0.0.1", sipp_port)
        finals: list[int] = []
        byes: list[int] = []
        try:
            # SIPp needs a moment to bind; retry the first INVITE a bounded number of times.
            for i in range(calls):
                for _attempt in range(20):
                    try:
                        call = await ua.invite(f"sip:service@127.0.0.1:{sipp_port}", peer)
                        break
                    except OSError:
                        await asyncio.sleep(0.1)
                else:
                    raise AssertionError("could not reach SIPp")
                answered = await call.wait_answer(15)
                assert call.final is not None
                if call.final.status == 408 and i == 0 and transport == "udp":
                    raise AssertionError("SIPp did not answer")
                finals.append(call.final.status)
                if answered:
                    byes.append((await ua.bye(call)).status)
            rc = await sipp
        finally:
            await ua.close()
            if not sipp.done():
                sipp.cancel()
        return rc, finals, byes

    rc, finals, byes = asyncio.run(main())
    assert finals == [200] * calls
    assert byes == [200] * calls
    assert rc == 0
    ok, failed = screen_counts(tmp_path)
    assert (ok, failed) == (calls, 0)


REG_AUTH_XML = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="reg_auth">
  <send retrans="500">
    <![CDATA[
      REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:[service]@[remote_ip]>;tag=[pid]SIPpTag[call_number]
      To: <sip:[service]@[remote_ip]>
      Call-ID: [call_id]
      CSeq: 1 REGISTER
      Contact: <sip:[service]@[local_ip]:[local_port]>
      Expires: 60
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="401" auth="true"/>
  <send retrans="500">
    <![CDATA[
      REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:[service]@[remote_ip]>;tag=[pid]SIPpTag[call_number]
      To: <sip:[service]@[remote_ip]>
      Call-ID: [call_id]
      CSeq: 2 REGISTER
      Contact: <sip:[service]@[local_ip]:[local_port]>
      [authentication]
      Expires: 60
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
</scenario>
"""


@pytest.mark.parametrize(("password", "expect_ok"), [("s3cret-pass", True), ("wrong", False)])
def test_sipp_register_md5_digest(tmp_path: Path, password: str, expect_ok: bool) -> None:
    """SIPp answers our MD5 challenge (it cannot do SHA-256, sip.md §6.2)."""
    (tmp_path / "reg_auth.xml").write_text(REG_AUTH_XML)
    server = DigestServer(b"0123456789abcdef0123", "tgsip.test", algorithms=("MD5",))

    def lookup(user: str, algorithm: str) -> str | None:
        return (
            compute_ha1(user, "tgsip.test", "s3cret-pass", algorithm) if user == "alice" else None
        )

    async def main() -> tuple[int, UserAgent]:
        ua = UserAgent("127.0.0.1")
        ua.registrar_auth = (server, lookup)
        await ua.start(udp_port=0)
        args = ["-sf", "reg_auth.xml", f"127.0.0.1:{ua.ports['UDP']}", "-i", "127.0.0.1"]
        args += ["-p", str(free_port()), "-s", "alice", "-au", "alice", "-ap", password]
        args += ["-m", "20", "-r", "50", "-timeout", "15s", "-timeout_error", "-nostdin"]
        args += ["-trace_screen", "-trace_err"]
        try:
            rc = await run_sipp(args, tmp_path, 25)
        finally:
            await ua.close()
        return rc, ua

    rc, ua = asyncio.run(main())
    ok, failed = screen_counts(tmp_path)
    if expect_ok:
        assert (ok, failed) == (20, 0)
        assert rc == 0
        assert "sip:alice@127.0.0.1" in ua.registrations
    else:
        assert (ok, failed) == (0, 20)  # every attempt got 403 instead of 200
        assert rc != 0
        assert ua.registrations == {}


def test_sipp_uac_with_packet_loss_exercises_retransmissions(tmp_path: Path) -> None:
    """SIPp loses 10 % of its messages: our 2xx retransmission (until ACK) and the server
    transactions' answers to retransmitted requests must still complete every call."""
    calls = 60

    async def main() -> tuple[int, UserAgent]:
        ua = UserAgent("127.0.0.1")
        await ua.start(udp_port=0)
        args = ["-sn", "uac", f"127.0.0.1:{ua.ports['UDP']}", "-i", "127.0.0.1"]
        args += ["-p", str(free_port()), "-m", str(calls), "-r", "60", "-l", str(calls)]
        args += ["-d", "0", "-lost", "10", "-timeout", "25s", "-timeout_error", "-nostdin"]
        args += ["-trace_screen", "-trace_err"]
        try:
            rc = await run_sipp(args, tmp_path, 35)
        finally:
            await ua.close()
        return rc, ua

    rc, ua = asyncio.run(main())
    ok, failed = screen_counts(tmp_path)
    assert (ok, failed) == (calls, 0)
    assert rc == 0
    text = sorted(tmp_path.glob("*_screen.log"))[-1].read_text(errors="replace")
    # SIPp's message table: name, count, retransmissions, timeouts, [unexpected,] lost
    rows = {
        m.group(1): [int(x) for x in m.group(2).split()]
        for m in re.finditer(r"^\s+(INVITE|ACK|BYE) -+>\s+((?:\d+\s+)+)$", text, re.M)
    }
    assert set(rows) == {"INVITE", "ACK", "BYE"}, text[-3000:]
    invite_retrans, bye_retrans, ack_lost = rows["INVITE"][1], rows["BYE"][1], rows["ACK"][-1]
    assert invite_retrans + bye_retrans + ack_lost > 0  # loss really happened
    if ack_lost:
        assert ua.stats["2xx_retransmissions"] > 0  # our 2xx went again until an ACK came
    assert ua.stats["calls_answered"] == calls
