"""``tgsip demo``: the gateway working offline, narrated step by step on stdout.

It starts the composed gateway (:func:`tgsip.gateway.composed`) against the local sandbox on
free loopback ports in a temporary data directory, then scripts it as an operator would:

1. the sandbox operator opens the administrator bot (``/gateway``), connects a session account
   by phone and login code through the bot's buttons (the sandbox delivers the code) and
   applies a recommended setting;
2. creates a PBX→gateway SIP line through the bot, and a SIP user agent standing in for the
   PBX registers with the login and password the bot shows; the line card shows it registered;
3. inside a network namespace (root and ``unshare``; WebRTC needs 127.0.0.2 on an interface
   other than ``lo``), a scripted Telegram user calls the session account, the PBX answers and
   echoes the audio, and the tone heard back (frequency, level) and the hang-up are reported.

Exit status 0 when every step passed (the call step may be skipped, with the reason), 1 with
the failing step's message otherwise. ``--keep`` leaves the gateway running afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tgsip.gateway import _Gateway
    from tgsip.sandbox import Sandbox, ScriptedUser
    from tgsip.sandbox.world import Message, User
    from tgsip.sip.call import SipCall

TIMEOUT = 20.0
SESSION_PHONE = "15550101"
CALLER_PHONE = "15550202"
_NETNS_ENV = "TGSIP_DEMO_NETNS"


class DemoError(Exception):
    """A demo step failed; the message says what was expected."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declares ``tgsip demo [--keep] [--data-dir DIR] [--no-call] [--verbose]``."""
    parser.add_argument("--keep", action="store_true", help="leave the gateway running afterwards")
    parser.add_argument("--data-dir", help="data directory (default: a temporary one)")
    parser.add_argument("--no-call", action="store_true", help="skip the call step")
    parser.add_argument("--verbose", action="store_true", help="the gateway's log on stderr")


#: The step being narrated (``[N]`` lines set it), named when a step fails.
_STEP: contextvars.ContextVar[str] = contextvars.ContextVar("step", default="start")


def say(text: str) -> None:
    """One narrated line on stdout (flushed at once); ``[N] ...`` lines mark step N."""
    if text.startswith("[") and "]" in text:
        _STEP.set("step " + text[1 : text.index("]")])
    print(text, flush=True)


# -- the operator's chat with the bot ---------------------------------------------------------


class BotChat:
    """A scripted sandbox user's private chat with a bot; waits are bounded by ``timeout``."""

    def __init__(
        self, sandbox: Sandbox, user: ScriptedUser, bot: User, timeout: float = TIMEOUT
    ) -> None:
        self.sandbox = sandbox
        self.user = user
        self.bot = bot
        self.timeout = timeout

    def _incoming(self) -> list[Message]:
        return [m for m in self.user.history(self.bot, limit=50) if not m.out]

    def _top_id(self) -> int:
        msgs = self.user.history(self.bot, limit=1)
        return msgs[0].id if msgs else 0

    async def wait_for(self, pred: Callable[[Message], bool], after: int) -> Message:
        """The oldest bot message newer than ``after`` matching ``pred``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while True:
            changed = self.sandbox.changed(self.user.id)
            for m in reversed(self._incoming()):
                if m.id > after and pred(m):
                    return m
            remaining = deadline - loop.time()
            if remaining <= 0:
                newest = [m.text.splitlines()[0] for m in self._incoming()[:3] if m.text]
                raise DemoError(f"the bot did not answer as expected; its newest: {newest}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)

    async def send(self, text: str, expect: str) -> Message:
        """Sends ``text``; returns the first reply containing ``expect``."""
        before = self._top_id()
        await self.user.send_message(self.bot, text)
        return await self.wait_for(lambda m: expect in m.text, before)

    def current(self, msg: Message) -> Message:
        """``msg`` as it is now (bots edit their messages)."""
        now = self.sandbox.world.message(self.user.id, msg.id)
        if now is None:
            raise DemoError(f"message {msg.id} is gone")
        return now

    async def press(self, msg: Message, text: str) -> Message:
        """Presses the button whose label contains ``text``; returns the message after it."""
        msg = self.current(msg)
        for row in msg.buttons or ():
            for b in row:
                if text in b.text and b.data is not None:
                    query = await self.user.press_button(msg.id, b.data, timeout=self.timeout)
                    if not query.answered:
                        raise DemoError(f"the bot did not answer the press on {b.text!r}")
                    return self.current(msg)
        shown = [b.text for row in msg.buttons or () for b in row]
        raise DemoError(f"no button {text!r} on the bot's message; it shows {shown}")


# -- audio ------------------------------------------------------------------------------------


def analyse(pcm: bytes, rate: int) -> tuple[float, float]:
    """``(frequency in Hz, RMS level in dBFS)`` of a pure tone in s16le mono PCM.

    The frequency counts rising zero crossings; 0 dBFS is a full-scale square wave's RMS.
    """
    n = len(pcm) // 2
    if n == 0:
        return 0.0, -math.inf
    x = struct.unpack(f"<{n}h", pcm[: n * 2])
    rms = math.sqrt(sum(v * v for v in x) / n)
    level = 20 * math.log10(rms / 32767.0) if rms > 0 else -math.inf
    crossings = [i for i in range(1, n) if x[i - 1] < 0 <= x[i]]
    if len(crossings) < 2:
        return 0.0, level
    periods = (crossings[-1] - crossings[0]) / (len(crossings) - 1)
    return rate / periods, level


async def _echo(call: SipCall) -> None:
    """Sends back what the call brings, paced at 10 ms, until it ends."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    i = 0
    while not call.ended.is_set():
        call.push_pcm(call.pull_pcm())
        i += 1
        delay = t0 + i * 0.010 - loop.time()
        await asyncio.sleep(max(delay, 0.0))


