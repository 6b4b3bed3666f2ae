"""Two SipService instances on loopback: one is the PBX (registrar line), the other
registers to it (gateway → PBX line). Exercises live line changes end to end: re-register
on new credentials, failure and recovery, password reset on the registrar side, binding
expiry notification, unregister on delete, SHA-256 digest both ways. Every wait bounded."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from pathlib import Path

import msgspec

from tests.sip.test_transport import make_cert
from tgsip.config.lines import LineKind, SipLine, Transport
from tgsip.config.sessions import SessionRecord
from tgsip.sip.auth import DigestClient
from tgsip.sip.message import Request, Response, new_request, parse_message
from tgsip.sip.registration import RegState
from tgsip.sip.service import LineStatus, SipService
from tgsip.sip.transaction import Peer
from tgsip.storage.secretbox import SecretBox
from tgsip.storage.store import ConfigStore


async def until(cond: Callable[[], bool], limit: float = 5.0) -> None:
    """Poll every 20 ms for at most ``limit`` seconds."""
    async with asyncio.timeout(limit):
        while not cond():
            await asyncio.sleep(0.02)


def test_live_line_changes_between_two_services() -> None:
    async def main() -> None:
        pbx = SipService("127.0.0.1", udp_port=0, tcp_port=0, registrar_expires=(1, 2))
        gw = SipService("127.0.0.1", udp_port=0, tcp_port=0, registration_backoff=(0.2, 0.4))
        seen: list[LineStatus] = []
        pbx.add_line_listener(seen.append)
        await pbx.start()
        await gw.start()
        try:
            account = SipLine(
                id=1,
                session_id=1,
                kind=LineKind.PBX_TO_GATEWAY,
                login="acct000001",
                password="first-password-0123456789",
            )
            await pbx.set_lines([account])
            out = SipLine(
                id=2,
                session_id=2,
                kind=LineKind.GATEWAY_TO_PBX,
                login=account.login,
                password=account.password,
                domain=f"127.0.0.1:{pbx.ports['TCP']}",
                transport=Transport.TCP,
            )
            await gw.set_lines([out])
            await until(lambda: pbx.line_status(1).registered)  # type: ignore[union-attr]
            reg = gw.registration(2)
            assert reg is not None
            await until(lambda: reg.state is RegState.REGISTERED)
            st = pbx.line_status(1)
            assert st is not None
            assert st.source is not None
            assert st.source.transport == "TCP"
            assert reg.contact_user in st.contact
            assert reg.last_algorithm == "SHA-256"
            # granted 2 s by the PBX: refreshed well before expiry, binding never lost
            first_cseq = reg.cseq
            await until(lambda: reg.cseq >= first_cseq + 2, 4)
            flags = [s.registered for s in seen if s.line_id == 1]
            assert flags[0] is False  # announced when configured
            assert flags[1:]
            assert all(flags[1:])

            # the administrator resets the password on the PBX side: binding dropped,
            # the gateway's refresh fails and it backs off
            new_pw = "second-password-987654321"
            await pbx.update_line(SipLine(**{**_fields(account), "password": new_pw}))  # type: ignore[arg-type]
            assert not pbx.line_status(1).registered  # type: ignore[union-attr]
            assert seen[-1].registered is False
            await until(lambda: reg.state is RegState.FAILED, 5)
            assert "403" in reg.last_error

            # the gateway gets the new password: a new registration with a new Contact user
            await gw.update_line(SipLine(**{**_fields(out), "password": new_pw}))  # type: ignore[arg-type]
            reg2 = gw.registration(2)
            assert reg2 is not None
            assert reg2 is not reg
            assert reg2.contact_user != reg.contact_user
            await until(lambda: reg2.state is RegState.REGISTERED)
            await until(lambda: pbx.line_status(1).registered)  # type: ignore[union-attr]

            # deleting the line unregisters at once
            await gw.remove_line(2)
            assert reg2.done
            assert not pbx.line_status(1).registered  # type: ignore[union-attr]
            assert seen[-1].registered is False

            # a binding that is not refreshed expires and listeners hear of it
            await gw.set_lines([SipLine(**{**_fields(out), "password": new_pw})])  # type: ignore[arg-type]
            await until(lambda: pbx.line_status(1).registered)  # type: ignore[union-attr]
            await gw.stop(unregister=False)
            n = len(seen)
            await until(lambda: len(seen) > n and not seen[-1].registered, 4)
        finally:
            await gw.stop()
            await pbx.stop()

    asyncio.run(main())


def _fields(line: SipLine) -> dict[str, object]:
    return {f: getattr(line, f) for f in line.__struct_fields__}


def test_ip_ip_outgoing_invite_carries_field_value_to_the_right_trunk() -> None:
    """Gateway A calls over its IP ⇿ IP line; gateway B has two trunks to A's address and
    takes the call on the one whose Field:Value A's INVITE carries."""

    async def main() -> None:
        a = SipService("127.0.0.1", udp_port=0, tcp_port=0)
        b = SipService("127.0.0.1", udp_port=0, tcp_port=0)
        got: list[tuple[int, str]] = []
        peeked: list[int | None] = []

        def on_invite(line_id: int, req: Request, src: Peer) -> None:
            peeked.append(b.line_of(req))  # dispatched: no longer pending
            got.append((line_id, req.from_.uri.user or ""))
            line = b.line(line_id)
            assert line is not None
            assert line.kind is LineKind.IP_IP

        b.on_invite = on_invite
        dispatch = b.ua.on_invite
        assert dispatch is not None

        def before_dispatch(req: Request) -> None:  # a UA hook running before on_invite
            peeked.append(b.line_of(req))
            dispatch(req)

        b.ua.on_invite = before_dispatch
        await a.start()
        await b.start()
        try:
            a_addr = f"127.0.0.1:{a.ports['UDP']}"
            await b.set_lines(
                [
                    SipLine(
                        id=21,
                        session_id=1,
                        kind=LineKind.IP_IP,
                        address=a_addr,
                        field_value="X-Trunk: one",
                    ),
                    SipLine(
                        id=22,
                        session_id=1,
                        kind=LineKind.IP_IP,
                        address=a_addr,
                        field_value="X-Trunk: two",
                    ),
                ]
            )
            for line_id, value in ((31, "two"), (32, "one")):
                await a.update_line(
                    SipLine(
                        id=line_id,
                        session_id=1,
                        kind=LineKind.IP_IP,
                        address=f"127.0.0.1:{b.ports['UDP']}",
                        field_value=f"X-Trunk: {value}",
                    )
                )
                target = await a.call_target(line_id, "555")
                assert target is not None
                invite = a.build_invite(target, b"", display_name='Ann "A"', caller="+4917012345")
                assert invite.get("X-Trunk") == value
                assert invite.from_.display_name == 'Ann "A"'
                async with asyncio.timeout(5):
                    resp = await a.ua.request(invite, target.peer)
                assert resp.status == 200
            assert got == [(22, "+4917012345"), (21, "+4917012345")]
            assert peeked == [22, None, 21, None]
            assert a.stats["failures"] == 0
            assert b.stats["failures"] == 0
        finally:
            await a.stop()
            await b.stop()

    asyncio.run(main())


