"""Sign-in by code, sign-up and two-step verification with unmodified Telethon."""

from __future__ import annotations

import asyncio

import pytest
from telethon import errors, functions, types

from tgsip.sandbox import Sandbox

from .conftest import TIMEOUT, ClientFactory, login


async def test_sign_in_by_code(sandbox: Sandbox, make_client: ClientFactory) -> None:
    alice = sandbox.create_user("15550001", "Alice", username="alice")
    client = await make_client()
    assert not await asyncio.wait_for(client.is_user_authorized(), TIMEOUT)
    me = await login(client, sandbox, "+15550001")
    assert me.id == alice.id
    assert me.first_name == "Alice"
    got = await asyncio.wait_for(client.get_me(), TIMEOUT)
    assert got.id == alice.id and got.username == "alice"
    # The code also arrived as a message from the service account 777000.
    history = alice.history(777000)
    assert history and sandbox.last_login_code("15550001") in history[0].text