# -- network namespace ------------------------------------------------------------------------


def in_call_namespace() -> bool:
    """Whether an interface other than ``lo`` carries 127.0.0.2 (WebRTC ignores ``lo``)."""
    ip = shutil.which("ip")
    if ip is None:
        return False
    out = subprocess.run(
        [ip, "-o", "-4", "addr", "show"], capture_output=True, text=True, check=False, timeout=5
    ).stdout
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 4 and f[1] != "lo" and f[3].startswith("127.0.0.2/"):
            return True
    return False


def _setup_namespace() -> None:
    """Inside a fresh network namespace: ``lo`` up, an ifb (or veth) with 127.0.0.2/32."""

    def ip(*args: str) -> bool:
        return subprocess.run(["ip", *args], capture_output=True, check=False).returncode == 0

    ip("link", "set", "lo", "up")
    dev = "tgifb0"
    if not ip("link", "add", dev, "type", "ifb"):
        dev = "tgveth0"
        ip("link", "add", dev, "type", "veth", "peer", "name", "tgveth1")
        ip("link", "set", "tgveth1", "up")
    ip("link", "set", dev, "up")
    ip("addr", "add", "127.0.0.2/32", "dev", dev)


def _can_unshare() -> bool:
    """Whether this process may create a network namespace (root, ``unshare``, ``ip``)."""
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, check=False)
    return probe.returncode == 0


def _call_skip_reason(args: argparse.Namespace) -> str | None:
    """Why the call step cannot run in this process (``None``: it can)."""
    if args.no_call:
        return "--no-call"
    if args.keep:
        return "--keep: the gateway stays on this host's loopback, outside a call namespace"
    if in_call_namespace():
        return None
    return (
        "calls need a network namespace where 127.0.0.2 is on an interface other than lo "
        "(WebRTC ignores lo); creating one needs root and `unshare -n`, not available here"
    )


# -- the demo ---------------------------------------------------------------------------------


async def _demo(args: argparse.Namespace, data_dir: Path) -> int:
    from tgsip.config.media import EngineConfig
    from tgsip.config.settings import GatewayConfig, SandboxConfig, SipSection
    from tgsip.gateway import GatewayError, composed

    config = GatewayConfig(
        data_dir=str(data_dir),
        log_level="INFO" if args.verbose else "WARNING",
        media=EngineConfig(workers=1),
        sip=SipSection(host="127.0.0.1", udp_port=0, tcp_port=-1),
        sandbox=SandboxConfig(host="127.0.0.1", port=0, bot_api_port=0),
    )
    say(f"tgsip demo: the gateway against the local Telegram sandbox, data in {data_dir}")
    try:
        async with composed(config) as gw:
            await _steps(gw, args)
            if args.keep:
                _print_keep(gw)
                stop = asyncio.Event()
                loop = asyncio.get_running_loop()
                import signal

                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(sig, stop.set)
                await stop.wait()
                say("stopping")
    except Exception as e:
        step = _STEP.get()
        where = "starting the gateway" if step == "start" else step
        if isinstance(e, DemoError | GatewayError):
            say(f"FAILED ({where}): {e}")
        else:  # unexpected: its type too, and the traceback with --verbose
            say(f"FAILED ({where}): {type(e).__name__}: {e}")
            if args.verbose:
                import traceback

                traceback.print_exc()
        return 1
    say("demo finished: every step passed")
    return 0


