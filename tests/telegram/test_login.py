"""Connecting session accounts by code and by code plus 2FA email recovery; the failure paths."""

from __future__ import annotations

import asyncio

from telethon import functions

from tgsip.config.sessions import SessionState
from tgsip.sandbox import Sandbox
from tgsip.telegram.login import (
    CodeSent,
    Connected,
    Failed,
    LoginFailure,
    LoginFlow,
    RecoveryStarted,
)
from tgsip.telegram.manager import CallTimeouts

from .conftest import TIMEOUT, Gateway, connect_session


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
    # The call timeouts published in help.getConfig (telegram_calls.md section 1.4).
    assert gw.manager.call_timeouts(rec.id) == CallTimeouts(
        receive_ms=20000, ring_ms=90000, connect_ms=30000, packet_ms=10000
    )
    # The device is named "tgsip gateway" in the account's device list.
    client = gw.manager.client(rec.id)
    auths = await asyncio.wait_for(client(functions.account.GetAuthorizationsRequest()), TIMEOUT)
    current = [a for a in auths.authorizations if a.current]
    assert current[0].device_model == "tgsip gateway"


async def test_connect_with_2fa_by_email_recovery(sandbox: Sandbox, make_gateway) -> None:
    bob = sandbox.create_user("15550002", "Bob")
    sandbox.set_password(bob, "secret", hint="h", email="bob@example.org")
    gw = await make_gateway()
    flow = gw.manager.begin_login(7)
    assert isinstance(await flow.submit_phone("+15550002"), CodeSent)
    code = sandbox.last_login_code("15550002")
    assert code is not None
    step = await asyncio.wait_for(flow.submit_code(code), TIMEOUT)
    assert isinstance(step, RecoveryStarted)
    assert step.email_pattern == "b***@example.org"
    mails = sandbox.emails("bob@example.org")
    assert len(mails) == 1
    wrong = "000000" if mails[0].code != "000000" else "111111"
    bad = await asyncio.wait_for(flow.submit_recovery_code(wrong), TIMEOUT)
    assert isinstance(bad, Failed)
    assert bad.reason is LoginFailure.RECOVERY_CODE_INVALID
    assert bad.can_retry
    done = await asyncio.wait_for(flow.submit_recovery_code(mails[0].code), TIMEOUT)
    assert isinstance(done, Connected)
    assert done.password_removed
    assert done.session.tg_user_id == bob.id
    assert not sandbox.world.user_by_id(bob.id).has_password
    await gw.wait_for(lambda: gw.manager.is_online(done.session.id))


async def _failed_flow(gw: Gateway, phone: str) -> tuple[LoginFlow, Failed | CodeSent]:
    flow = gw.manager.begin_login(7)
    step = await asyncio.wait_for(flow.submit_phone(phone), TIMEOUT)
    return flow, step


async def test_2fa_without_recovery_email(sandbox: Sandbox, make_gateway) -> None:
    carol = sandbox.create_user("15550003", "Carol")
    sandbox.set_password(carol, "secret")
    gw = await make_gateway()
    flow, step = await _failed_flow(gw, "+15550003")
    assert isinstance(step, CodeSent)
    code = sandbox.last_login_code("15550003")
    assert code is not None
    failed = await asyncio.wait_for(flow.submit_code(code), TIMEOUT)
    assert isinstance(failed, Failed)
    assert failed.reason is LoginFailure.NO_RECOVERY_EMAIL
    assert not failed.can_retry
    assert "recovery email" in failed.message
    assert flow.finished
    assert await gw.store.list_sessions() == []  # the pending record is gone
    again = await asyncio.wait_for(flow.submit_code(code), TIMEOUT)
    assert isinstance(again, Failed)
    assert not again.can_retry


async def test_wrong_then_expired_then_new_code(sandbox: Sandbox, make_gateway) -> None:
    sandbox.create_user("15550004", "Dan")
    gw = await make_gateway()
    flow, step = await _failed_flow(gw, "+15550004")
    assert isinstance(step, CodeSent)
    assert step.via == "app"
    assert step.length == 5
    code = sandbox.last_login_code("15550004")
    assert code is not None
    wrong = "00000" if code != "00000" else "11111"
    bad = await asyncio.wait_for(flow.submit_code(wrong), TIMEOUT)
    assert isinstance(bad, Failed)
    assert bad.reason is LoginFailure.CODE_INVALID
    assert bad.can_retry
    letters = await asyncio.wait_for(flow.submit_code("abc"), TIMEOUT)
    assert isinstance(letters, Failed)
    assert letters.reason is LoginFailure.CODE_INVALID
    sandbox.advance(sandbox.code_ttl + 1)
    expired = await asyncio.wait_for(flow.submit_code(code), TIMEOUT)
    assert isinstance(expired, Failed)
    assert expired.reason is LoginFailure.CODE_EXPIRED
    assert expired.can_retry
    assert isinstance(await asyncio.wait_for(flow.submit_phone("+15550004"), TIMEOUT), CodeSent)
    fresh = sandbox.last_login_code("15550004")
    assert fresh is not None
    assert isinstance(await asyncio.wait_for(flow.submit_code(fresh), TIMEOUT), Connected)


