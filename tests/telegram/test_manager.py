"""The session manager against the sandbox: several sessions, restart, network loss, revocation,
recommended settings and disconnect."""

from __future__ import annotations

import asyncio

from telethon import TelegramClient, functions
from telethon.sessions import StringSession

from tgsip.config.lines import new_pbx_to_gateway
from tgsip.config.sessions import SessionState, StorageKind
from tgsip.sandbox import DEFAULT_API_HASH, DEFAULT_API_ID, Sandbox, point_client
from tgsip.telegram.login import CodeSent, Connected
from tgsip.telegram.manager import RecommendedSetting
from tgsip.telegram.messages import IncomingMessage
from tgsip.telegram.storage import EMBEDDED_FILE, SqliteSessionBackend

from .conftest import TIMEOUT, connect_session, start_sandbox, stop_gateway


async def _phone_client(sandbox: Sandbox, phone: str) -> TelegramClient:
    """Another device of the same account (a plain Telethon client)."""
    client = TelegramClient(
        StringSession(), DEFAULT_API_ID, DEFAULT_API_HASH, connection_retries=1, retry_delay=0
    )
    host, port = sandbox.advertised_address
    point_client(client, sandbox.dc_id, host, port)
    await asyncio.wait_for(client.connect(), TIMEOUT)
    await asyncio.wait_for(client.send_code_request(phone), TIMEOUT)
    code = sandbox.last_login_code(phone)
    await asyncio.wait_for(client.sign_in(phone, code), TIMEOUT)
    return client


def _gateway_auth(sandbox: Sandbox, user_id: int):
    auths = [a for a in sandbox.world.authorizations(user_id) if a.device_model == "tgsip gateway"]
    return auths


async def test_two_sessions_two_administrators(sandbox: Sandbox, make_gateway) -> None:
    a = sandbox.create_user("15551001", "Acme line", username="acme")
    b = sandbox.create_user("15551002", "Bolt line")
    caller = sandbox.create_user("15551003", "Caller", username="caller")
    gw = await make_gateway()
    heard: list[IncomingMessage] = []
    gw.manager.add_message_listener(heard.append)
    clients: list[tuple[int, object]] = []
    gw.manager.add_client_listener(lambda sid, client: clients.append((sid, client)))
    sa = (await connect_session(gw, sandbox, "+15551001", admin_id=100)).session
    sb = (await connect_session(gw, sandbox, "+15551002", admin_id=200)).session
    assert gw.manager.online_sessions() == [sa.id, sb.id]
    assert clients == [(sa.id, gw.manager.client(sa.id)), (sb.id, gw.manager.client(sb.id))]
    assert [r.id for r in await gw.store.list_sessions(admin_id=100)] == [sa.id]
    assert [r.id for r in await gw.store.list_sessions(admin_id=200)] == [sb.id]
    assert gw.manager.is_online(sa.id)
    assert gw.manager.is_online(sb.id)
    await caller.send_message(a, "to acme")
    await caller.send_message(b, "to bolt")
    await gw.wait_for(lambda: len(heard) >= 2)
    by_session = {m.session_id: m.text for m in heard}
    assert by_session == {sa.id: "to acme", sb.id: "to bolt"}
    assert all(m.sender_id == caller.id for m in heard)


async def test_restart_restores_without_login(sandbox: Sandbox, make_gateway, tmp_path) -> None:
    alice = sandbox.create_user("15551011", "Alice", username="alice")
    caller = sandbox.create_user("15551012", "Carl", username="carl")
    data = tmp_path / "gw"
    gw = await make_gateway(data_dir=data)
    rec = (await connect_session(gw, sandbox, "+15551011")).session
    codes = len(sandbox.world.codes_sent_since("15551011", 0))
    heard_before: list[IncomingMessage] = []
    gw.manager.add_message_listener(heard_before.append)
    await caller.send_message(alice, "before restart")
    await gw.wait_for(lambda: len(heard_before) == 1)
    await stop_gateway(gw)
    assert not gw.manager.is_online(rec.id)
    # The caller, seen only in a pushed update, was stored with everything Telegram showed.
    backend = SqliteSessionBackend(data / EMBEDDED_FILE)
    await backend.open()
    snap = await backend.load(rec.id)
    await backend.close()
    assert snap is not None
    assert (caller.id, caller.user.access_hash, "carl", None, "Carl") in snap.entities
    await caller.send_message(alice, "while the gateway was down")

    again = await make_gateway(data_dir=data)
    heard: list[IncomingMessage] = []
    again.manager.add_message_listener(heard.append)
    await again.wait_for(lambda: again.manager.is_online(rec.id))
    assert again.kinds(rec.id) == ["connected"]
    assert len(sandbox.world.codes_sent_since("15551011", 0)) == codes  # no new login
    assert len(_gateway_auth(sandbox, alice.id)) == 1  # the same device
    me = await asyncio.wait_for(again.manager.client(rec.id).get_me(), TIMEOUT)
    assert me.id == alice.id
    # The saved update state lets the session catch up with what it missed.
    await again.wait_for(lambda: any(m.text == "while the gateway was down" for m in heard))
    assert not any(m.text == "before restart" for m in heard)
    # The entity cache came back too: the caller is addressable by id without resolving.
    sent = await again.manager.messenger(rec.id).send_message(caller.id, "hello again")
    assert caller.history(alice)[0].text == "hello again"
    assert sent > 0


