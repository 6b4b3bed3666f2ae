"""A gateway-side CallService and a scripted call peer on one sandbox, for call tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest_asyncio
from telethon import TelegramClient

from tests.sandbox.conftest import ClientFactory, login
from tgsip.sandbox import Sandbox
from tgsip.sandbox.peer import CallPeer, tone
from tgsip.telegram.calls.media import TelegramMedia
from tgsip.telegram.calls.ports import FrameSource, Recorder, ScriptedPort, ToneSource
from tgsip.telegram.calls.service import CallHandle, CallService

GATEWAY_PHONE, PEER_PHONE = "+15550101", "+15550202"


@dataclass
class World:
    sandbox: Sandbox
    media: TelegramMedia
    client: TelegramClient
    gateway: CallService
    peer: CallPeer
    incoming: asyncio.Queue[CallHandle]

    async def close(self) -> None:
        await self.gateway.stop()
        await self.peer.stop()
        await self.media.close()


async def make_world(
    sandbox: Sandbox,
    make_client: ClientFactory,
    *,
    versions: tuple[str, ...] | None = None,
    peer_rate: int = 48000,
    peer_source: Callable[[int], FrameSource] | None = None,
    ring_timeout: float = 15.0,
) -> World:
    sandbox.create_user(GATEWAY_PHONE.lstrip("+"), "Gateway", username="gateway")
    media = TelegramMedia()
    client = await make_client()
    await login(client, sandbox, GATEWAY_PHONE)
    incoming: asyncio.Queue[CallHandle] = asyncio.Queue()

    async def on_incoming(handle: CallHandle) -> None:
        await incoming.put(handle)

    gateway = CallService(
        client, media, on_incoming=on_incoming, versions=versions, ring_timeout=ring_timeout
    )
    await gateway.start()
    peer = CallPeer(
        sandbox,
        PEER_PHONE,
        first_name="Bob",
        username="bob",
        source=peer_source or tone(1000),
        sample_rate=peer_rate,
        media=media,
    )
    await peer.start()
    return World(sandbox, media, client, gateway, peer, incoming)


@pytest_asyncio.fixture
async def world(sandbox: Sandbox, make_client: ClientFactory) -> AsyncIterator[World]:
    w = await make_world(sandbox, make_client)
    yield w
    await w.close()


def port(rate: int, freq: int = 440) -> ScriptedPort:
    return ScriptedPort(ToneSource(freq, rate), Recorder(rate))
