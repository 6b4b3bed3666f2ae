"""Scripted sandbox users with real call media.

A :class:`CallPeer` is a sandbox user that signs in with its own in-process Telethon client and
places or answers private calls through :class:`~tgsip.telegram.calls.service.CallService`,
so its media is a real ntgcalls peer: it plays a tone or a WAV file and records what it hears.
WebRTC needs a non-loopback interface carrying a loopback address (``scripts/netns-run``).

    async with CallPeer(sandbox, "+15550002", username="bob", answer="accept") as bob:
        handle = await bob.call("@alice")
        await handle.connected.wait()
        ...
        bob.recorder(handle).pcm()
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from telethon import TelegramClient  # type: ignore[import-untyped]
from telethon.sessions import StringSession  # type: ignore[import-untyped]

from tgsip.sandbox.client import point_client, trust_key
from tgsip.sandbox.sandbox import DEFAULT_API_HASH, DEFAULT_API_ID, Sandbox, ScriptedUser
from tgsip.telegram.calls.media import TelegramMedia
from tgsip.telegram.calls.ports import (
    FrameSource,
    Recorder,
    ScriptedPort,
    ToneSource,
    WavSource,
)
from tgsip.telegram.calls.service import CallHandle, CallService

Answer = Literal["accept", "decline", "ignore"]
TIMEOUT = 20.0


def tone(frequency: int, dbfs: float = -12.0) -> Callable[[int], FrameSource]:
    """A source factory playing a tone at the call's rate."""
    return lambda rate: ToneSource(frequency, rate, dbfs)


def wav(path: Path | str, *, loop: bool = True) -> Callable[[int], FrameSource]:
    """A source factory playing a mono 16-bit WAV file (its rate must be the call's rate)."""

    def make(rate: int) -> FrameSource:
        src = WavSource(path, loop=loop)
        if src.sample_rate != rate:
            raise ValueError(f"{path} is {src.sample_rate} Hz, the call runs at {rate} Hz")
        return src

    return make


class CallPeer:
    """A sandbox user that makes and takes calls with real media.

    ``answer`` decides incoming calls: ``accept`` (with a new port playing ``source``),
    ``decline`` (busy) or ``ignore`` (let it ring). Every call's handle is put on
    :attr:`incoming` (incoming ones) or returned by :meth:`call`; :meth:`port` gives its
    :class:`~tgsip.telegram.calls.ports.ScriptedPort`. ``media`` may be shared with other peers
    of the process (one ntgcalls instance); by default the peer makes its own.
    """

    def __init__(
        self,
        sandbox: Sandbox,
        phone: str,
        *,
        first_name: str = "Peer",
        username: str | None = None,
        source: Callable[[int], FrameSource] | None = None,
        sample_rate: int = 48000,
        answer: Answer = "accept",
        media: TelegramMedia | None = None,
        versions: tuple[str, ...] | None = None,
        ring_timeout: float = 15.0,
    ) -> None:
        self.sandbox = sandbox
        self.phone = phone
        self.first_name = first_name
        self.username = username
        self.source = source or tone(440)
        self.sample_rate = sample_rate
        self.answer = answer
        self.versions = versions
        self.ring_timeout = ring_timeout
        self._own_media = media is None
        self._media = media
        self.user: ScriptedUser | None = None
        self.client: Any = None
        self.service: CallService | None = None
        self.incoming: asyncio.Queue[CallHandle] = asyncio.Queue()
        self._ports: dict[int, ScriptedPort] = {}

    @property
    def id(self) -> int:
        """The sandbox user id."""
        assert self.user is not None, "start() first"
        return self.user.id

    @property
    def media(self) -> TelegramMedia:
        """The ntgcalls instance the peer uses."""
        assert self._media is not None, "start() first"
        return self._media

    async def start(self) -> CallPeer:
        """Creates the user if needed, signs the client in by code, starts the call service."""
        existing = self.sandbox.user_by_phone(self.phone)
        if existing is not None:
            self.user = self.sandbox.scripted(existing)
        else:
            self.user = self.sandbox.create_user(self.phone, self.first_name, self.username)
        trust_key(self.sandbox.public_key_pem)
        client = TelegramClient(
            StringSession(),
            DEFAULT_API_ID,
            DEFAULT_API_HASH,
            flood_sleep_threshold=0,
            connection_retries=1,
            retry_delay=0,
            timeout=5,
        )
        host, port = self.sandbox.advertised_address
        point_client(client, self.sandbox.dc_id, host, port)
        await asyncio.wait_for(client.connect(), TIMEOUT)
        self.client = client
        await asyncio.wait_for(client.send_code_request(self.phone), TIMEOUT)
        code = self.sandbox.last_login_code(self.phone)
        if code is None:
            raise RuntimeError(f"the sandbox sent no login code to {self.phone}")
        await asyncio.wait_for(client.sign_in(self.phone, code), TIMEOUT)
        if self._media is None:
            self._media = TelegramMedia()
        self.service = CallService(
            client,
            self._media,
            on_incoming=self._on_incoming,
            ring_timeout=self.ring_timeout,
            versions=self.versions,
        )
        await self.service.start()
        return self

    def new_port(self) -> ScriptedPort:
        """A port playing the peer's source and recording into a fresh recorder."""
        return ScriptedPort(self.source(self.sample_rate), Recorder(self.sample_rate))

    def port(self, handle: CallHandle) -> ScriptedPort:
        """The port of one of the peer's calls."""
        return self._ports[id(handle)]

    def recorder(self, handle: CallHandle) -> Recorder:
        """What the peer heard in that call."""
        return self.port(handle).recorder

    async def call(self, target: int | str) -> CallHandle:
        """Calls ``target`` (user id, ``"@username"`` or ``"+phone"``)."""
        assert self.service is not None, "start() first"
        port = self.new_port()
        handle = await self.service.call(target, port)
        self._ports[id(handle)] = port
        return handle

    async def _on_incoming(self, handle: CallHandle) -> None:
        if self.answer == "accept":
            port = self.new_port()
            self._ports[id(handle)] = port
            await handle.accept(port)
        elif self.answer == "decline":
            handle.decline()
        await self.incoming.put(handle)

    async def stop(self) -> None:
        """Hangs up, signs nothing out (the sandbox keeps the user), disconnects."""
        if self.service is not None:
            await self.service.stop()
            self.service = None
        if self._own_media and self._media is not None:
            await self._media.close()
            self._media = None
        if self.client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.client.disconnect(), TIMEOUT)
            self.client = None

    async def __aenter__(self) -> CallPeer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


__all__ = ["CallPeer", "tone", "wav"]