def test_registration_over_tls(tmp_path: Path) -> None:
    """A gateway → PBX line with transport TLS registers over TLS (certificate checked
    against a CA the test makes) and the PBX side records the TLS flow."""
    cert, key = make_cert(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(cert))

    async def main() -> None:
        pbx = SipService(
            "127.0.0.1",
            udp_port=None,
            tcp_port=None,
            tls_port=0,
            tls_server=server_ctx,
            tls_client=client_ctx,
        )
        gw = SipService(
            "127.0.0.1",
            udp_port=None,
            tcp_port=None,
            tls_port=0,
            tls_server=server_ctx,
            tls_client=client_ctx,
        )
        await pbx.start()
        await gw.start()
        try:
            await pbx.set_lines(
                [
                    SipLine(
                        id=1,
                        session_id=1,
                        kind=LineKind.PBX_TO_GATEWAY,
                        login="tlsaccount",
                        password="tls-password-0123456789",
                    )
                ]
            )
            await gw.set_lines(
                [
                    SipLine(
                        id=2,
                        session_id=1,
                        kind=LineKind.GATEWAY_TO_PBX,
                        login="tlsaccount",
                        password="tls-password-0123456789",
                        domain=f"127.0.0.1:{pbx.ports['TLS']}",
                        transport=Transport.TLS,
                    )
                ]
            )
            reg = gw.registration(2)
            assert reg is not None
            await until(lambda: reg.state is RegState.REGISTERED)
            st = pbx.line_status(1)
            assert st is not None
            assert st.registered
            assert st.source is not None
            assert st.source.transport == "TLS"
            assert st.contact.endswith(";transport=tls")
        finally:
            await gw.stop()
            await pbx.stop()

    asyncio.run(main())


