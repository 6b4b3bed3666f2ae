"""A gateway → PBX line against a real Kamailio registrar/proxy (Debian ``kamailio``).

Kamailio challenges REGISTER with digest (MD5 or SHA-256, one per configuration), grants at
most 3 s so that our refresh happens within the test, and routes SIPp's INVITE for the AOR
``alice`` to our registered Contact through a record-routing proxy. Loopback only, every
wait bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sip.test_sipp import free_port, run_sipp, screen_counts
from tgsip.config.lines import LineKind, SipLine, Transport
from tgsip.sip.message import Request
from tgsip.sip.registration import RegistrationStatus, RegState
from tgsip.sip.service import SipService
from tgsip.sip.transaction import Peer

KAMAILIO = shutil.which("kamailio") or (
    "/usr/sbin/kamailio" if Path("/usr/sbin/kamailio").exists() else None
)
MODULES = Path("/usr/lib/x86_64-linux-gnu/kamailio/modules")

pytestmark = [
    pytest.mark.peer,
    pytest.mark.skipif(KAMAILIO is None, reason="kamailio (Debian package kamailio) is missing"),
    pytest.mark.skipif(not MODULES.is_dir(), reason=f"kamailio modules not found in {MODULES}"),
    pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp (sip-tester) is missing"),
]

CFG = """#!KAMAILIO
debug=2
log_stderror=yes
children=2
listen=udp:127.0.0.1:{port}
listen=tcp:127.0.0.1:{port}
alias="127.0.0.1:{port}"
mpath="{modules}/"
loadmodule "kex.so"
loadmodule "corex.so"
loadmodule "tm.so"
loadmodule "tmx.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
loadmodule "auth.so"
modparam("auth", "algorithm", "{algorithm}")
modparam("registrar", "min_expires", 1)
modparam("registrar", "max_expires", 3)
modparam("usrloc", "db_mode", 0)

