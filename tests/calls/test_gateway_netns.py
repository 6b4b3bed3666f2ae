"""The composed gateway (what ``tgsip run`` starts) carries a call: a session connected through
the login flow gets its call service, a line saved in the store reaches the SIP service live,
and a Telegram user's call to the session account is answered by a PBX user agent.

Runs only inside ``scripts/netns-run`` (``make test-calls``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.calls.test_end_to_end_netns import Phone
from tgsip.config.lines import LineKind, SipLine
from tgsip.config.media import EngineConfig
from tgsip.config.sessions import StorageKind
from tgsip.config.settings import GatewayConfig, SandboxConfig, SipSection
from tgsip.gateway import _Gateway
from tgsip.media import MediaEngine
from tgsip.sandbox import Sandbox
from tgsip.sandbox.peer import CallPeer
from tgsip.storage import ConfigStore, SecretBox
from tgsip.telegram.login import Connected

pytestmark = [pytest.mark.netns, pytest.mark.timeout(90)]

T = 15.0


async def wait_until(pred: Callable[[], bool], timeout: float = T) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not pred():
        assert loop.time() < end, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_composed_gateway_routes_a_call(sandbox: Sandbox, tmp_path: Path) -> None:
    api_port = await sandbox.start_bot_api("127.0.0.1", 0)
    account = sandbox.create_user("15550101", "Gateway", username="gateway")
    config = GatewayConfig(
        data_dir=str(tmp_path / "data"),
        media=EngineConfig(workers=1, port_min=47000, port_max=47999),
        sip=SipSection(host="127.0.0.1", udp_port=0, tcp_port=-1),
        sandbox=SandboxConfig(port=0, bot_api_port=0),
    )
    (tmp_path / "data").mkdir()
    box = SecretBox(bytes(range(32)))
    store = ConfigStore.open_sqlite(tmp_path / "data" / "gateway.db", box)
    pbx_engine = MediaEngine(EngineConfig(workers=1, port_min=48000, port_max=48999))
    phone = Phone(pbx_engine, "answer")
    user = CallPeer(sandbox, "+15550202", first_name="Bob", username="bobby")
    with MediaEngine(config.media) as engine:
        engine.attach()
        gw = _Gateway(config, store, box, engine, sandbox, api_port)
        try:
            assert await gw.start() == 0
            assert gw.manager is not None
            assert gw.router is not None
            assert gw.sip is not None
            assert gw.bot is not None  # the sandbox bot polls
            flow = gw.manager.begin_login(4242, StorageKind.EMBEDDED)
            await asyncio.wait_for(flow.submit_phone("+15550101"), T)
            code = sandbox.last_login_code("15550101")
            assert code is not None
            done = await asyncio.wait_for(flow.submit_code(code), T)
            assert isinstance(done, Connected), done
            sid = done.session.id
            router = gw.router
            await wait_until(lambda: sid in router.services)
            # A line saved in the store reaches the SIP service through the change listener.
            addr = await phone.start()
            line = await store.create_line(
                SipLine(
                    session_id=sid,
                    kind=LineKind.IP_IP,
                    address=addr,
                    number_on_pbx="100",
                    dial_rules=(".*=",),
                )
            )
            sip = gw.sip
            await wait_until(lambda: sip.line(line.id) is not None)
            await user.start()
            handle = await asyncio.wait_for(user.call("@gateway"), T)
            await asyncio.wait_for(handle.connected.wait(), T)
            assert len(phone.calls) == 1
            assert phone.calls[0].invite.request_uri.user == "100"
            handle.hangup()
            await asyncio.wait_for(phone.calls[0].ended.wait(), T)
            # A deleted line is gone from the SIP service too.
            await store.delete_line(line.id)
            await wait_until(lambda: sip.line(line.id) is None)
            assert account.id == done.session.tg_user_id
            # A call up while the gateway stops ends on both sides.
            line = await store.create_line(
                SipLine(
                    session_id=sid,
                    kind=LineKind.IP_IP,
                    address=addr,
                    number_on_pbx="101",
                    dial_rules=(".*=",),
                )
            )
            await wait_until(lambda: sip.line(line.id) is not None)
            handle = await asyncio.wait_for(user.call("@gateway"), T)
            await asyncio.wait_for(handle.connected.wait(), T)
            await gw.stop()
            end = await handle.wait_ended(T)
            assert end.by_remote
            await asyncio.wait_for(phone.calls[1].ended.wait(), T)
            assert phone.calls[1].end_event is not None
            assert phone.calls[1].end_event.by_peer  # BYE from the gateway
        finally:
            await user.stop()
            await gw.stop()
            await phone.ua.close()
            pbx_engine.close()
            store.close()