def test_binding_behind_nat_uses_received_and_rport() -> None:
    """A PBX behind NAT registers a private Contact with ``rport``: calls must go to the
    address and port the REGISTER really came from (RFC 3581), not to the Contact."""

    async def main() -> None:
        svc = SipService("127.0.0.1", udp_port=0, tcp_port=None)
        await svc.start()
        loop = asyncio.get_running_loop()
        got: asyncio.Queue[bytes] = asyncio.Queue()

        class Pbx(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[object, ...]) -> None:
                got.put_nowait(data)

        transport, _ = await loop.create_datagram_endpoint(Pbx, local_addr=("127.0.0.1", 0))
        nat_port = transport.get_extra_info("sockname")[1]
        try:
            await svc.set_lines(
                [
                    SipLine(
                        id=1,
                        session_id=1,
                        kind=LineKind.PBX_TO_GATEWAY,
                        login="natpbx0001",
                        password="nat-password-0123456789",
                    )
                ]
            )
            client = DigestClient("natpbx0001", "nat-password-0123456789")
            auth: tuple[tuple[str, str], ...] = ()
            resp: Response | None = None
            for cseq in (1, 2):
                req = new_request(
                    "REGISTER",
                    "sip:127.0.0.1",
                    "<sip:natpbx0001@127.0.0.1>",
                    "<sip:natpbx0001@127.0.0.1>",
                    "nat-reg",
                    cseq,
                    "10.0.0.9",
                    via_port=5099,
                    contact="<sip:pbx@10.0.0.9:5099>",
                    extra_headers=auth,
                )
                transport.sendto(req.to_bytes(), ("127.0.0.1", svc.ports["UDP"]))
                async with asyncio.timeout(5):
                    msg = parse_message(await got.get())
                assert isinstance(msg, Response)
                resp = msg
                if resp.status == 401:
                    value = client.authorize(
                        resp.get_all("WWW-Authenticate"), "REGISTER", "sip:127.0.0.1"
                    )
                    auth = (("Authorization", value),)
            assert resp is not None
            assert resp.status == 200
            st = svc.line_status(1)
            assert st is not None
            assert st.registered
            assert st.contact == "sip:pbx@10.0.0.9:5099"
            assert st.source == Peer("UDP", "127.0.0.1", nat_port)
            target = await svc.call_target(1, "100")
            assert target is not None
            assert target.peer == Peer("UDP", "127.0.0.1", nat_port)
        finally:
            transport.close()
            await svc.stop()

    asyncio.run(main())


def test_service_follows_the_configuration_store(tmp_path: Path) -> None:
    """Lines stored in the real SQLite configuration store are applied at once and every
    later change live: here one service is both the registrar of a PBX → gateway line and,
    through a gateway → PBX line, the PBX registering to it."""

    async def main() -> None:
        store = ConfigStore.open_sqlite(tmp_path / "config.db", SecretBox(b"k" * 32))
        session = await store.create_session(SessionRecord(admin_id=1, phone="+15550001"))
        account = await store.create_line(
            SipLine(
                session_id=session.id,
                kind=LineKind.PBX_TO_GATEWAY,
                login="storeacct1",
                password="store-password-0123456789",
            )
        )
        svc = SipService("127.0.0.1", udp_port=0, tcp_port=None)
        await svc.start()
        try:
            await svc.follow(store)
            assert svc.line_status(account.id) is not None
            out = await store.create_line(
                SipLine(
                    session_id=session.id,
                    kind=LineKind.GATEWAY_TO_PBX,
                    login="storeacct1",
                    password="store-password-0123456789",
                    domain=f"127.0.0.1:{svc.ports['UDP']}",
                )
            )
            await svc.settled()
            await until(lambda: svc.line_status(account.id).registered)  # type: ignore[union-attr]
            st = svc.line_status(out.id)
            assert st is not None
            await until(lambda: svc.line_status(out.id).state is RegState.REGISTERED)  # type: ignore[union-attr]
            # a password reset stored for the account drops the binding at once
            await store.update_line(
                msgspec.structs.replace(account, password="reset-password-987654321")
            )
            await svc.settled()
            assert not svc.line_status(account.id).registered  # type: ignore[union-attr]
            # deleting the session's lines unregisters and forgets them
            assert await store.delete_lines(session.id) == 2
            await svc.settled()
            assert svc.line_status(account.id) is None
            assert svc.line_status(out.id) is None
            assert svc.registration(out.id) is None
        finally:
            await svc.stop()
            store.close()

    asyncio.run(main())


def test_registration_and_ip_ip_over_ipv6() -> None:
    async def main() -> None:
        pbx = SipService("::1", udp_port=0, tcp_port=None)
        gw = SipService("::1", udp_port=0, tcp_port=None)
        got: list[int] = []
        gw.on_invite = lambda line_id, req, src: got.append(line_id)
        await pbx.start()
        await gw.start()
        try:
            await pbx.set_lines(
                [
                    SipLine(
                        id=1,
                        session_id=1,
                        kind=LineKind.PBX_TO_GATEWAY,
                        login="v6acct0001",
                        password="v6-password-0123456789",
                        trusted_ips=("::1/128",),
                    )
                ]
            )
            await gw.set_lines(
                [
                    SipLine(
                        id=2,
                        session_id=1,
                        kind=LineKind.GATEWAY_TO_PBX,
                        login="v6acct0001",
                        password="v6-password-0123456789",
                        domain=f"[::1]:{pbx.ports['UDP']}",
                    ),
                ]
            )
            reg = gw.registration(2)
            assert reg is not None
            await until(lambda: reg.state is RegState.REGISTERED)
            st = pbx.line_status(1)
            assert st is not None
            assert st.registered
            assert st.source == Peer("UDP", "::1", gw.ports["UDP"])
            assert f"@[::1]:{gw.ports['UDP']}" in st.contact
            # the PBX calls the gateway's contact: accepted for line 2
            target = await pbx.call_target(1, "")
            assert target is not None
            async with asyncio.timeout(5):
                resp = await pbx.ua.request(pbx.build_invite(target, b""), target.peer)
            assert resp.status == 200
            assert got == [2]
        finally:
            await gw.stop()
            await pbx.stop()

    asyncio.run(main())
