"""``tgsip run``: the gateway process.

It composes the services from the configuration and runs until SIGINT or SIGTERM, then stops
them in reverse order: the configuration store (SQLite, secrets sealed by the SecretBox), the
media engine, the SIP service (``[sip]``; lines applied live from the store's change
listener), the Telegram session manager (``[telegram]``, or the local sandbox when no
credentials are configured), one call service per online session joined by the call router
(:mod:`tgsip.callbridge`), and the administrator bot (polling; its notifier hears session
events, registration failures and bans). Against the sandbox the gateway creates a sandbox
bot and, when ``gateway.admins`` is empty, a sandbox operator account, and logs how to reach
them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiogram import Bot, Dispatcher

    from tgsip.bot import Notifier
    from tgsip.bot.services import LineState
    from tgsip.callbridge import CallRouter
    from tgsip.config.settings import GatewayConfig
    from tgsip.media import MediaEngine
    from tgsip.sandbox import Sandbox
    from tgsip.sip.bans import Ban
    from tgsip.sip.service import LineStatus, SipService
    from tgsip.storage import ConfigStore, SecretBox
    from tgsip.telegram.calls.media import TelegramMedia
    from tgsip.telegram.manager import SessionEvent, SessionManager, TelegramOptions
    from tgsip.telegram.storage import SessionStorages

log = logging.getLogger("tgsip")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declares ``tgsip run [--config FILE] [--for SECONDS]``."""
    parser.add_argument("--config", help="TOML configuration file (default: $TGSIP_CONFIG)")
    parser.add_argument(
        "--for",
        dest="duration",
        type=float,
        default=None,
        help="stop after this many seconds (default: run until interrupted)",
    )


class GatewayError(Exception):
    """The gateway could not start; ``str()`` says why (already a sentence for the operator)."""


async def serve(config_path: str | None, duration: float | None) -> int:
    """Runs the gateway until a signal (or ``duration``) stops it."""
    from tgsip.config.settings import ConfigError, load

    try:
        config = load(config_path)
    except ConfigError as e:
        log.error("%s", e)
        return 2
    logging.getLogger().setLevel(config.log_level)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with composed(config):
            log.info("gateway running; Ctrl-C stops it")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=duration)
            log.info("stopping")
    except GatewayError as e:
        log.error("%s", e)
        return 2
    return 0


@contextlib.asynccontextmanager
async def composed(config: GatewayConfig) -> AsyncIterator[_Gateway]:
    """Every service of the gateway for ``config``, started; stopped in reverse on exit.

    Without Telegram credentials the local sandbox runs too (``gateway.sandbox``). Raises
    :class:`GatewayError` when a service cannot start (nothing is left running then).
    """
    sandbox = None
    api_port = 0
    if config.telegram.api_id is None:
        from tgsip.sandbox import Sandbox, trust_key
        from tgsip.sandbox.cli import instructions

        sandbox = Sandbox(Path(config.data_dir) / "sandbox")
        (sandbox.data_dir / "rsa_public.pem").write_text(sandbox.public_key_pem)
        trust_key(sandbox.public_key_pem)
        sb = config.sandbox
        if sb.print_codes:
            sandbox.on_login_code = lambda phone, code: log.info(
                "sandbox: login code for +%s: %s", phone, code
            )
        port = await sandbox.start(sb.host, sb.port)
        api_port = await sandbox.start_bot_api(sb.host, sb.bot_api_port)
        log.info("no Telegram credentials: running against the local sandbox")
        for line in instructions(
            sandbox, sb.host, port, "set sandbox.print_codes = true"
        ).splitlines():
            log.info("sandbox: %s", line)
        log.info("sandbox: Bot API at http://%s:%d/bot<token>/<method>", sb.host, api_port)
    try:
        async with _services(config, sandbox, api_port) as gw:
            yield gw
    finally:
        if sandbox is not None:
            await sandbox.stop()
            sandbox.close()