async def test_network_loss_then_reconnect(sandbox: Sandbox, make_gateway) -> None:
    alice = sandbox.create_user("15551021", "Alice")
    caller = sandbox.create_user("15551022", "Carl")
    gw = await make_gateway()
    heard: list[IncomingMessage] = []
    gw.manager.add_message_listener(heard.append)
    rec = (await connect_session(gw, sandbox, "+15551021")).session
    host, port = sandbox.advertised_address
    await sandbox.stop()
    await gw.wait_for(lambda: "lost" in gw.kinds(rec.id))
    assert not gw.manager.is_online(rec.id)
    await caller.send_message(alice, "sent during the outage")
    await sandbox.start(host, port)
    await gw.wait_for(lambda: "reconnected" in gw.kinds(rec.id))
    assert gw.manager.is_online(rec.id)
    assert gw.kinds(rec.id) == ["connected", "lost", "reconnected"]
    await gw.wait_for(lambda: any(m.text == "sent during the outage" for m in heard))
    stored = await gw.store.get_session(rec.id)
    assert stored is not None
    assert stored.state is SessionState.ACTIVE


async def test_revoked_session_is_reported(sandbox: Sandbox, make_gateway) -> None:
    alice = sandbox.create_user("15551031", "Alice")
    gw = await make_gateway()
    rec = (await connect_session(gw, sandbox, "+15551031")).session
    [auth] = _gateway_auth(sandbox, alice.id)
    # Terminated from the account's other device.
    assert sandbox.world.reset_authorization(alice.id, auth.hash) is not None
    await gw.wait_for(lambda: "revoked" in gw.kinds(rec.id))
    event = next(e for e in gw.events if e.kind == "revoked")
    assert event.detail == "AUTH_KEY_UNREGISTERED"
    assert not gw.manager.is_online(rec.id)
    stored = await gw.store.get_session(rec.id)
    assert stored is not None
    assert stored.state is SessionState.REVOKED
    assert stored.last_error == "AUTH_KEY_UNREGISTERED"
    backend = await gw.storages.backend(StorageKind.EMBEDDED)
    assert rec.id not in await backend.session_ids()  # the dead key is forgotten
    # A restart does not try to bring it back.
    await gw.manager.stop()
    await gw.manager.start()
    assert not gw.manager.is_online(rec.id)


async def test_key_unknown_to_the_server_is_reported(
    sandbox: Sandbox, make_gateway, tmp_path, rsa_dir
) -> None:
    """Telegram lost the authorization altogether (transport error -404 on a new world)."""
    sandbox.create_user("15551035", "Alice")
    gw = await make_gateway()
    rec = (await connect_session(gw, sandbox, "+15551035")).session
    host, port = sandbox.advertised_address
    await sandbox.stop()
    await gw.wait_for(lambda: "lost" in gw.kinds(rec.id))
    other = await start_sandbox(tmp_path / "another-world", rsa_dir, port)
    try:
        await gw.wait_for(lambda: "revoked" in gw.kinds(rec.id))
        assert gw.events[-1].detail == "AUTH_KEY_NOT_FOUND"
        stored = await gw.store.get_session(rec.id)
        assert stored is not None
        assert stored.state is SessionState.REVOKED
    finally:
        await other.stop()
        other.close()
        await sandbox.start(host, port)  # the fixture stops it again


