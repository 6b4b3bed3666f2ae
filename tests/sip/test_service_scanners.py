"""Real SIP scanners (Debian ``sipvicious``: svmap, svwar) against the service.

With a registrar line open to every address, every REGISTER and INVITE is challenged alike,
so svwar cannot tell existing logins from others, and svmap learns no product name. With
Trusted IPs set, a scanner from elsewhere gets no answer at all and every probe counts
towards a ban.
"""

from __future__ import annotations

import asyncio
import shutil

import pytest

from tgsip.config.lines import LineKind, SipLine
from tgsip.sip.service import SipService

pytestmark = [
    pytest.mark.peer,
    pytest.mark.skipif(
        shutil.which("svwar") is None or shutil.which("svmap") is None,
        reason="svwar/svmap (Debian package sipvicious) are not installed",
    ),
]


async def scan(*args: str, limit: float = 40.0) -> str:
    proc = await asyncio.create_subprocess_exec(
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with asyncio.timeout(limit):
            out, _ = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return out.decode(errors="replace")


def account(**kw: object) -> SipLine:
    return SipLine(
        id=1,
        session_id=1,
        kind=LineKind.PBX_TO_GATEWAY,
        login="105",
        password="p" * 24,
        **kw,  # type: ignore[arg-type]
    )


def test_extensions_cannot_be_enumerated_and_no_product_name_leaks() -> None:
    async def main() -> None:
        # a high threshold: this test is about the answers, not the bans
        svc = SipService("127.0.0.1", udp_port=0, tcp_port=None, ban_options={"threshold": 1000})
        await svc.start()
        try:
            await svc.set_lines([account()])
            port = str(svc.ports["UDP"])
            for method in ("REGISTER", "INVITE"):
                out = await scan("svwar", "-e100-110", "-m", method, "127.0.0.1", "-p", port)
                assert "found nothing" in out, out[-1000:]
                assert "105" not in out.replace(port, "")
            out = await scan("svmap", "127.0.0.1", "-p", port)
            assert f"127.0.0.1:{port}" in out  # it is a SIP device...
            assert "unknown" in out  # ...with no product name
            assert "tgsip" not in out.lower()
        finally:
            await svc.stop()

    asyncio.run(main())


def test_scanner_from_an_untrusted_address_gets_no_answer_and_is_counted() -> None:
    # svwar's -b does not change its source address on loopback (measured), so here the
    # scanners stay on 127.0.0.1 and the line trusts only 127.0.0.2.
    async def main() -> None:
        svc = SipService("127.0.0.1", udp_port=0, tcp_port=None)
        await svc.start()
        try:
            await svc.set_lines([account(trusted_ips=("127.0.0.2/32",))])
            port = str(svc.ports["UDP"])
            out = await scan("svmap", "127.0.0.1", "-p", port, "-t", "0.05")
            assert f"127.0.0.1:{port}" not in out
            out = await scan("svwar", "-e100-110", "-m", "REGISTER", "127.0.0.1", "-p", port)
            assert "105" not in out.replace(port, "")
            assert "authentication request" not in out
            # each unanswered probe counted for the ban table (SIPp tests show the ban itself)
            assert svc.bans.failures("127.0.0.1", svc.clock()) >= 2
        finally:
            await svc.stop()

    asyncio.run(main())
