"""Connecting session accounts by code and by code plus 2FA email recovery; the failure paths."""

from __future__ import annotations

import asyncio

from telethon import functions

from tgsip.config.sessions import SessionState
from tgsip.sandbox import Sandbox

from .conftest import TIMEOUT, connect_session


async def test_connect_by_code(sandbox: Sandbox, make_gateway) -> None:
    alice = sandbox.create_user("15550001", "Alice", username="alice")
    gw = await make_gateway()
    done = await connect_session(gw, sandbox, "+1 555 0001")
    rec = done.session
    assert rec.state is SessionState.ACTIVE
    assert rec.tg_user_id == alice.id
    assert rec.username == "alice"
    assert rec.phone == "+15550001"
    assert rec.admin_id == 42
    stored = await gw.store.get_session(rec.id)
    assert stored is not None
    assert stored.state is SessionState.ACTIVE
    assert gw.kinds(rec.id) == ["connected"]
    # The device is named "tgsip gateway" in the account's device list.
    client = gw.manager.client(rec.id)
    auths = await asyncio.wait_for(client(functions.account.GetAuthorizationsRequest()), TIMEOUT)
    current = [a for a in auths.authorizations if a.current]
    assert current[0].device_model == "tgsip gateway"
