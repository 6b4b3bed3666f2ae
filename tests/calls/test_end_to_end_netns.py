"""Calls end to end with real parts: the sandbox's MTProto server, real Telethon clients and
ntgcalls media for the gateway's session and a scripted user, the gateway's SIP service and
media engine, and SIPp or a second SIP user agent as the PBX.

* Telegram → SIP: the user calls the session account; the router INVITEs SIPp's built-in UAS
  (``-rtp_echo``) on an IP ⇿ IP line; the tone the user plays comes back to the user.
* SIP → Telegram: a PBX user agent calls the line for the user's phone; the user answers
  playing a tone; audio is checked both ways; failure codes 404, 603, 480, 503.

Runs only inside ``scripts/netns-run`` (``make test-calls``)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from tests.media.helpers import tone
from tests.sandbox.conftest import ClientFactory, login
from tests.sip.test_sipp import free_port
from tests.telegram.calls.audio import analyse, wait_for_frames
from tgsip.callbridge import CallRouter
from tgsip.config.lines import Codec, LineKind, SipLine
from tgsip.config.sessions import SessionRecord, SessionSettings, SessionState
from tgsip.media import EngineConfig, MediaEngine
from tgsip.sandbox import Sandbox
from tgsip.sandbox.peer import CallPeer
from tgsip.sandbox.peer import tone as peer_tone
from tgsip.sip.call import CallState, SipCall
from tgsip.sip.service import SipService
from tgsip.sip.transaction import Peer
from tgsip.sip.ua import UserAgent
from tgsip.storage import ConfigStore, SecretBox
from tgsip.telegram.calls.media import TelegramMedia
from tgsip.telegram.calls.ports import Recorder
from tgsip.telegram.calls.service import CallService
from tgsip.telegram.messages import attach_incoming

pytestmark = [pytest.mark.netns, pytest.mark.timeout(90)]

GATEWAY_PHONE, USER_PHONE = "+15550101", "+15550202"
SESSION = 1
T = 15.0
SCENARIOS = Path(__file__).parents[1] / "sip" / "scenarios"


@contextlib.asynccontextmanager
async def sipp(args: list[str], cwd: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    """SIPp running for the block; killed (and reaped) if still running at its end."""
    proc = await asyncio.create_subprocess_exec(
        "sipp",
        *args,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
        await asyncio.wait_for(proc.wait(), 10)


@dataclass
class Gateway:
    sandbox: Sandbox
    media: TelegramMedia
    engine: MediaEngine
    sip: SipService
    service: CallService
    router: CallRouter
    store: ConfigStore

    @property
    def sip_port(self) -> int:
        return self.sip.ports["UDP"]

    async def close(self) -> None:
        await self.router.stop()
        await self.service.stop()
        await self.sip.stop(unregister=False)
        await self.media.close()
        self.engine.close()
        self.store.close()


async def make_gateway(
    sandbox: Sandbox,
    make_client: ClientFactory,
    tmp_path: Path,
    line: SipLine,
    ring_timeout: float = 15.0,
) -> Gateway:
    sandbox.create_user(GATEWAY_PHONE.lstrip("+"), "Gateway", username="gateway")
    client = await make_client()
    await login(client, sandbox, GATEWAY_PHONE)
    media = TelegramMedia()
    engine = MediaEngine(EngineConfig(workers=1, port_min=47000, port_max=47999))
    engine.attach()
    sip = SipService("127.0.0.1", udp_port=0, tcp_port=None, rate_limit=None)
    sip.ua.media = engine
    await sip.start()
    await sip.set_lines([line])
    store = ConfigStore.open_sqlite(tmp_path / "gw.db", SecretBox(bytes(32)))
    router = CallRouter(sip, store, group_timeout=10.0)
    service = CallService(client, media, ring_timeout=ring_timeout)
    await service.start()
    router.attach(SESSION, service)
    return Gateway(sandbox, media, engine, sip, service, router, store)


def ip_line(address: str, **kw: object) -> SipLine:
    fields: dict[str, object] = {"number_on_pbx": "100", "dial_rules": (".*=",), **kw}
    return SipLine(
        id=1,
        session_id=SESSION,
        kind=LineKind.IP_IP,
        address=address,
        **fields,  # type: ignore[arg-type]
    )


@pytest_asyncio.fixture
async def user(sandbox: Sandbox) -> AsyncIterator[CallPeer]:
    peer = CallPeer(sandbox, USER_PHONE, first_name="Bob", username="bobby", sample_rate=48000)
    yield peer
    await peer.stop()


def assert_tone(pcm: bytes, rate: int, freq: int, level: float, tol: float = 4.0) -> None:
    got, dbfs = analyse(pcm, rate)
    assert got == pytest.approx(freq, abs=15), (got, dbfs)
    assert dbfs == pytest.approx(level, abs=tol), (got, dbfs)


@pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp (Debian sip-tester) is missing")
async def test_telegram_user_calls_through_to_a_sipp_echo(
    sandbox: Sandbox, make_client: ClientFactory, user: CallPeer, tmp_path: Path
) -> None:
    sipp_port = free_port()
    args = [
        "-sf",
        str(SCENARIOS / "uas_pcma.xml"),
        "-i",
        "127.0.0.1",
        "-p",
        str(sipp_port),
        "-mi",
        "127.0.0.1",
    ]
    args += ["-mp", str(free_port()), "-rtp_echo", "-m", "1", "-nostdin", "-timeout", "40s"]
    async with sipp(args, tmp_path) as proc:
        gw = await make_gateway(
            sandbox,
            make_client,
            tmp_path,
            ip_line(f"127.0.0.1:{sipp_port}", codecs=(Codec.ALAW,)),
        )
        try:
            await echo_call(gw, user)
            assert await asyncio.wait_for(proc.wait(), 20) == 0  # SIPp got the BYE
        finally:
            await gw.close()


async def echo_call(gw: Gateway, user: CallPeer) -> None:
    """The user calls the session account; the PBX echoes; the user hears its 440 Hz."""
    await user.start()
    handle = await asyncio.wait_for(user.call("@gateway"), T)
    await asyncio.wait_for(handle.connected.wait(), T)
    assert gw.router.stats["bridged"] == 1
    await until(lambda: gw.router.active_calls(1) == 1)
    rec: Recorder = user.recorder(handle)
    await wait_for_frames(rec, 100, 10)
    rec.clear()
    await wait_for_frames(rec, 80, 10)
    # The user's 440 Hz at -12 dBFS went Telegram -> SIP (PCMA) -> SIPp's echo -> back.
    assert_tone(rec.pcm(last_seconds=0.5), rec.sample_rate, 440, -12.0)
    handle.hangup()
    end = await handle.wait_ended(T)
    assert end.reason.value == "hangup"
    await until(lambda: gw.router.active_calls(1) == 0)


async def until(pred: Callable[[], bool], timeout: float = T) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not pred():
        assert loop.time() < end, "condition not met in time"
        await asyncio.sleep(0.02)


class Pbx:
    """A second SIP user agent with its own media lines, standing in for the PBX."""

    def __init__(self) -> None:
        self.engine = MediaEngine(EngineConfig(workers=1, port_min=48000, port_max=48999))
        self.ua = UserAgent("127.0.0.1", media=self.engine, codecs=("alaw",))

    async def __aenter__(self) -> Pbx:
        await self.ua.start(udp_port=0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.ua.close()
        self.engine.close()

    async def call(self, gw: Gateway, user: str) -> SipCall:
        return await self.ua.invite(
            f"sip:{user}@127.0.0.1:{gw.sip_port}", Peer("UDP", "127.0.0.1", gw.sip_port)
        )


async def exchange_audio(call: SipCall, seconds: float) -> bytes:
    """Plays 600 Hz into the call and returns what came back, paced at 10 ms."""
    pcm = tone([600.0], int(seconds * 1000))
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    got: list[bytes] = []
    n = int(seconds * 100)
    for i in range(n):
        call.push_pcm(pcm[i * 160 : (i + 1) * 160])
        got.append(call.pull_pcm())
        delay = t0 + (i + 1) * 0.010 - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
    return b"".join(got)


async def test_pbx_calls_a_telegram_user_audio_both_ways(
    sandbox: Sandbox, make_client: ClientFactory, user: CallPeer, tmp_path: Path
) -> None:
    async with Pbx() as pbx:
        gw = await make_gateway(sandbox, make_client, tmp_path, ip_line("127.0.0.1"))
        digits: list[tuple[int, int, str]] = []
        gw.router.add_dtmf_listener(lambda sid, uid, ev: digits.append((sid, uid, ev.digit)))
        try:
            user.source = peer_tone(1000)
            await user.start()
            call = await pbx.call(gw, USER_PHONE)
            assert await call.wait_answer(T)
            assert call.final is not None
            assert call.final.status == 200
            theirs = await asyncio.wait_for(user.incoming.get(), T)
            await asyncio.wait_for(theirs.connected.wait(), T)
            back = await exchange_audio(call, 3.0)
            # The user's 1000 Hz reached the PBX through ntgcalls and the gateway's SIP leg.
            assert_tone(back[-8000:], 8000, 1000, -12.0)
            rec = user.recorder(theirs)
            assert_tone(rec.pcm(last_seconds=0.5), rec.sample_rate, 600, -12.0, tol=5.0)
            # A digit from the PBX (RFC 4733) reaches the router's DTMF listeners.
            for digit in "5#":
                await call.send_dtmf(digit)
                await exchange_audio(call, 0.3)
            await until(lambda: len(digits) == 2)
            assert digits == [(SESSION, user.id, "5"), (SESSION, user.id, "#")]
            await call.hangup()
            end = await theirs.wait_ended(T)
            assert end.reason.value == "hangup"
            assert end.by_remote
            assert end.duration >= 3  # seconds since the media connected
        finally:
            await gw.close()


@pytest.mark.parametrize(
    ("case", "status"),
    [("unknown", 404), ("declines", 603), ("no_answer", 480), ("offline", 503)],
)
async def test_pbx_call_failures(
    sandbox: Sandbox,
    make_client: ClientFactory,
    user: CallPeer,
    tmp_path: Path,
    case: str,
    status: int,
) -> None:
    async with Pbx() as pbx:
        gw = await make_gateway(
            sandbox,
            make_client,
            tmp_path,
            ip_line("127.0.0.1"),
            ring_timeout=3.0 if case == "no_answer" else 15.0,
        )
        try:
            user.answer = {"declines": "decline", "no_answer": "ignore"}.get(  # type: ignore[assignment]
                case, "accept"
            )
            await user.start()
            if case == "offline":
                gw.router.detach(SESSION)
            target = "+15559999" if case == "unknown" else USER_PHONE
            call = await pbx.call(gw, target)
            assert not await call.wait_answer(T)
            assert call.final is not None
            assert call.final.status == status, call.final.reason
        finally:
            await gw.close()


class Phone:
    """A PBX extension: a user agent that rings, answers or refuses every call it gets."""

    def __init__(self, engine: MediaEngine, behaviour: str) -> None:
        self.ua = UserAgent("127.0.0.1", media=engine, codecs=("alaw",))
        self.ua.on_call = self._on_call
        self.behaviour = behaviour
        self.calls: list[SipCall] = []

    def _on_call(self, call: SipCall) -> None:
        self.calls.append(call)
        call.ring()
        if self.behaviour == "answer":
            call.answer()
        elif self.behaviour == "busy":
            call.reject(486, "Busy Here")

    async def start(self) -> str:
        await self.ua.start(udp_port=0)
        return f"127.0.0.1:{self.ua.ports['UDP']}"


@pytest.mark.parametrize(
    ("first", "priorities"),
    [("ring", (0, 0)), ("busy", (0, 1))],
    ids=["parallel-answer-cancels-the-other", "busy-then-next-priority"],
)
async def test_hunting_over_real_user_agents(
    sandbox: Sandbox,
    make_client: ClientFactory,
    user: CallPeer,
    tmp_path: Path,
    first: str,
    priorities: tuple[int, int],
) -> None:
    engine = MediaEngine(EngineConfig(workers=1, port_min=48000, port_max=48999))
    a, b = Phone(engine, first), Phone(engine, "answer")
    try:
        addr_a, addr_b = await a.start(), await b.start()
        line_a = ip_line(addr_a, priority=priorities[0])
        gw = await make_gateway(sandbox, make_client, tmp_path, line_a)
        line_b = SipLine(
            id=2,
            session_id=SESSION,
            kind=LineKind.IP_IP,
            address=addr_b,
            number_on_pbx="200",
            dial_rules=(".*=",),
            priority=priorities[1],
        )
        await gw.sip.update_line(line_b)
        try:
            await user.start()
            handle = await asyncio.wait_for(user.call("@gateway"), T)
            await asyncio.wait_for(handle.connected.wait(), T)
            assert len(a.calls) == 1
            assert len(b.calls) == 1
            assert b.calls[0].invite.request_uri.user == "200"
            assert a.calls[0].invite.request_uri.user == "100"
            # Caller ID and Name by the default templates: the phone is hidden by the user's
            # privacy, so "0{userid}"; "{name_ascii}".
            frm = b.calls[0].invite.from_
            assert frm.uri.user == f"0{user.id}"
            assert frm.display_name == "Bob"
            ended = a.calls[0]
            await asyncio.wait_for(ended.ended.wait(), T)
            assert ended.end_event is not None
            # ring: the gateway cancelled the fork (487); busy: it refused itself (486)
            assert ended.end_event.code == (487 if first == "ring" else 486)
            handle.hangup()
            await asyncio.wait_for(b.calls[0].ended.wait(), T)
            assert b.calls[0].end_event is not None
            assert b.calls[0].end_event.by_peer  # the gateway sent BYE
        finally:
            await gw.close()
    finally:
        await a.ua.close()
        await b.ua.close()
        engine.close()


class Notices:
    """Records what the administrator would be told (the bot's Notifier is tested in tests/bot)."""

    def __init__(self) -> None:
        self.failures: list[tuple[int, int, str]] = []

    async def session_lost(self, session_id: int, detail: str = "", revoked: bool = False) -> int:
        return 0

    async def registration_failed(self, line_id: int, reason: str) -> int:
        return 0

    async def call_failures(self, line_id: int, count: int, last_reason: str) -> int:
        self.failures.append((line_id, count, last_reason))
        return 1

    async def ip_banned(self, line_id: int, ip: str, seconds: int) -> int:
        return 0


@pytest.mark.parametrize("why", ["filtered", "unregistered"])
async def test_no_lines_for_call_discards_and_tells_the_administrator(
    sandbox: Sandbox, make_client: ClientFactory, user: CallPeer, tmp_path: Path, why: str
) -> None:
    if why == "filtered":
        # A filter rule the (empty) candidate never matches: no line is eligible.
        line = ip_line("127.0.0.1:9", dial_rules=("^9",))
    else:  # a PBX -> gateway line whose PBX has not registered
        line = SipLine(
            id=1, session_id=SESSION, kind=LineKind.PBX_TO_GATEWAY, login="pbx1", password="p" * 24
        )
    gw = await make_gateway(sandbox, make_client, tmp_path, line)
    notices = Notices()
    gw.router.notices = notices
    try:
        await user.start()
        for expected in (1, 2):
            handle = await asyncio.wait_for(user.call("@gateway"), T)
            end = await handle.wait_ended(T)
            assert end.by_remote
            assert end.reason.value == "hangup"  # not busy: no line answered 486/600
            assert not handle.connected.is_set()
            loop = asyncio.get_running_loop()
            deadline = loop.time() + T
            while len(notices.failures) < expected and loop.time() < deadline:
                await asyncio.sleep(0.05)
            assert notices.failures[-1] == (1, expected, "No lines for call")
    finally:
        await gw.close()


@pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp (Debian sip-tester) is missing")
async def test_sipp_pbx_calls_a_telegram_user_who_hears_the_echo(
    sandbox: Sandbox, make_client: ClientFactory, user: CallPeer, tmp_path: Path
) -> None:
    gw = await make_gateway(sandbox, make_client, tmp_path, ip_line("127.0.0.1"))
    try:
        user.source = peer_tone(1000)
        await user.start()
        args = ["-sf", str(Path(__file__).parent / "scenarios" / "uac_echo.xml")]
        args += ["-s", USER_PHONE, "-i", "127.0.0.1", "-p", str(free_port())]
        args += ["-mi", "127.0.0.1", "-mp", str(free_port()), "-rtp_echo", "-m", "1"]
        args += ["-nostdin", "-timeout", "30s", f"127.0.0.1:{gw.sip_port}"]
        async with sipp(args, tmp_path) as proc:
            theirs = await asyncio.wait_for(user.incoming.get(), T)
            await asyncio.wait_for(theirs.connected.wait(), T)
            rec = user.recorder(theirs)
            await wait_for_frames(rec, 100, 10)
            rec.clear()
            await wait_for_frames(rec, 80, 10)
            # The user's 1000 Hz went to SIPp over the gateway's SIP leg and came back.
            assert_tone(rec.pcm(last_seconds=0.5), rec.sample_rate, 1000, -12.0)
            end = await theirs.wait_ended(T)  # SIPp's BYE after 4 s
            assert end.reason.value == "hangup"
            assert end.by_remote
            assert await asyncio.wait_for(proc.wait(), 20) == 0
    finally:
        await gw.close()


@pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp (Debian sip-tester) is missing")
@pytest.mark.parametrize("password", ["s3cret-pbx", "wrong"])
async def test_gateway_to_pbx_line_answers_the_invite_challenge(
    sandbox: Sandbox, make_client: ClientFactory, user: CallPeer, tmp_path: Path, password: str
) -> None:
    sipp_port = free_port()
    args = ["-sf", str(Path(__file__).parent / "scenarios" / "uas_auth.xml")]
    args += ["-i", "127.0.0.1", "-p", str(sipp_port), "-mi", "127.0.0.1"]
    args += ["-mp", str(free_port()), "-rtp_echo", "-nostdin", "-timeout", "40s"]
    line = SipLine(
        id=1,
        session_id=SESSION,
        kind=LineKind.GATEWAY_TO_PBX,
        login="gwuser",
        password=password,
        domain=f"127.0.0.1:{sipp_port}",
        number_on_pbx="100",
        dial_rules=(".*=",),
        codecs=(Codec.ALAW,),
    )
    async with sipp(args, tmp_path):
        gw = await make_gateway(sandbox, make_client, tmp_path, line)
        try:
            # The line registers first (SIPp accepts any REGISTER); unregistered lines are
            # skipped by the hunt.
            await until(lambda: getattr(gw.sip.line_status(1), "registered", False))
            if password == "wrong":
                await user.start()
                handle = await asyncio.wait_for(user.call("@gateway"), T)
                end = await handle.wait_ended(T)  # 401, then 403 for the bad credentials
                assert not handle.connected.is_set()
                assert end.by_remote
            else:
                await echo_call(gw, user)
        finally:
            await gw.close()


@pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp (Debian sip-tester) is missing")
async def test_callback_calls_the_user_then_the_number_in_the_message(
    sandbox: Sandbox, make_client: ClientFactory, user: CallPeer, tmp_path: Path
) -> None:
    sipp_port = free_port()
    args = ["-sf", str(SCENARIOS / "uas_pcma.xml"), "-i", "127.0.0.1", "-p", str(sipp_port)]
    args += ["-mi", "127.0.0.1", "-mp", str(free_port()), "-rtp_echo", "-m", "1"]
    args += ["-nostdin", "-timeout", "40s", "-trace_msg"]
    # Digits in the text stay digits (the rules drop everything else).
    line = ip_line(f"127.0.0.1:{sipp_port}", codecs=(Codec.ALAW,), dial_rules=(r"[^\d]=",))
    async with sipp(args, tmp_path) as proc:
        gw = await make_gateway(sandbox, make_client, tmp_path, line)
        try:
            rec = await gw.store.create_session(
                SessionRecord(
                    admin_id=1,
                    phone="15550101",
                    state=SessionState.ACTIVE,
                    settings=SessionSettings(messages_processing=True, callback=True),
                )
            )
            assert rec.id == SESSION
            attach_incoming(gw.service.client, SESSION, gw.router.on_message)
            await user.start()
            account = sandbox.user_by_phone("15550101")
            assert account is not None
            assert user.user is not None
            await user.user.send_message(account, "call 1-2-3 please")
            handle = await asyncio.wait_for(user.incoming.get(), T)  # the gateway calls back
            await asyncio.wait_for(handle.connected.wait(), T)
            await until(lambda: gw.router.active_calls(1) == 1)
            heard = user.recorder(handle)
            await wait_for_frames(heard, 60, 10)
            heard.clear()
            await wait_for_frames(heard, 60, 10)
            assert_tone(heard.pcm(last_seconds=0.5), heard.sample_rate, 440, -12.0)
            handle.hangup()
            await handle.wait_ended(T)
            assert await asyncio.wait_for(proc.wait(), 20) == 0
            trace = "".join(p.read_text(errors="replace") for p in tmp_path.glob("*_messages.log"))
            assert "INVITE sip:123@" in trace
        finally:
            await gw.close()


async def test_pbx_cancel_while_ringing_discards_the_telegram_call_as_missed(
    sandbox: Sandbox, make_client: ClientFactory, user: CallPeer, tmp_path: Path
) -> None:
    async with Pbx() as pbx:
        gw = await make_gateway(sandbox, make_client, tmp_path, ip_line("127.0.0.1"))
        try:
            user.answer = "ignore"
            await user.start()
            call = await pbx.call(gw, USER_PHONE)
            # 180 once the user's device rings (receive_date)
            await until(lambda: call.state is CallState.EARLY)
            theirs = await asyncio.wait_for(user.incoming.get(), T)
            await call.cancel()
            await asyncio.wait_for(call.ended.wait(), T)
            assert call.end_event is not None
            assert call.end_event.code == 487
            end = await theirs.wait_ended(T)
            assert end.reason.value == "missed"
            assert end.by_remote
        finally:
            await gw.close()