@contextlib.asynccontextmanager
async def _services(
    config: GatewayConfig, sandbox: Sandbox | None, api_port: int
) -> AsyncIterator[_Gateway]:
    from tgsip.media import MediaEngine
    from tgsip.storage import ConfigStore, SecretBox, SecretError, StoreError

    data_dir = Path(config.data_dir)
    try:
        box = SecretBox.from_environment(data_dir)
        store = ConfigStore.open_sqlite(data_dir / "gateway.db", box)
    except (SecretError, StoreError) as e:
        raise GatewayError(str(e)) from e
    sessions = await store.list_sessions()
    lines = await store.list_lines()
    log.info(
        "configuration store %s: %d sessions, %d SIP lines",
        data_dir / "gateway.db",
        len(sessions),
        len(lines),
    )
    with contextlib.closing(store), MediaEngine(config.media) as engine:
        engine.attach()
        loads = engine.worker_loads()
        log.info(
            "media engine up: %d workers, RTP on %s ports %d-%d",
            len(loads),
            config.media.bind_ip,
            config.media.port_min,
            config.media.port_max,
        )
        gw = _Gateway(config, store, box, engine, sandbox, api_port)
        try:
            if await gw.start() != 0:
                raise GatewayError(f"SIP: cannot listen on {config.sip.host}")
            yield gw
        finally:
            await gw.stop()


def _sip_service(config: GatewayConfig, data_dir: Path) -> SipService:
    """The SIP service from ``[sip]`` (TLS only with a certificate and key)."""
    import ssl

    from tgsip.sip.service import SipService

    sec = config.sip
    tls_server = tls_client = None
    tls_port: int | None = None
    if sec.tls_cert and sec.tls_key:
        tls_server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls_server.load_cert_chain(sec.tls_cert, sec.tls_key)
        tls_client = ssl.create_default_context()
        tls_port = sec.tls_port if sec.tls_port >= 0 else None
    public = sec.public_address.rsplit(":", 1)[0] if sec.public_address else ""
    if public.startswith("["):
        public = public[1:-1]
    if not public:
        public = "127.0.0.1" if sec.host in ("0.0.0.0", "::") else sec.host
    return SipService(
        sec.host,
        advertised_host=public,
        udp_port=sec.udp_port if sec.udp_port >= 0 else None,
        tcp_port=sec.tcp_port if sec.tcp_port >= 0 else None,
        tls_port=tls_port,
        tls_server=tls_server,
        tls_client=tls_client,
        ban_db=data_dir / "bans.db",
        registrar_algorithms=sec.digest_algorithms,
    )


class _LineStates:
    """The SIP service's line states as the bot reads them."""

    def __init__(self, sip: SipService, router: CallRouter | None) -> None:
        self.sip = sip
        self.router = router

    def line_state(self, line_id: int) -> LineState | None:
        from tgsip.bot.services import LineState
        from tgsip.config.lines import LineKind

        status = self.sip.line_status(line_id)
        if status is None:
            return None
        registered = None if status.kind is LineKind.IP_IP else status.registered
        calls = self.router.active_calls(line_id) if self.router is not None else 0
        return LineState(registered=registered, last_error=status.last_error, active_calls=calls)


