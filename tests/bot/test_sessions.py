"""Session settings through the real bot: toggles, messages processing, advanced actions,
access control; the result read back from the ConfigStore."""

from __future__ import annotations

from tgsip.bot.access import NOT_OPERATOR, REFUSAL
from tgsip.bot.dispatcher import FAILED

from .conftest import Harness


async def test_start_lists_sessions_and_refuses_strangers(harness: Harness) -> None:
    h = harness
    rec = await h.session(h.alice)
    alice = h.chat(h.alice)
    menu = await alice.send("/start", "Welcome")
    assert "Connect" in alice.buttons(menu)
    assert any(f"#{rec.id}" in b for b in alice.buttons(menu))

    bob = h.chat(h.bob)
    reply = await bob.send("/gateway", "private")
    assert reply.text == NOT_OPERATOR.format(uid=h.bob.id)
    assert not reply.buttons

    help_msg = await alice.send("/help", "/gateway")
    assert "Connect" not in alice.buttons(help_msg)
    await alice.press(help_msg, "Back")
    assert "Connect" in alice.buttons(alice.current(help_msg))
    other = await alice.send("what?", "/gateway")
    assert "/help" in other.text


async def test_toggles_and_message_processing(harness: Harness) -> None:
    h = harness
    rec = await h.session(h.alice)
    chat = h.chat(h.alice)
    menu = await chat.send("/gateway", "sessions")
    await chat.press(menu, f"#{rec.id}")
    menu = chat.current(menu)
    assert f"Session #{rec.id}" in menu.text
    assert "✅ DTMF In" in chat.buttons(menu)
    await chat.press(menu, "DTMF In")
    menu = chat.current(menu)
    assert "⬜ DTMF In" in chat.buttons(menu)
    await chat.press(menu, "Redial")
    stored = await h.store.get_session(rec.id)
    assert stored is not None
    assert (stored.settings.dtmf_in, stored.settings.redial, stored.settings.dtmf_out) == (
        False,
        False,
        True,
    )

    await chat.press(menu, "Messages processing")
    menu = chat.current(menu)
    await chat.press(menu, "⬜ Messages processing")
    await chat.press(chat.current(menu), "⬜ Callback")
    # The inline bot cannot be switched on before it is chosen.
    refused = await chat.press(chat.current(menu), "⬜ Inline bot")
    assert refused.answer_text == "Choose the inline bot first."
    assert refused.show_alert

    await chat.press(chat.current(menu), "Select bot")
    await chat.wait_for(lambda m: "Choose your inline bot" in m.text)
    keyboard = h.alice.reply_keyboard(h.bot_user)
    assert keyboard is not None
    assert keyboard[0][0]["request_users"]["user_is_bot"] is True
    wrong = await chat.send("notabotname", "❌")
    assert "The old value is kept: —" in wrong.text
    # A command wins over the pending input; the value stays as it was.
    await chat.send("/cancel", "Cancelled.")
    stored = await h.store.get_session(rec.id)
    assert stored is not None
    assert stored.settings.inline_bot == ""
    await chat.press(chat.current(menu), "Select bot")
    await chat.wait_for(lambda m: "Choose your inline bot" in m.text)
    saved = await chat.send("@other_helper_bot", "Saved.")
    assert "Select bot: @other_helper_bot" in chat.buttons(saved)
    # The picker: the administrator chooses a bot instead of typing it.
    helper = h.sandbox.create_bot("helpdesk_bot", "Helpdesk")
    await chat.press(saved, "Select bot")
    await chat.wait_for(lambda m: "Choose your inline bot" in m.text)
    saved = await chat.share_users(rec.id, [helper], "Saved.")
    assert "Select bot: @helpdesk_bot" in chat.buttons(saved)
    assert h.alice.reply_keyboard(h.bot_user) is None
    await chat.press(saved, "⬜ Inline bot")
    await chat.press(chat.current(saved), "Inline query")
    await chat.wait_for(lambda m: "inline query format" in m.text)
    wrong = await chat.send("find {txt}", "❌")
    assert "Unknown placeholder {txt}" in wrong.text
    assert "old value is kept: {text}" in wrong.text
    saved = await chat.send("`order {text} from {userid}`", "Saved.")
    await chat.press(saved, "✏️")
    await chat.wait_for(lambda m: "autoreply text" in m.text)
    saved = await chat.send("Calls only. Write to @support_bot.", "Saved.")
    await chat.press(saved, "⬜ Autoreply")

    stored = await h.store.get_session(rec.id)
    assert stored is not None
    s = stored.settings
    assert s.messages_processing
    assert s.callback
    assert (s.inline_bot_enabled, s.inline_bot, s.inline_query) == (
        True,
        "helpdesk_bot",
        "order {text} from {userid}",
    )
    assert (s.autoreply_enabled, s.autoreply_text) == (True, "Calls only. Write to @support_bot.")

    # Clearing the inline bot switches it off.
    await chat.press(chat.current(saved), "Select bot")
    await chat.wait_for(lambda m: "Choose your inline bot" in m.text)
    cleared = await chat.send("-", "Saved.")
    assert "⬜ Inline bot" in chat.buttons(cleared)
    stored = await h.store.get_session(rec.id)
    assert stored is not None
    assert (stored.settings.inline_bot, stored.settings.inline_bot_enabled) == ("", False)


