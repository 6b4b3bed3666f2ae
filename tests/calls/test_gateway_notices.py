"""The composed gateway tells a line's administrator through the bot when the line's
registration fails: a PBX (our user agent acting as registrar) refuses the gateway's
credentials, and the administrator's chat with the sandbox bot gets the notice."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from tgsip.config.lines import LineKind, SipLine
from tgsip.config.media import EngineConfig
from tgsip.config.sessions import SessionRecord, SessionState
from tgsip.config.settings import GatewayConfig, GatewaySection, SandboxConfig, SipSection
from tgsip.gateway import _Gateway
from tgsip.media import MediaEngine
from tgsip.sandbox import Sandbox
from tgsip.sip.auth import DigestServer
from tgsip.sip.ua import UserAgent
from tgsip.storage import ConfigStore, SecretBox

T = 15.0


async def wait_until(pred: Callable[[], bool], timeout: float = T) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not pred():
        assert loop.time() < end, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_registration_failure_reaches_the_administrator(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    api_port = await sandbox.start_bot_api("127.0.0.1", 0)
    admin = sandbox.create_user("15550001", "Ada", username="ada_admin")
    config = GatewayConfig(
        data_dir=str(tmp_path / "data"),
        media=EngineConfig(workers=1, port_min=47000, port_max=47999),
        sip=SipSection(host="127.0.0.1", udp_port=0, tcp_port=-1),
        sandbox=SandboxConfig(port=0, bot_api_port=0),
        gateway=GatewaySection(admins=(admin.id,)),
    )
    (tmp_path / "data").mkdir()
    box = SecretBox(bytes(range(32)))
    store = ConfigStore.open_sqlite(tmp_path / "data" / "gateway.db", box)
    pbx = UserAgent("127.0.0.1")
    pbx.registrar_auth = (DigestServer(b"k" * 32, "pbx.test"), lambda user, realm: None)
    await pbx.start(udp_port=0)
    with MediaEngine(config.media) as engine:
        engine.attach()
        gw = _Gateway(config, store, box, engine, sandbox, api_port)
        try:
            assert await gw.start() == 0
            rec = await store.create_session(
                SessionRecord(admin_id=admin.id, phone="15550101", state=SessionState.ACTIVE)
            )
            await store.create_line(
                SipLine(
                    session_id=rec.id,
                    kind=LineKind.GATEWAY_TO_PBX,
                    login="gwuser",
                    password="not-known-there",
                    domain=f"127.0.0.1:{pbx.ports['UDP']}",
                )
            )
            bot = sandbox.world.user_by_username(config.bot.sandbox_username)
            assert bot is not None

            def notices() -> list[str]:
                return [m.text for m in admin.history(bot) if "403" in m.text]

            await wait_until(lambda: bool(notices()))
            assert "403 Forbidden" in notices()[0]
        finally:
            await gw.stop()
            await pbx.close()
            store.close()