async def test_recommended_settings(sandbox: Sandbox, make_gateway) -> None:
    alice = sandbox.create_user("15551041", "Alice")
    phone = await _phone_client(sandbox, "15551041")
    try:
        sandbox.world.set_privacy(alice.id, "phone_call", [{"kind": "allow_contacts"}])
        gw = await make_gateway()
        rec = (await connect_session(gw, sandbox, "+15551041")).session
        before = await gw.manager.recommended_state(rec.id)
        assert before == {
            RecommendedSetting.OFF_OTHER_SESSIONS_CALLS: False,
            RecommendedSetting.ALLOW_EVERYBODY: False,
            RecommendedSetting.ALLOW_P2P: True,
            RecommendedSetting.DISALLOW_GROUPS: False,
        }
        for setting in RecommendedSetting:
            result = await gw.manager.apply_setting(rec.id, setting)
            assert result.ok, result
            assert result.setting is setting
        # Read back from the sandbox's own state.
        others = [
            a for a in sandbox.world.authorizations(alice.id) if a.device_model != "tgsip gateway"
        ]
        assert len(others) == 1
        assert others[0].calls_disabled
        [mine] = _gateway_auth(sandbox, alice.id)
        assert not mine.calls_disabled
        assert sandbox.world.privacy(alice.id, "phone_call") == [{"kind": "allow_all"}]
        assert sandbox.world.privacy(alice.id, "phone_p2p") == [{"kind": "allow_all"}]
        assert sandbox.world.privacy(alice.id, "chat_invite") == [{"kind": "disallow_all"}]
        after = await gw.manager.recommended_state(rec.id)
        assert all(after.values()), after
        # The other device sees its calls disabled too.
        auths = await asyncio.wait_for(phone(functions.account.GetAuthorizationsRequest()), TIMEOUT)
        assert [a.call_requests_disabled for a in auths.authorizations if a.current] == [True]
    finally:
        await asyncio.wait_for(phone.disconnect(), TIMEOUT)


async def test_fresh_session_refusal_gives_hours(sandbox: Sandbox, make_gateway) -> None:
    sandbox.create_user("15551051", "Alice")
    phone = await _phone_client(sandbox, "15551051")
    try:
        sandbox.api.fresh_session_seconds = 24 * 3600
        gw = await make_gateway()
        rec = (await connect_session(gw, sandbox, "+15551051")).session
        result = await gw.manager.apply_setting(rec.id, RecommendedSetting.OFF_OTHER_SESSIONS_CALLS)
        assert not result.ok
        assert result.message.startswith("FRESH_RESET_AUTHORISATION_FORBIDDEN")
        assert result.retry_after_hours == 24
        sandbox.advance(24 * 3600 + 60)
        result = await gw.manager.apply_setting(rec.id, RecommendedSetting.OFF_OTHER_SESSIONS_CALLS)
        assert result.ok, result
    finally:
        await asyncio.wait_for(phone.disconnect(), TIMEOUT)


async def test_settings_of_offline_session(sandbox: Sandbox, make_gateway) -> None:
    gw = await make_gateway()
    result = await gw.manager.apply_setting(999, RecommendedSetting.ALLOW_P2P)
    assert not result.ok
    assert "offline" in result.message
    state = await gw.manager.recommended_state(999)
    assert set(state.values()) == {None}


async def test_disconnect_logs_out_and_keeps_or_clears_lines(
    sandbox: Sandbox, make_gateway
) -> None:
    alice = sandbox.create_user("15551061", "Alice")
    gw = await make_gateway()
    rec = (await connect_session(gw, sandbox, "+15551061")).session
    line = await gw.store.create_line(new_pbx_to_gateway(rec.id))
    await gw.manager.disconnect(rec.id, clear_lines=False)
    assert gw.kinds(rec.id)[-1] == "logged_out"
    assert _gateway_auth(sandbox, alice.id) == []  # the device is gone from the account
    assert not gw.manager.is_online(rec.id)
    stored = await gw.store.get_session(rec.id)
    assert stored is not None
    assert stored.state is SessionState.LOGGED_OUT
    assert stored.last_error == ""
    backend = await gw.storages.backend(StorageKind.EMBEDDED)
    assert rec.id not in await backend.session_ids()
    assert [x.id for x in await gw.store.list_lines(rec.id)] == [line.id]

    # Connecting the number again brings the same session back, lines included.
    flow = gw.manager.begin_login(100)
    assert isinstance(await asyncio.wait_for(flow.submit_phone("+15551061"), TIMEOUT), CodeSent)
    code = sandbox.last_login_code("15551061")
    done = await asyncio.wait_for(flow.submit_code(code), TIMEOUT)
    assert isinstance(done, Connected)
    assert done.session.id == rec.id
    assert done.session.admin_id == 100
    assert [x.id for x in await gw.store.list_lines(rec.id)] == [line.id]

    await gw.manager.disconnect(rec.id, clear_lines=True)
    assert await gw.store.list_lines(rec.id) == []
    assert _gateway_auth(sandbox, alice.id) == []
