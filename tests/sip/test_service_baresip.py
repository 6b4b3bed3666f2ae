"""A real baresip as the PBX of a PBX → gateway line: it registers to our registrar with
digest, calls in (challenged, accepted for the line) and is called at its registered contact,
over UDP and over the TCP connection it opened. Loopback only, every wait bounded.

baresip 1.0 knows only MD5 and fails ("Register: Function not implemented") as soon as the
401 also carries a SHA-256 challenge, whatever the order (measured), so these tests run the
registrar with MD5 only.
"""

from __future__ import annotations

import asyncio
import shutil
import struct
import wave
from pathlib import Path

import pytest

from tests.sip.test_sipp import free_port, free_sip_port
from tgsip.config.lines import LineKind, SipLine
from tgsip.sip.message import Request
from tgsip.sip.service import SipService
from tgsip.sip.transaction import Peer

pytestmark = [
    pytest.mark.peer,
    pytest.mark.skipif(shutil.which("baresip") is None, reason="baresip is not installed"),
]

SDP_OFFER = (
    b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 40000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n"
)
LOGIN = "pbxline001"
PASSWORD = "Zq8-fT3x-Lm2p-Rk7w-Hn4v"


def write_config(
    d: Path, sip_port: int, gw_port: int, password: str, transport: str = "udp"
) -> None:
    d.mkdir(parents=True, exist_ok=True)
    with wave.open(str(d / "tone8k.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(struct.pack("<h", 0) * 8000)
    rtp = free_port()
    (d / "config").write_text(
        "\n".join(
            [
                "poll_method epoll",
                f"sip_listen 127.0.0.1:{sip_port}",
                f"sip_trans_def {transport}",
                "call_local_timeout 120",
                "audio_player aubridge,nil",
                f"audio_source aufile,{d / 'tone8k.wav'}",
                f"audio_alert aufile,{d / 'tone8k.wav'}",
                f"rtp_ports {rtp}-{rtp + 10}",
                "rtp_timeout 0",
                "net_interface 127.0.0.1",
                "module_path /usr/lib/baresip/modules",
                "module g711.so",
                "module aufile.so",
                "module aubridge.so",
                "module_app account.so",
                "module_app menu.so",
                "",
            ]
        )
    )
    (d / "accounts").write_text(
        f"<sip:{LOGIN}@127.0.0.1:{gw_port};transport={transport}>;auth_pass={password};regint=60;"
        "answermode=auto;audio_codecs=PCMA\n"
    )
    (d / "contacts").write_text("")


async def wait_for(cond: object, limit: float) -> bool:
    """Poll ``cond()`` every 50 ms for at most ``limit`` seconds."""
    assert callable(cond)
    async with asyncio.timeout(limit):
        while not cond():
            await asyncio.sleep(0.05)
    return True


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_baresip_registers_calls_in_and_is_called(tmp_path: Path, transport: str) -> None:
    tr = transport.upper()

    async def main() -> None:
        svc = SipService("127.0.0.1", udp_port=0, tcp_port=0, registrar_algorithms=("MD5",))
        invites: list[tuple[int, Request, Peer]] = []
        svc.on_invite = lambda line_id, req, src: invites.append((line_id, req, src))
        await svc.start()
        line = SipLine(
            id=5,
            session_id=1,
            kind=LineKind.PBX_TO_GATEWAY,
            login=LOGIN,
            password=PASSWORD,
            trusted_ips=("127.0.0.0/8",),
        )
        await svc.set_lines([line])
        bs_port = free_sip_port()
        write_config(tmp_path / "bs", bs_port, svc.ports[tr], PASSWORD, transport)
        out = (tmp_path / "bs.out").open("wb")
        proc = await asyncio.create_subprocess_exec(
            "baresip",
            "-f",
            str(tmp_path / "bs"),
            "-e",
            f"/dial sip:100@127.0.0.1:{svc.ports[tr]};transport={transport}",
            "-t",
            "8",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            await wait_for(lambda: (st := svc.line_status(5)) is not None and st.registered, 6)
            st = svc.line_status(5)
            assert st is not None
            assert st.source is not None
            assert (st.source.transport, st.source.host) == (tr, "127.0.0.1")
            if tr == "UDP":
                assert st.source.port == bs_port
            else:  # the connection baresip opened, which calls to it must reuse
                assert (tr, "127.0.0.1", st.source.port) in svc.ua.tcp.connections  # type: ignore[union-attr]
            assert f"@127.0.0.1:{bs_port}" in st.contact
            # baresip's own call, digest-challenged, arrives for line 5
            await wait_for(lambda: bool(invites), 6)
            assert invites[0][0] == 5
            assert invites[0][1].get("Authorization") is not None
            # and the gateway calls the registered PBX at its contact (auto-answer)
            target = await svc.call_target(5, "200")
            assert target is not None
            assert target.peer == st.source
            invite = svc.build_invite(target, SDP_OFFER, display_name="Telegram user")
            async with asyncio.timeout(8):
                resp = await svc.ua.request(invite, target.peer)
            assert resp.status == 200  # baresip auto-answered the call sent to its binding
            assert resp.to.uri.user == "200"
            assert svc.stats["failures"] == 0
        finally:
            if proc.returncode is None:
                proc.kill()  # no graceful stop: it could wait on open transactions
            async with asyncio.timeout(10):
                await proc.wait()
            out.close()
            await svc.stop()

    asyncio.run(main())


def test_baresip_with_a_wrong_password_is_refused_and_counted(tmp_path: Path) -> None:
    async def main() -> None:
        svc = SipService("127.0.0.1", udp_port=0, tcp_port=None, registrar_algorithms=("MD5",))
        await svc.start()
        await svc.set_lines(
            [
                SipLine(
                    id=6,
                    session_id=1,
                    kind=LineKind.PBX_TO_GATEWAY,
                    login=LOGIN,
                    password=PASSWORD,
                )
            ]
        )
        write_config(tmp_path / "bs", free_sip_port(), svc.ports["UDP"], "wrong-password")
        proc = await asyncio.create_subprocess_exec(
            "baresip",
            "-f",
            str(tmp_path / "bs"),
            "-t",
            "3",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            await wait_for(lambda: svc.stats["failures"] >= 1, 5)
            st = svc.line_status(6)
            assert st is not None
            assert not st.registered
        finally:
            if proc.returncode is None:
                proc.kill()  # no graceful stop: it could wait on open transactions
            async with asyncio.timeout(10):
                await proc.wait()
            await svc.stop()

    asyncio.run(main())