request_route {{
    if (!mf_process_maxfwd_header("10")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
    if (is_method("OPTIONS") && uri==myself && $rU==$null) {{
        sl_send_reply("200", "Keepalive");
        exit;
    }}
    if (is_method("REGISTER")) {{
        if (!pv_www_authenticate("$td", "s3cret-kam", "0")) {{
            www_challenge("$td", "0");
            exit;
        }}
        consume_credentials();
        save("location");
        exit;
    }}
    if (has_totag()) {{
        if (loose_route()) {{
            t_relay();
            exit;
        }}
        if (is_method("ACK")) {{
            if (t_check_trans()) {{
                t_relay();
            }}
            exit;
        }}
        sl_send_reply("404", "Not here");
        exit;
    }}
    if (is_method("CANCEL")) {{
        if (t_check_trans()) {{
            t_relay();
        }}
        exit;
    }}
    if (is_method("INVITE")) {{
        record_route();
    }}
    if (!lookup("location")) {{
        sl_send_reply("404", "Not Found");
        exit;
    }}
    t_relay();
}}
"""

UAC_RR = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="uac_rr">
  <send retrans="500"><![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 8
      a=rtpmap:8 PCMA/8000
  ]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rtd="true" rrs="true"/>
  <send><![CDATA[
      ACK [next_url] SIP/2.0
      [routes]
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>
  <send retrans="500"><![CDATA[
      BYE [next_url] SIP/2.0
      [routes]
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>
  <recv response="200" crlf="true"/>
</scenario>
"""


@contextlib.contextmanager
def kamailio(d: Path, algorithm: str) -> Iterator[int]:
    """Start Kamailio on a free UDP port; yields the port; stops it (bounded)."""
    assert KAMAILIO is not None
    port = _free_udp_and_tcp_port()
    cfg = d / "kamailio.cfg"
    cfg.write_text(CFG.format(port=port, modules=MODULES, algorithm=algorithm))
    check = subprocess.run(
        [KAMAILIO, "-c", "-f", str(cfg)], capture_output=True, text=True, timeout=20, check=False
    )
    assert check.returncode == 0, check.stderr[-2000:]
    (d / "run").mkdir(exist_ok=True)
    log = (d / "kam.log").open("w")
    proc = subprocess.Popen(
        [KAMAILIO, "-DD", "-E", "-f", str(cfg), "-Y", str(d / "run"), "-w", str(d)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_ready(port, proc)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


def _free_udp_and_tcp_port() -> int:
    """A port number free for both UDP and TCP on 127.0.0.1 (at most 50 tries)."""
    for _ in range(50):
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise AssertionError("no port free for both UDP and TCP")


def _wait_ready(port: int, proc: subprocess.Popen[bytes]) -> None:
    """Poll with OPTIONS until Kamailio answers: at most 100 tries of 0.1 s."""
    ping = (
        f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:9;rport;branch=z9hG4bKp\r\n"
        "From: <sip:p@127.0.0.1>;tag=1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: ping\r\n"
        "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(0.1)
        for _ in range(100):
            if proc.poll() is not None:
                raise AssertionError("kamailio exited at start-up")
            s.sendto(ping, ("127.0.0.1", port))
            try:
                if s.recv(4096).startswith(b"SIP/2.0 200"):
                    return
            except TimeoutError:
                continue
    raise AssertionError("kamailio did not answer within 10 s")


@pytest.mark.parametrize(
    ("algorithm", "transport"),
    [("MD5", Transport.UDP), ("SHA-256", Transport.TCP)],
    ids=["md5-udp", "sha256-tcp"],
)
def test_line_registers_refreshes_and_receives_a_call_via_kamailio(
    tmp_path: Path, algorithm: str, transport: Transport
) -> None:
    (tmp_path / "uac_rr.xml").write_text(UAC_RR)

    async def main(kport: int) -> None:
        svc = SipService("127.0.0.1", udp_port=0, tcp_port=0)
        invites: list[tuple[int, Request, Peer]] = []
        svc.on_invite = lambda line_id, req, src: invites.append((line_id, req, src))
        states: list[RegState] = []
        svc.add_line_listener(lambda st: states.append(st.state) if st.state else None)
        await svc.start()
        try:
            line = SipLine(
                id=42,
                session_id=1,
                kind=LineKind.GATEWAY_TO_PBX,
                login="alice",
                password="s3cret-kam",
                domain=f"127.0.0.1:{kport}",
                transport=transport,
            )
            await svc.set_lines([line])
            reg = svc.registration(42)
            assert reg is not None
            # registered, then refreshed at least once (granted 3 s: refresh after 1.5-2.4 s)
            async with asyncio.timeout(10):
                while reg.state is not RegState.REGISTERED or reg.cseq < 4:
                    await asyncio.sleep(0.05)
            assert reg.state is RegState.REGISTERED
            assert reg.expires_at is not None
            assert RegState.FAILED not in states
            st = svc.line_status(42)
            assert st is not None
            assert st.registered
            assert st.contact == reg.contact_user
            # a caller reaches "alice" through Kamailio: the INVITE arrives for line 42
            args = ["-sf", "uac_rr.xml", f"127.0.0.1:{kport}", "-i", "127.0.0.1"]
            args += ["-p", str(free_port()), "-s", "alice", "-m", "1", "-timeout", "8s"]
            args += ["-timeout_error", "-nostdin", "-trace_screen", "-trace_err"]
            rc = await run_sipp(args, tmp_path, 15)
            assert screen_counts(tmp_path) == (1, 0)
            assert rc == 0
            assert [i[0] for i in invites] == [42]
            assert invites[0][1].request_uri.user == reg.contact_user
            assert invites[0][2].transport == transport.value.upper()
            # deleting the line unregisters: Kamailio then has no binding for alice
            await svc.remove_line(42)
            assert reg.done
            assert reg.state is RegState.UNREGISTERED
            for old in tmp_path.glob("*_screen.log"):
                old.unlink()
            args[args.index("-p") + 1] = str(free_port())
            rc = await run_sipp(args, tmp_path, 15)
            assert screen_counts(tmp_path) == (0, 1)  # 404 Not Found from Kamailio
            assert len(invites) == 1
        finally:
            await svc.stop()

    with kamailio(tmp_path, algorithm) as kport:
        asyncio.run(main(kport))


def test_wrong_password_fails_and_backs_off(tmp_path: Path) -> None:
    async def main(kport: int) -> RegistrationStatus:
        svc = SipService("127.0.0.1", udp_port=0, tcp_port=None, registration_backoff=(60, 600))
        await svc.start()
        try:
            line = SipLine(
                id=43,
                session_id=1,
                kind=LineKind.GATEWAY_TO_PBX,
                login="bob",
                password="not-the-password",
                domain="127.0.0.1",
                proxy=f"127.0.0.1:{kport}",
            )
            await svc.set_lines([line])
            reg = svc.registration(43)
            assert reg is not None
            async with asyncio.timeout(5):
                while reg.state is not RegState.FAILED:
                    await asyncio.sleep(0.05)
            loop = asyncio.get_running_loop()
            assert 30 <= reg.deadline - loop.time() <= 60  # first back-off: 60 s x [0.5, 1]
            return reg.status
        finally:
            await svc.stop()

    with kamailio(tmp_path, "MD5") as kport:
        status = asyncio.run(main(kport))
    assert status.state is RegState.FAILED
    assert status.last_error.startswith("401")