async def test_assign_administrator_with_user_picker_and_expiry(harness: Harness) -> None:
    h = harness
    rec = await h.session(h.alice)
    chat = h.chat(h.alice)
    menu = await chat.send("/gateway", "sessions")
    await chat.press(menu, f"#{rec.id}")
    await chat.press(chat.current(menu), "Advanced")
    adv = chat.current(menu)
    assert "Select user" not in " ".join(chat.buttons(adv))
    await chat.press(adv, "⬜ Use a shared subscription")
    await chat.press(chat.current(adv), "Assign administrator")
    await chat.press(chat.current(adv), "Select user")
    await chat.wait_for(lambda m: "new administrator" in m.text)
    keyboard = h.alice.reply_keyboard(h.bot_user)
    assert keyboard is not None
    picker = keyboard[0][0]["request_users"]
    assert picker["request_id"] == rec.id
    assert picker["user_is_bot"] is False

    confirm = await chat.share_users(rec.id, [h.bob], "expires in 5 minutes")
    assert f"id {h.bob.id}" in confirm.text
    # Six minutes later the confirmation no longer works.
    h.clock.now += 360
    await chat.press(confirm, "Yes")
    assert "expired" in chat.current(confirm).text
    stored = await h.store.get_session(rec.id)
    assert stored is not None
    assert stored.admin_id == h.alice.id
    assert stored.settings.shared_subscription

    await chat.press(chat.current(menu), "Assign administrator")
    await chat.press(chat.current(menu), "Select user")
    await chat.wait_for(lambda m: "new administrator" in m.text)
    confirm = await chat.share_users(rec.id, [h.bob], "expires in 5 minutes")
    h.clock.now += 120
    await chat.press(confirm, "Yes")
    assert "Done" in chat.current(confirm).text
    stored = await h.store.get_session(rec.id)
    assert stored is not None
    assert stored.admin_id == h.bob.id
    bob = h.chat(h.bob)
    told = await bob.wait_for(lambda m: "You are now the administrator" in m.text, 0)
    assert f"#{rec.id}" in told.text

    # Alice's old menu no longer works for her: a polite refusal, nothing changes.
    refused = await chat.press(chat.current(menu), "Use a shared subscription")
    assert refused.answer_text == REFUSAL
    stored = await h.store.get_session(rec.id)
    assert stored is not None
    assert stored.settings.shared_subscription


async def test_unlink_hands_the_session_to_operators(harness: Harness) -> None:
    h = harness
    rec = await h.session(h.bob, phone="15550199")
    bob = h.chat(h.bob)
    menu = await bob.send("/gateway", "sessions")
    await bob.press(menu, f"#{rec.id}")
    await bob.press(bob.current(menu), "Advanced")
    await bob.press(bob.current(menu), "Unlink")
    assert "Unlink yourself" in bob.current(menu).text
    await bob.press(bob.current(menu), "Yes")
    stored = await h.store.get_session(rec.id)
    assert stored is not None
    assert stored.admin_id is None
    # Bob no longer sees it; Alice, an operator, does.
    reply = await bob.send("/gateway", "")
    assert f"#{rec.id}" not in " ".join(bob.buttons(reply))
    alice = h.chat(h.alice)
    listing = await alice.send("/gateway", "sessions")
    await alice.press(listing, f"#{rec.id}")
    assert "the gateway's operators manage it" in alice.current(listing).text


async def test_second_user_cannot_reach_someone_elses_session(harness: Harness) -> None:
    h = harness
    rec = await h.session(h.bob, phone="15550177")
    bob = h.chat(h.bob)
    menu = await bob.send("/gateway", "sessions")
    await bob.press(menu, f"#{rec.id}")
    await bob.press(bob.current(menu), "Messages processing")
    await bob.press(bob.current(menu), "✏️")  # the autoreply text: waits for input
    await bob.wait_for(lambda m: "autoreply text" in m.text)
    # The session now belongs to Alice (e.g. reassigned by an operator).
    await h.store.update_session(
        (await h.store.get_session(rec.id)).__class__(  # type: ignore[union-attr]
            id=rec.id, admin_id=h.alice.id, phone=rec.phone, state=rec.state
        )
    )
    late = await bob.send("hello there", REFUSAL)
    assert late.text == REFUSAL
    refused = await bob.press(bob.current(menu), "Messages processing")
    assert refused.answer_text == REFUSAL
    assert refused.show_alert
    listing = await bob.send("/gateway", "")
    assert f"#{rec.id}" not in " ".join(bob.buttons(listing))
    stored = await h.store.get_session(rec.id)
    assert stored is not None
    assert stored.settings.autoreply_text == ""
    assert not stored.settings.messages_processing


async def test_a_failing_store_gets_a_clear_answer(harness: Harness) -> None:
    h = harness
    rec = await h.session(h.alice)
    chat = h.chat(h.alice)
    menu = await chat.send("/gateway", "sessions")
    await chat.press(menu, f"#{rec.id}")
    h.store.close()  # the database goes away under the bot
    failed = await chat.press(chat.current(menu), "DTMF In")
    assert failed.show_alert
    assert failed.answer_text == FAILED
    reply = await chat.send("/gateway", "went wrong")
    assert reply.text == FAILED
