"""Fixtures: a sandbox on 127.0.0.1 with a random port, and real Telethon clients for it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from telethon import TelegramClient
from telethon.sessions import StringSession

from tgsip.sandbox import DEFAULT_API_HASH, DEFAULT_API_ID, Sandbox, point_client, trust_key

TIMEOUT = 20.0


@pytest.fixture(scope="session")
def rsa_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One RSA key for the whole run (key generation is the slow part of a first start)."""
    return tmp_path_factory.mktemp("sandbox-key")


@pytest_asyncio.fixture
async def sandbox(tmp_path: Path, rsa_dir: Path) -> AsyncIterator[Sandbox]:
    key = rsa_dir / "rsa_key.pem"
    data = tmp_path / "sandbox"
    data.mkdir()
    if key.exists():
        (data / "rsa_key.pem").write_bytes(key.read_bytes())
    sb = Sandbox(data)
    if not key.exists():
        key.write_bytes((data / "rsa_key.pem").read_bytes())
    trust_key(sb.public_key_pem)
    await sb.start("127.0.0.1", 0)
    yield sb
    await sb.stop()
    sb.close()


ClientFactory = Callable[..., Awaitable[TelegramClient]]


@pytest_asyncio.fixture
async def make_client(sandbox: Sandbox) -> AsyncIterator[ClientFactory]:
    clients: list[TelegramClient] = []

    async def factory(session: str = "", **kwargs: Any) -> TelegramClient:
        client = TelegramClient(
            StringSession(session),
            DEFAULT_API_ID,
            DEFAULT_API_HASH,
            flood_sleep_threshold=0,
            connection_retries=1,
            retry_delay=0,
            timeout=5,
            **kwargs,
        )
        host, port = sandbox.advertised_address
        point_client(client, sandbox.dc_id, host, port)
        await asyncio.wait_for(client.connect(), TIMEOUT)
        clients.append(client)
        return client

    yield factory
    for client in clients:
        await asyncio.wait_for(client.disconnect(), TIMEOUT)


async def login(client: TelegramClient, sandbox: Sandbox, phone: str) -> Any:
    """Sign in by code; returns the signed-in user."""
    await asyncio.wait_for(client.send_code_request(phone), TIMEOUT)
    code = sandbox.last_login_code(phone)
    assert code is not None
    return await asyncio.wait_for(client.sign_in(phone, code), TIMEOUT)