async def _steps(gw: _Gateway, args: argparse.Namespace) -> None:
    from tgsip.sip.auth import DigestClient
    from tgsip.sip.transaction import Peer
    from tgsip.sip.ua import UserAgent

    sandbox = gw.sandbox
    if sandbox is None or gw.sip is None:
        raise DemoError("the gateway did not start against the sandbox")
    port = sandbox.advertised_address[1]
    say(f"[0] gateway up: sandbox Telegram on 127.0.0.1:{port}, SIP on {gw.sip_address()}")
    bot = sandbox.world.user_by_username(gw.config.bot.sandbox_username)
    op_user = sandbox.user_by_phone("15550000")
    if bot is None or op_user is None:
        raise DemoError("the sandbox bot or operator is missing")
    operator = sandbox.scripted(op_user)
    if sandbox.user_by_phone(SESSION_PHONE) is None:
        sandbox.create_user(SESSION_PHONE, "Demo Gateway", username="demo_gateway")
    chat = BotChat(sandbox, operator, bot)

    say(f"[1] operator +15550000 opens @{bot.username} with /gateway")
    menu = await chat.send("/gateway", "sessions")
    menu = await chat.press(menu, "Connect")
    await chat.press(menu, "tgsip Sessions Storage")
    say(f"[1] connects the session account +{SESSION_PHONE} by phone number")
    keypad = await chat.send("+" + SESSION_PHONE, "keypad")
    code = sandbox.last_login_code(SESSION_PHONE)
    if code is None:
        raise DemoError("the sandbox sent no login code")
    say(f"[1] the sandbox delivered a {len(code)}-digit login code; typed on the bot's keypad")
    before = keypad.id
    for digit in code:
        await chat.press(keypad, digit)
    done = await chat.wait_for(lambda m: "✅ Connected" in m.text, before)
    say(f"[1] bot: {done.text.splitlines()[0]}")
    offer = await chat.wait_for(lambda m: "Recommended Telegram settings" in m.text, before)
    offer = await chat.press(offer, "Allow calls from all users")
    if not any(
        "✅ Allow calls from all users" in b.text for row in offer.buttons or () for b in row
    ):
        raise DemoError("the recommended setting was not applied")
    say("[1] recommended setting applied: ✅ Allow calls from all users")
    (session,) = [s for s in await gw.store.list_sessions() if s.phone.lstrip("+") == SESSION_PHONE]

    say("[2] operator creates a SIP line PBX→tgsip through the bot")
    menu = await chat.send("/gateway", "sessions")
    menu = await chat.press(menu, f"#{session.id}")
    menu = await chat.press(menu, "SIP lines")
    before = chat._top_id()
    card = await chat.press(menu, "PBX→tgsip")
    account = await chat.wait_for(lambda m: m.text.startswith("Account of SIP line"), before)
    fields = dict(line.split(": ", 1) for line in account.text.splitlines() if ": " in line)
    try:
        server, login, password = fields["Server"], fields["Login"], fields["Password"]
    except KeyError as e:
        raise DemoError(f"the account message lacks {e}: {account.text!r}") from None
    say(f"[2] Show account: server {server}, login {login}, password {password}")
    host, sport = server.rsplit(":", 1)
    peer = Peer("UDP", host, int(sport))
    pbx = UserAgent("127.0.0.1", media=gw.engine, codecs=("alaw",))
    calls: list[SipCall] = []
    echoes: set[asyncio.Task[None]] = set()

    def on_call(call: SipCall) -> None:
        calls.append(call)
        call.ring()
        call.answer()
        task = asyncio.get_running_loop().create_task(_echo(call))
        echoes.add(task)
        task.add_done_callback(echoes.discard)

    pbx.on_call = on_call
    await pbx.start(udp_port=0)
    try:
        resp = await asyncio.wait_for(
            pbx.register(
                f"sip:{server}",
                f"sip:{login}@{server}",
                peer,
                credentials=DigestClient(login, password),
            ),
            TIMEOUT,
        )
        pbx_at = f"127.0.0.1:{pbx.ports['UDP']}"
        say(f"[2] the demo PBX ({pbx_at}) registers: {resp.status} {resp.reason}")
        if resp.status != 200:
            raise DemoError(f"REGISTER answered {resp.status} {resp.reason}")
        card = await chat.press(card, "Refresh")
        if "Registered: yes" not in card.text:
            raise DemoError(f"the line card does not show the registration: {card.text!r}")
        say("[2] the line card shows: Registered: yes")
        reason = _call_skip_reason(args)
        if reason is not None:
            say(f"[3] call step skipped: {reason}")
            return
        await _call(sandbox, calls)
    finally:
        for task in list(echoes):
            task.cancel()
        await pbx.close()


