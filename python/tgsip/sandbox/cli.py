"""``python -m tgsip.sandbox`` / ``tgsip sandbox``: run the sandbox standalone."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
from pathlib import Path

from tgsip.sandbox.calls import TurnServer
from tgsip.sandbox.sandbox import DEFAULT_API_HASH, DEFAULT_API_ID, Sandbox


def _turn(value: str) -> TurnServer:
    host, _, rest = value.partition(":")
    port, _, rest = rest.partition(":")
    username, _, password = rest.partition(":")
    if not (host and port.isdigit() and 0 < int(port) < 65536 and username and password):
        raise argparse.ArgumentTypeError("expected HOST:PORT:USERNAME:PASSWORD")
    return TurnServer(host, int(port), username, password)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tgsip sandbox", description="Run a local Telegram sandbox.")
    p.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8443, help="MTProto TCP port (default 8443)")
    p.add_argument(
        "--data-dir",
        type=Path,
        default=Path("sandbox-data"),
        help="directory for world.sqlite3 and rsa_key.pem",
    )
    p.add_argument(
        "--user",
        action="append",
        default=[],
        metavar="PHONE:NAME[:USERNAME]",
        help="create this user if missing (repeatable)",
    )
    p.add_argument(
        "--bot-api-port",
        type=int,
        default=None,
        help="also serve the Bot API over HTTP on this port",
    )
    p.add_argument(
        "--bot",
        action="append",
        default=[],
        metavar="USERNAME:NAME",
        help="create this bot if missing and print its token (repeatable)",
    )
    p.add_argument(
        "--reflector-port",
        type=int,
        default=None,
        help="also run the UDP call reflector on this port (0: any free port)",
    )
    p.add_argument(
        "--relay-only",
        action="store_true",
        help="give every call p2p_allowed = false (media through the reflector or TURN)",
    )
    p.add_argument(
        "--turn",
        type=_turn,
        default=None,
        metavar="HOST:PORT:USERNAME:PASSWORD",
        help="list this TURN server in calls (phoneConnectionWebrtc); it is not started",
    )
    p.add_argument(
        "--print-codes",
        action="store_true",
        help="print login codes to stdout (for users with no other session)",
    )
    return p


def instructions(
    sandbox: Sandbox, host: str, port: int, codes_hint: str = "run with --print-codes"
) -> str:
    """How to point an unmodified Telethon client at this sandbox; ``codes_hint`` says how
    to see login codes in the log (the option differs between ``tgsip sandbox`` and
    ``tgsip run``)."""
    pem_path = sandbox.data_dir / "rsa_public.pem"
    return "\n".join(
        [
            f"tgsip sandbox listening on {host}:{port} (dc {sandbox.dc_id})",
            f"RSA key fingerprint: {sandbox.fingerprint} (public key: {pem_path})",
            f"api_id={DEFAULT_API_ID} api_hash={DEFAULT_API_HASH} (any non-empty values work)",
            "Telethon:",
            "    from telethon import TelegramClient",
            "    from telethon.crypto import rsa",
            f"    rsa.add_key(open('{pem_path}').read(), old=False)",
            f"    client = TelegramClient(session, {DEFAULT_API_ID}, '{DEFAULT_API_HASH}')",
            f"    client.session.set_dc({sandbox.dc_id}, '{host}', {port})",
            f"Login codes arrive as messages from user 777000 ({codes_hint} to see them",
            "here too); 2FA recovery codes are in the sandbox's email outbox.",
        ]
    )


async def _run(args: argparse.Namespace) -> int:
    sandbox = Sandbox(args.data_dir)
    for spec in args.user:
        phone, _, rest = spec.partition(":")
        name, _, username = rest.partition(":")
        if sandbox.user_by_phone(phone) is None:
            sandbox.create_user(phone, name or phone, username=username or None)
    (sandbox.data_dir / "rsa_public.pem").write_text(sandbox.public_key_pem)
    bots = []
    for spec in args.bot:
        username, _, name = spec.partition(":")
        bot = sandbox.world.user_by_username(username) or sandbox.create_bot(
            username, name or username
        )
        bots.append(bot)
    port = await sandbox.start(args.host, args.port)
    lines = [instructions(sandbox, args.host, port)]
    if args.bot_api_port is not None:
        api_port = await sandbox.start_bot_api(args.host, args.bot_api_port)
        lines.append(f"Bot API: http://{args.host}:{api_port}/bot<token>/<method>")
        lines.append(
            "    aiogram: AiohttpSession(api=TelegramAPIServer.from_base("
            f"'http://{args.host}:{api_port}'))"
        )
    if args.reflector_port is not None:
        udp_port = await sandbox.start_reflector(args.host, args.reflector_port)
        lines.append(f"call reflector: udp {args.host}:{udp_port}")
    sandbox.turn = args.turn
    sandbox.force_relay = args.relay_only
    if bots:
        tokens = sandbox.data_dir / "bot_tokens.txt"
        fd = os.open(tokens, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.writelines(f"{b.username} {b.bot_token}\n" for b in bots)
        lines.append(f"bot tokens (username token per line): {tokens}")
    if args.print_codes:
        sandbox.on_login_code = lambda phone, code: print(
            f"login code for +{phone}: {code}", flush=True
        )
    print("\n".join(lines), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await sandbox.stop()
    sandbox.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    args = _parser().parse_args(argv)
    return asyncio.run(_run(args))
