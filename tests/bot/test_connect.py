"""Connecting a session through the real bot and the real SessionManager: a sandbox user is
the session account, reached over MTProto by Telethon inside the gateway."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from tgsip.bot import Access, Notifier
from tgsip.config.lines import new_pbx_to_gateway
from tgsip.config.sessions import SessionState
from tgsip.sandbox import DEFAULT_API_HASH, DEFAULT_API_ID, Sandbox
from tgsip.storage import ConfigStore, SecretBox
from tgsip.telegram.manager import SessionManager, TelegramOptions
from tgsip.telegram.storage import SessionStorages

from .conftest import TIMEOUT, Harness, close_harness, make_harness


@pytest_asyncio.fixture
async def connect_harness(sandbox: Sandbox, tmp_path: Path) -> AsyncIterator[Harness]:
    box = SecretBox(os.urandom(32))
    store = ConfigStore.open_sqlite(tmp_path / "gw" / "config.sqlite3", box)
    storages = SessionStorages(tmp_path / "gw", box, None)
    host, port = sandbox.advertised_address
    options = TelegramOptions(
        api_id=DEFAULT_API_ID,
        api_hash=DEFAULT_API_HASH,
        server=(sandbox.dc_id, host, port),
        request_timeout=5.0,
        health_interval=0.3,
        reconnect_initial=0.05,
        reconnect_max=0.5,
    )
    manager = SessionManager(store, storages, options)
    await manager.start()
    h = await make_harness(sandbox, store, sessions=manager)
    yield h
    await close_harness(h)
    await manager.stop()
    await storages.close()
    store.close()


async def test_connect_with_keypad_then_recommended_settings_and_disconnect(
    connect_harness: Harness,
) -> None:
    h = connect_harness
    sb = h.sandbox
    carol = sb.create_user("15550300", "Carol", username="carol_calls")
    chat = h.chat(h.alice)
    menu = await chat.send("/start", "Welcome")
    await chat.press(menu, "Connect")
    advice = chat.current(menu)
    assert "dedicated Telegram account" in advice.text
    await chat.press(advice, "tgsip Sessions Storage")
    ask = await chat.wait_for(lambda m: "phone number of the session account" in m.text)
    keyboard = h.alice.reply_keyboard(h.bot_user)
    assert keyboard is not None
    assert keyboard[0][0]["request_contact"] is True
    assert ask.text

    wrong = await chat.send("call me maybe", "not a phone number")
    assert "international format" in wrong.text
    keypad = await chat.send("+1 555 030 0", "keypad")
    code = sb.last_login_code("15550300")
    assert code is not None
    assert "_" * len(code) in keypad.text

    # A code typed as it is would be cancelled by Telegram: refused before it is used.
    refused = await chat.send(code, "spaces between the digits")
    assert "Use the keypad" in refused.text
    # A wrong code, typed with separators, is refused by Telegram; the keypad comes back.
    wrong_code = "0" * len(code) if code != "0" * len(code) else "1" * len(code)
    retry = await chat.send(" ".join(wrong_code), "❌")
    assert "Try again" in retry.text

    # The keypad still works for the next attempt.
    await chat.press(chat.current(keypad), "⌫")
    for digit in code[:-1]:
        await chat.press(chat.current(keypad), digit)
    assert "•" * (len(code) - 1) + "_" in chat.current(keypad).text
    assert code not in chat.current(keypad).text
    before = chat.top_id()
    await chat.press(chat.current(keypad), code[-1])
    done = await chat.wait_for(lambda m: "✅ Connected" in m.text, before)
    assert "@carol_calls" in done.text
    offer = await chat.wait_for(lambda m: "Recommended Telegram settings" in m.text)
    labels = " ".join(chat.buttons(offer))
    for text in (
        "Disable calls on other devices",
        "Allow calls from all users",
        "Allow P2P calls from everybody",
        "Disallow adding to groups",
    ):
        assert text in labels

    (rec,) = await h.store.list_sessions()
    assert (rec.admin_id, rec.tg_user_id, rec.state) == (h.alice.id, carol.id, SessionState.ACTIVE)
    await chat.press(offer, "Allow calls from all users")
    assert "✅ Allow calls from all users" in chat.buttons(chat.current(offer))
    state = await h.dp["sessions"].recommended_state(rec.id)
    assert any(str(k) == "allow_everybody" and v for k, v in state.items())

    # Disconnect, clearing the SIP lines.
    await h.store.create_line(new_pbx_to_gateway(rec.id))
    listing = await chat.send("/gateway", "sessions")
    await chat.press(listing, f"#{rec.id}")
    await chat.press(chat.current(listing), "Advanced")
    await chat.press(chat.current(listing), "Disconnect")
    assert "Clear its SIP lines" in chat.current(listing).text
    await chat.press(chat.current(listing), "and clear SIP lines")
    assert "disconnected; SIP lines cleared" in chat.current(listing).text
    stored = await h.store.get_session(rec.id)
    assert stored is not None
    assert stored.state is SessionState.LOGGED_OUT
    assert await h.store.list_lines(rec.id) == []


async def test_connect_own_account_shared_as_contact_with_two_step_recovery(
    connect_harness: Harness,
) -> None:
    h = connect_harness
    sb = h.sandbox
    sb.set_password(h.alice, "hunter2", hint="pets", email="alice@example.org")
    chat = h.chat(h.alice)
    menu = await chat.send("/gateway", "sessions")
    await chat.press(menu, "Connect")
    await chat.press(chat.current(menu), "tgsip Sessions Storage")
    await chat.wait_for(lambda m: "phone number of the session account" in m.text)
    keypad = await chat.share_contact("keypad")
    code = sb.last_login_code("15550001")
    assert code is not None
    for digit in code:
        await chat.press(chat.current(keypad), digit)
    ask = await chat.wait_for(lambda m: "Two-step verification is on" in m.text, keypad.id)
    assert "removes the account's two-step verification password" in ask.text
    (mail,) = sb.emails("alice@example.org")
    bad = await chat.send("000000" if mail.code != "000000" else "111111", "❌")
    assert bad.text
    done = await chat.send(mail.code, "✅ Connected")
    assert "@alice_op" in done.text
    (rec,) = await h.store.list_sessions()
    assert rec.tg_user_id == h.alice.id
    assert rec.state is SessionState.ACTIVE


async def test_recommended_setting_refused_on_a_fresh_session_then_repeated(
    connect_harness: Harness,
) -> None:
    from telethon import TelegramClient
    from telethon.sessions import StringSession

    from tgsip.sandbox import point_client

    h = connect_harness
    sb = h.sandbox
    sb.create_user("15550400", "Dora", username="dora_calls")
    # Dora's phone: another device of the account, which the gateway should silence.
    phone = TelegramClient(StringSession(), DEFAULT_API_ID, DEFAULT_API_HASH, timeout=5)
    host, port = sb.advertised_address
    point_client(phone, sb.dc_id, host, port)
    await asyncio.wait_for(phone.connect(), TIMEOUT)
    try:
        await asyncio.wait_for(phone.send_code_request("15550400"), TIMEOUT)
        first = sb.last_login_code("15550400")
        assert first is not None
        await asyncio.wait_for(phone.sign_in("15550400", first), TIMEOUT)

        chat = h.chat(h.alice)
        menu = await chat.send("/gateway", "sessions")
        await chat.press(menu, "Connect")
        await chat.press(chat.current(menu), "tgsip Sessions Storage")
        await chat.wait_for(lambda m: "phone number of the session account" in m.text)
        keypad = await chat.send("+15550400", "keypad")
        code = sb.last_login_code("15550400")
        assert code is not None
        assert code != first
        await chat.send(" ".join(code), "✅ Connected")
        offer = await chat.wait_for(lambda m: "Recommended Telegram settings" in m.text)
        assert keypad.id < offer.id
        assert "⬜ Disable calls on other devices" in chat.buttons(offer)

        sb.api.fresh_session_seconds = 86400
        refused = await chat.press(offer, "Disable calls on other devices")
        assert refused.show_alert
        assert "FRESH_RESET_AUTHORISATION_FORBIDDEN" in (refused.answer_text or "")
        assert "Try again in" in (refused.answer_text or "")
        assert "⬜ Repeat: Disable calls on other devices" in chat.buttons(chat.current(offer))

        sb.api.fresh_session_seconds = 0
        done = await chat.press(chat.current(offer), "Repeat: Disable calls")
        assert not done.show_alert
        assert "✅ Disable calls on other devices" in chat.buttons(chat.current(offer))
        (rec,) = await h.store.list_sessions()
        state = await h.dp["sessions"].recommended_state(rec.id)
        assert any(str(k) == "off_other_sessions_calls" and v for k, v in state.items())

        # Disconnect keeping the lines: the session is logged out, its lines stay.
        await h.store.create_line(new_pbx_to_gateway(rec.id))
        listing = await chat.send("/gateway", "sessions")
        await chat.press(listing, f"#{rec.id}")
        await chat.press(chat.current(listing), "Advanced")
        await chat.press(chat.current(listing), "Disconnect")
        await chat.press(chat.current(listing), "keep SIP lines")
        assert "SIP lines kept" in chat.current(listing).text
        assert len(await h.store.list_lines(rec.id)) == 1
        stored = await h.store.get_session(rec.id)
        assert stored is not None
        assert stored.state is SessionState.LOGGED_OUT
    finally:
        await asyncio.wait_for(phone.disconnect(), TIMEOUT)


async def test_revocation_reaches_the_administrator_through_the_notifier(
    connect_harness: Harness,
) -> None:
    h = connect_harness
    sb = h.sandbox
    erin = sb.create_user("15550500", "Erin")
    manager = h.dp["sessions"]
    notifier = Notifier(h.bot, h.store, Access([h.alice.id]), h.clock)
    manager.add_listener(notifier.on_session_event)
    chat = h.chat(h.alice)
    menu = await chat.send("/gateway", "sessions")
    await chat.press(menu, "Connect")
    await chat.press(chat.current(menu), "tgsip Sessions Storage")
    await chat.wait_for(lambda m: "phone number of the session account" in m.text)
    await chat.send("+15550500", "keypad")
    code = sb.last_login_code("15550500")
    assert code is not None
    await chat.send(" ".join(code), "✅ Connected")
    (rec,) = await h.store.list_sessions()
    # Terminated from the account's other device.
    (auth,) = sb.world.authorizations(erin.id)
    assert sb.world.reset_authorization(erin.id, auth.hash) is not None
    notice = await chat.wait_for(lambda m: "revoked" in m.text)
    await notifier.drain()
    assert f"#{rec.id}" in notice.text
    assert "AUTH_KEY_UNREGISTERED" in notice.text
    await chat.press(notice, "Settings")
    card = chat.current(notice)
    assert "State: revoked" in card.text