class _Gateway:
    """Every service of one gateway process, started in order and stopped in reverse."""

    def __init__(
        self,
        config: GatewayConfig,
        store: ConfigStore,
        box: SecretBox,
        engine: MediaEngine,
        sandbox: Sandbox | None,
        api_port: int,
    ) -> None:
        self.config = config
        self.store = store
        self.box = box
        self.engine = engine
        self.sandbox = sandbox
        self.api_port = api_port
        self.data_dir = Path(config.data_dir)
        self.sip: SipService | None = None
        self.storages: SessionStorages | None = None
        self.manager: SessionManager | None = None
        self.tg_media: TelegramMedia | None = None
        self.router: CallRouter | None = None
        self.bot: Bot | None = None
        self.notifier: Notifier | None = None
        self.polling: asyncio.Task[None] | None = None
        self.dispatcher: Dispatcher | None = None
        self.tasks: set[asyncio.Task[Any]] = set()
        self._stopped = False

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("gateway task failed", exc_info=task.exception())

    async def start(self) -> int:
        from tgsip.callbridge import CallRouter
        from tgsip.telegram.calls.media import TelegramMedia
        from tgsip.telegram.manager import SessionManager
        from tgsip.telegram.storage import SessionStorages

        config = self.config
        sip = _sip_service(config, self.data_dir)
        sip.ua.media = self.engine
        try:
            await sip.start()
        except OSError as e:
            log.error("SIP: cannot listen on %s: %s", config.sip.host, e)
            await sip.stop(unregister=False)
            return 2
        self.sip = sip
        log.info("SIP listening on %s %s", config.sip.host, sip.ports)
        await sip.follow(self.store)  # every stored line now, then each change live

        self.storages = SessionStorages(
            self.data_dir, self.box, config.telegram.postgres_dsn or None
        )
        manager = SessionManager(self.store, self.storages, self._telegram_options())
        self.manager = manager
        self.tg_media = TelegramMedia()
        self.router = CallRouter(
            sip, self.store, messenger=manager.messenger, online=manager.is_online
        )
        manager.add_listener(self._on_session_event)
        manager.add_message_listener(self.router.on_message)
        sip.add_line_listener(self._on_line_status)
        sip.add_ban_listener(self._on_ban)

        await self._start_bot()
        await manager.start()
        return 0

    def _telegram_options(self) -> TelegramOptions:
        from tgsip.sandbox.sandbox import DEFAULT_API_HASH, DEFAULT_API_ID
        from tgsip.telegram.manager import TelegramOptions

        tg = self.config.telegram
        if self.sandbox is not None:
            host, port = self.sandbox.advertised_address
            return TelegramOptions(
                api_id=DEFAULT_API_ID,
                api_hash=DEFAULT_API_HASH,
                server=(self.sandbox.dc_id, host, port),
                request_timeout=10.0,
            )
        assert tg.api_id is not None
        return TelegramOptions(api_id=tg.api_id, api_hash=tg.api_hash or "")

    def sip_address(self) -> str:
        """The SIP address PBXs use (``host:port``): ``sip.public_address`` or the bound one."""
        sec = self.config.sip
        if sec.public_address:
            return sec.public_address
        assert self.sip is not None
        host = self.sip.advertised_host
        port = self.sip.ports.get("UDP") or self.sip.ports.get("TCP") or 5060
        return f"{host}:{port}"

    async def _start_bot(self) -> None:
        from aiogram import Bot
        from aiogram.client.session.aiohttp import AiohttpSession
        from aiogram.client.telegram import TelegramAPIServer

        from tgsip.bot import Notifier, create_dispatcher
        from tgsip.bot.access import Access

        config = self.config
        admins = tuple(config.gateway.admins)
        token = config.bot.token
        session = None
        if self.sandbox is not None:
            sb = self.sandbox
            if not token:
                name = config.bot.sandbox_username
                bot_user = sb.world.user_by_username(name) or sb.create_bot(name, "tgsip admin")
                token = bot_user.bot_token or ""
                log.info("sandbox: the administrator bot is @%s", name)
            api = TelegramAPIServer.from_base(f"http://{config.sandbox.host}:{self.api_port}")
            session = AiohttpSession(api=api)
            if not admins:
                phone = "15550000"
                user = sb.user_by_phone(phone)
                if user is None:
                    op = sb.create_user(phone, "Operator", username="tgsip_operator")
                    uid = op.id
                else:
                    uid = user.id
                admins = (uid,)
                log.info(
                    "sandbox: operator +%s (user id %d) administers this gateway: sign in to "
                    "the sandbox with that phone and write /start to the bot",
                    phone,
                    uid,
                )
        if not token:
            log.warning("no [bot] token configured: the administrator bot is off")
            return
        if not admins:
            log.warning("gateway.admins is empty: nobody can connect a session")
        assert self.manager is not None
        assert self.sip is not None
        bot = Bot(token, session=session) if session is not None else Bot(token)
        self.bot = bot
        dp = create_dispatcher(
            self.store,
            admins,
            sessions=self.manager,
            line_states=_LineStates(self.sip, self.router),
            sip_address=self.sip_address(),
            storages=self.storages.available() if self.storages else (),
        )
        self.notifier = Notifier(bot, self.store, Access(admins), time.time)
        if self.router is not None:
            self.router.notices = self.notifier
        self.dispatcher = dp
        self.polling = asyncio.get_running_loop().create_task(
            dp.start_polling(bot, handle_signals=False, polling_timeout=10)
        )
        log.info("administrator bot polling")

    # -- events -----------------------------------------------------------------------------

    def _on_session_event(self, event: SessionEvent) -> None:
        if self.notifier is not None:
            self.notifier.on_session_event(event)
        if event.kind in ("connected", "reconnected"):
            self._spawn(self._attach_calls(event.session_id))
        elif event.kind in ("revoked", "logged_out", "error"):
            self._spawn(self._detach_calls(event.session_id))

    async def _attach_calls(self, session_id: int) -> None:
        from tgsip.telegram.calls.service import CallService

        assert self.manager is not None
        assert self.router is not None
        assert self.tg_media is not None
        if session_id in self.router.services:
            return
        client = self.manager.client(session_id)
        timeouts = self.manager.call_timeouts(session_id)
        kw: dict[str, Any] = {}
        if timeouts is not None:
            # Telegram's ring limit bounds both directions once the device rings; reaching
            # the callee is the router's 15 s (decision 14).
            kw["answer_timeout"] = timeouts.ring_ms / 1000.0
            kw["ring_timeout"] = timeouts.ring_ms / 1000.0
            self.router.tg_ring_timeout = timeouts.ring_ms / 1000.0
        service = CallService(client, self.tg_media, **kw)
        self.router.attach(session_id, service)
        try:
            await service.start()
        except Exception as exc:
            log.warning("session %d: calls not available: %s", session_id, type(exc).__name__)
            self.router.detach(session_id)
            await service.stop()
            return
        log.info("session %d: calls routed", session_id)

    async def _detach_calls(self, session_id: int) -> None:
        if self.router is None:
            return
        service = self.router.detach(session_id)
        if service is not None:
            await service.stop()

    def _on_line_status(self, status: LineStatus) -> None:
        from tgsip.sip.registration import RegState

        if self.notifier is not None and status.state is RegState.FAILED and status.last_error:
            self._spawn(self.notifier.registration_failed(status.line_id, status.last_error))

    def _on_ban(self, ban: Ban, line_id: int | None) -> None:
        if self.notifier is not None and line_id is not None:
            seconds = max(0, int(ban.until - time.time()))
            self._spawn(self.notifier.ip_banned(line_id, ban.ip, seconds))

    async def stop(self) -> None:
        """Stops what :meth:`start` started, in reverse order (each step bounded); once."""
        if self._stopped:
            return
        self._stopped = True
        if self.polling is not None:
            # stop_polling cancels the per-bot polling task too (cancelling the outer task
            # would leave it polling a closed session).
            if self.dispatcher is not None and not self.polling.done():
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.dispatcher.stop_polling(), 5.0)
            self.polling.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self.polling, 5.0)
        if self.bot is not None:
            with contextlib.suppress(Exception):
                await self.bot.session.close()
        # Calls end while both sides can still say so: Telegram calls are discarded (their
        # sessions still connected), SIP legs get BYE/CANCEL, then the sessions disconnect.
        if self.router is not None:
            for sid in list(self.router.services):
                await self._detach_calls(sid)
            await self.router.stop()
        if self.sip is not None:
            legs = [*self.sip.ua.calls.values()]
            for leg in list(self.sip.ua.pending.values()):
                if leg.role == "uas":  # an INVITE still unanswered
                    with contextlib.suppress(Exception):
                        leg.reject(503, "Service Unavailable")
                else:
                    legs.append(leg)
            if legs:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(
                        asyncio.gather(*(leg.hangup() for leg in legs), return_exceptions=True),
                        5.0,
                    )
        if self.manager is not None:
            await self.manager.stop()
        for task in list(self.tasks):
            task.cancel()
        if self.tg_media is not None:
            await self.tg_media.close()
        if self.sip is not None:
            await self.sip.stop()
        if self.storages is not None:
            await self.storages.close()


def run(args: argparse.Namespace) -> int:
    """Entry point of ``tgsip run``."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    import uvloop

    result: int = uvloop.run(serve(args.config, args.duration))
    return result


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run(argparse.Namespace(config=None, duration=None)))
