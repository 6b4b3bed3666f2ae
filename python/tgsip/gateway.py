"""``tgsip run``: the gateway process.

It composes the services from the configuration and runs until SIGINT or SIGTERM, then stops
them in reverse order. Today it starts the media engine and, when no Telegram credentials are
configured, the local Telegram sandbox (MTProto and Bot API on loopback); the SIP stack, the
Telegram sessions and the administrator bot join here as they land.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tgsip.config.settings import GatewayConfig

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
    sandbox = None
    if config.telegram.api_id is None:
        from pathlib import Path

        from tgsip.sandbox import Sandbox
        from tgsip.sandbox.cli import instructions

        sandbox = Sandbox(Path(config.data_dir) / "sandbox")
        (sandbox.data_dir / "rsa_public.pem").write_text(sandbox.public_key_pem)
        sb = config.sandbox
        port = await sandbox.start(sb.host, sb.port)
        api_port = await sandbox.start_bot_api(sb.host, sb.bot_api_port)
        log.info("no Telegram credentials: running against the local sandbox")
        for line in instructions(sandbox, sb.host, port).splitlines():
            log.info("sandbox: %s", line)
        log.info("sandbox: Bot API at http://%s:%d/bot<token>/<method>", sb.host, api_port)
    try:
        return await _run_services(config, stop, duration)
    finally:
        if sandbox is not None:
            await sandbox.stop()
            sandbox.close()


async def _run_services(config: GatewayConfig, stop: asyncio.Event, duration: float | None) -> int:
    from pathlib import Path

    from tgsip.media import MediaEngine
    from tgsip.storage import ConfigStore, SecretBox, SecretError, StoreError

    data_dir = Path(config.data_dir)
    try:
        box = SecretBox.from_environment(data_dir)
        store = ConfigStore.open_sqlite(data_dir / "gateway.db", box)
    except (SecretError, StoreError) as e:
        log.error("%s", e)
        return 2
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
        log.info("gateway running; Ctrl-C stops it")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=duration)
        log.info("stopping")
    return 0


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