async def _call(sandbox: Sandbox, calls: list[SipCall]) -> None:
    from tgsip.sandbox.peer import CallPeer, tone

    say(f"[3] Telegram user +{CALLER_PHONE} calls @demo_gateway playing 440 Hz at -12 dBFS")
    user = CallPeer(sandbox, "+" + CALLER_PHONE, first_name="Bob", source=tone(440, -12.0))
    try:
        await user.start()
        handle = await asyncio.wait_for(user.call("@demo_gateway"), TIMEOUT)
        await asyncio.wait_for(handle.connected.wait(), TIMEOUT)
        if not calls:
            raise DemoError("the call connected but the PBX got no INVITE")
        say(f"[3] the PBX answered the INVITE for {calls[0].invite.request_uri}; it echoes")
        rec = user.recorder(handle)
        loop = asyncio.get_running_loop()
        end = loop.time() + TIMEOUT
        target = rec.received + 150
        while rec.received < target:
            if loop.time() > end:
                raise DemoError("no audio came back from the PBX")
            await asyncio.sleep(0.05)
        freq, level = analyse(rec.pcm(last_seconds=0.5), rec.sample_rate)
        say(f"[3] the caller hears back {freq:.0f} Hz at {level:.1f} dBFS")
        if abs(freq - 440) > 15 or level < -30:
            raise DemoError(f"the echo is not the 440 Hz tone: {freq:.0f} Hz at {level:.1f} dBFS")
        handle.hangup()
        ended = await handle.wait_ended(TIMEOUT)
        await asyncio.wait_for(calls[0].ended.wait(), TIMEOUT)
        say(f"[3] the caller hangs up ({ended.reason.value}); the PBX got the BYE")
    finally:
        await user.stop()


def _print_keep(gw: _Gateway) -> None:
    assert gw.sandbox is not None
    host, port = gw.sandbox.advertised_address
    token = gw.config.bot.token
    bot = gw.sandbox.world.user_by_username(gw.config.bot.sandbox_username)
    if not token and bot is not None:
        token = bot.bot_token or ""
    pem = Path(gw.config.data_dir) / "sandbox" / "rsa_public.pem"
    say("the gateway keeps running (Ctrl-C stops it). Connect a Telethon client:")
    say("  from tgsip.sandbox import trust_key")
    say(f"  trust_key(open({str(pem)!r}).read())")
    say("  client = TelegramClient(StringSession(), 1, '0123456789abcdef0123456789abcdef')")
    say(f"  client.session.set_dc({gw.sandbox.dc_id}, {host!r}, {port})")
    say("  sign in as the operator +15550000 (the code arrives from 777000) and write to the bot")
    say(f"bot token (Bot API at http://127.0.0.1:{gw.api_port}): {token}")


def run(args: argparse.Namespace) -> int:
    """Entry point of ``tgsip demo``."""
    import logging

    if os.environ.get(_NETNS_ENV) == "1":
        _setup_namespace()
    elif _call_skip_reason(args) is not None and not (args.no_call or args.keep) and _can_unshare():
        # A private network namespace for the call step; nothing inside reaches out.
        argv = [sys.executable, "-m", "tgsip", "demo"]
        if args.data_dir:
            argv += ["--data-dir", args.data_dir]
        if args.verbose:
            argv.append("--verbose")
        env = {**os.environ, _NETNS_ENV: "1"}
        return subprocess.run(["unshare", "-n", *argv], env=env, check=False).returncode
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    import uvloop

    if args.data_dir:
        path = Path(args.data_dir)
        path.mkdir(parents=True, exist_ok=True)
        result: int = uvloop.run(_demo(args, path))
        return result
    with tempfile.TemporaryDirectory(prefix="tgsip-demo-") as tmp:
        result = uvloop.run(_demo(args, Path(tmp)))
    return result