async def test_flood_wait(sandbox: Sandbox, make_gateway) -> None:
    sandbox.create_user("15550005", "Eve")
    gw = await make_gateway()
    flow = gw.manager.begin_login(7)
    steps = [await asyncio.wait_for(flow.submit_phone("+15550005"), TIMEOUT) for _ in range(6)]
    assert all(isinstance(s, CodeSent) for s in steps[:5])
    flood = steps[5]
    assert isinstance(flood, Failed)
    assert flood.reason is LoginFailure.FLOOD_WAIT
    assert flood.retry_after is not None
    assert 0 < flood.retry_after <= 60
    await flow.cancel()
    assert await gw.store.list_sessions() == []


async def test_banned_number(sandbox: Sandbox, make_gateway) -> None:
    sandbox.create_user("15550006", "Frank")
    sandbox.api.ban_phone("+15550006")
    gw = await make_gateway()
    flow, step = await _failed_flow(gw, "+15550006")
    assert isinstance(step, Failed)
    assert step.reason is LoginFailure.PHONE_BANNED
    assert not step.can_retry
    assert flow.finished
    assert await gw.store.list_sessions() == []


async def test_sign_up_required(sandbox: Sandbox, make_gateway) -> None:
    gw = await make_gateway()
    flow, step = await _failed_flow(gw, "+15550007")
    assert isinstance(step, CodeSent)
    assert step.via == "sms"
    code = sandbox.last_login_code("15550007")
    assert code is not None
    failed = await asyncio.wait_for(flow.submit_code(code), TIMEOUT)
    assert isinstance(failed, Failed)
    assert failed.reason is LoginFailure.SIGN_UP_REQUIRED
    assert not failed.can_retry
    assert sandbox.user_by_phone("15550007") is None  # no account was created
    assert await gw.store.list_sessions() == []


async def test_invalid_phone_is_refused_locally(sandbox: Sandbox, make_gateway) -> None:
    gw = await make_gateway()
    for text in ("hello", "+12", "+1234567890123456", "+1 555 abc"):
        _, step = await _failed_flow(gw, text)
        assert isinstance(step, Failed), text
        assert step.reason is LoginFailure.PHONE_INVALID
        assert step.can_retry
    assert sandbox.world.codes_sent_since("12", 0) == []


async def test_already_connected(sandbox: Sandbox, make_gateway) -> None:
    sandbox.create_user("15550008", "Gina")
    gw = await make_gateway()
    await connect_session(gw, sandbox, "+15550008")
    _, step = await _failed_flow(gw, "+1 (555) 0008")
    assert isinstance(step, Failed)
    assert step.reason is LoginFailure.ALREADY_CONNECTED
    assert len(await gw.store.list_sessions()) == 1


async def test_inactivity_timeout_and_cancel(sandbox: Sandbox, make_gateway) -> None:
    sandbox.create_user("15550009", "Hal")
    gw = await make_gateway(login_timeout=0.2)
    flow, step = await _failed_flow(gw, "+15550009")
    assert isinstance(step, CodeSent)
    assert len(await gw.store.list_sessions()) == 1
    await gw.wait_for(lambda: flow.finished, timeout=5)
    late = await asyncio.wait_for(flow.submit_code("12345"), TIMEOUT)
    assert isinstance(late, Failed)
    assert late.reason is LoginFailure.TIMEOUT
    await gw.wait_for(lambda: flow._cleanup_task is not None and flow._cleanup_task.done())
    assert await gw.store.list_sessions() == []
    other = gw.manager.begin_login(7)
    assert isinstance(await asyncio.wait_for(other.submit_phone("+15550009"), TIMEOUT), CodeSent)
    await other.cancel()
    assert await gw.store.list_sessions() == []


async def test_network_failure(sandbox: Sandbox, make_gateway) -> None:
    sandbox.create_user("15550010", "Ivy")
    gw = await make_gateway()
    await sandbox.stop()
    _, step = await _failed_flow(gw, "+15550010")
    assert isinstance(step, Failed)
    assert step.reason is LoginFailure.NETWORK
    assert step.can_retry
