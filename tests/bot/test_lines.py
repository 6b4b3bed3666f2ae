"""SIP lines through the real bot: each type's fields, the common ones, validation with the
old value kept, secrets, transport cycling, delete, live state; read back from the store."""

from __future__ import annotations

from dataclasses import dataclass

from tgsip.bot.access import REFUSAL
from tgsip.calls.dialrules import DialRules
from tgsip.config.lines import Codec, DtmfMethod, LineKind, Transport

from .conftest import Chat, Harness


@dataclass(frozen=True)
class SipState:
    registered: bool | None
    last_error: str
    active_calls: int


async def _lines_menu(h: Harness, chat: Chat, sid: int):  # type: ignore[no-untyped-def]
    menu = await chat.send("/gateway", "sessions")
    await chat.press(menu, f"#{sid}")
    await chat.press(chat.current(menu), "SIP lines")
    return chat.current(menu)


async def _edit(chat: Chat, menu_msg, button: str, value: str, expect: str):  # type: ignore[no-untyped-def]
    await chat.press(menu_msg, button)
    await chat.wait_for(lambda m: "Current:" in m.text)
    return await chat.send(value, expect)


async def test_pbx_to_gateway_line(harness: Harness) -> None:
    h = harness
    rec = await h.session(h.alice)
    chat = h.chat(h.alice)
    menu = await _lines_menu(h, chat, rec.id)
    await chat.press(menu, "🆕 PBX→tgsip")
    card = chat.current(menu)
    assert "The PBX registers to gw.example.net:5060" in card.text
    assert "State: not running" in card.text
    account = await chat.wait_for(lambda m: m.text.startswith("Account of SIP line"))
    (line,) = await h.store.list_lines(rec.id)
    assert line.kind is LineKind.PBX_TO_GATEWAY
    assert f"Login: {line.login}" in account.text
    assert f"Password: {line.password}" in account.text
    # The password is never on a button or in the card.
    assert line.password not in card.text
    assert all(line.password not in b for b in chat.buttons(card))

    wrong = await _edit(chat, card, "Trusted IPs: any", "10.0.0.1/8", "❌")
    assert "not a valid subnet" in wrong.text
    assert "The old value is kept: —" in wrong.text
    saved = await chat.send("`10.0.0.0/8, 192.0.2.7 2001:db8::/32`", "Saved.")
    assert "Trusted IPs: 10.0.0.0/8, 192.0.2.7/3…" in chat.buttons(saved)

    old_password = line.password
    answer = await chat.press(saved, "Reset Password")
    assert answer.answer_text == "New password generated: update it on the PBX."
    shown = await chat.wait_for(lambda m: m.text.startswith("Account of SIP line"))
    line = await h.store.get_line(line.id)  # type: ignore[assignment]
    assert line is not None
    assert line.password != old_password
    assert f"Password: {line.password}" in shown.text

    for expected in ("TCP", "TLS", "UDP"):
        await chat.press(saved, "Transport:")
        assert f"Transport: {expected}" in chat.buttons(chat.current(saved))
    wrong = await _edit(chat, saved, "Audio Codecs", "opus, speex", "❌")
    assert "Unknown codec “speex”" in wrong.text
    assert "The old value is kept: alaw,mulaw" in wrong.text
    saved = await chat.send("opus,PCMA", "Saved.")
    saved = await _edit(chat, saved, "DTMF Methods", "info, rfc2833", "Saved.")
    wrong = await _edit(chat, saved, "Priority", "100", "❌")
    assert "0 to 99" in wrong.text
    saved = await chat.send("5", "Saved.")
    wrong = await _edit(chat, saved, "Caller phone", "+{phone}\n{email}", "❌")
    assert "unknown placeholder {email}" in wrong.text
    saved = await chat.send("+{phone}\n@{username}\n0{userid}", "Saved.")
    saved = await _edit(chat, saved, "Caller name", "`{name_ascii} ({phone})`", "Saved.")
    line = await h.store.get_line(line.id)  # type: ignore[assignment]
    assert line is not None
    assert line.trusted_ips == ("10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32")
    assert line.transport is Transport.UDP
    assert line.codecs == (Codec.OPUS, Codec.ALAW)
    assert line.dtmf_methods == (DtmfMethod.INFO, DtmfMethod.RFC2833)
    assert line.priority == 5
    assert line.caller_phone == ("+{phone}", "@{username}", "0{userid}")
    assert line.caller_name == ("{name_ascii} ({phone})",)

    # The live state comes from the SIP service's provider.
    # Any record with the three attributes will do (the SIP service has its own type).
    h.line_states.states[line.id] = SipState(
        registered=True, last_error="408 Request Timeout", active_calls=2
    )
    await chat.press(saved, "Refresh")
    card = chat.current(saved)
    assert "Registered: yes" in card.text
    assert "Active calls: 2" in card.text
    assert "Last error: 408 Request Timeout" in card.text

    await chat.press(card, "Delete")
    assert "Delete SIP line" in chat.current(card).text
    await chat.press(chat.current(card), "Yes")
    assert await h.store.list_lines(rec.id) == []
    assert "deleted" in chat.current(card).text


async def test_gateway_to_pbx_line_and_dial_rules(harness: Harness) -> None:
    h = harness
    rec = await h.session(h.alice)
    chat = h.chat(h.alice)
    menu = await _lines_menu(h, chat, rec.id)
    await chat.press(menu, "🆕 tgsip→PBX")
    card = chat.current(menu)
    assert "Invalid parameters (Login, Password, Domain)" in card.text
    assert "Dial Rules: .*=" in chat.buttons(card)
    saved = await _edit(chat, card, "Login", "100 1", "❌")
    assert "no spaces" in saved.text
    saved = await chat.send("1001", "Saved.")
    await chat.press(saved, "Password")
    prompt = await chat.wait_for(lambda m: "Current:" in m.text)
    assert "Current: —" in prompt.text
    before = chat.top_id()
    sent = await h.alice.send_message(h.bot_user, "s3cret-Pass")
    saved = await chat.wait_for(lambda m: "Saved." in m.text, before)
    # The secret was deleted from the chat and is not echoed anywhere.
    assert h.sandbox.world.message(h.alice.id, sent.id) is None
    assert all("s3cret" not in m.text for m in h.alice.history(h.bot_user, limit=100))
    assert "Password: ••••" in chat.buttons(saved)
    wrong = await _edit(chat, saved, "Domain", "pbx..example", "❌")
    assert "not a valid host name" in wrong.text
    saved = await chat.send("PBX.example.com", "Saved.")
    saved = await _edit(chat, saved, "Proxy", "[2001:db8::1]:5070", "Saved.")
    saved = await _edit(chat, saved, "Number on PBX", "*100#", "Saved.")
    assert "Invalid parameters" not in saved.text

    wrong = await _edit(chat, saved, "Dial Rules", "`^(1+)+$`", "❌")
    assert "too long" in wrong.text
    assert "The old value is kept: .*=" in wrong.text
    wrong = await chat.send("`^8=\\3`", "❌")
    assert "invalid replacement" in wrong.text
    saved = await chat.send("`[^+*#\\w]=`\n`^(8|\\+7)(?=\\d{10})=7.`\n`^\\d{11}$`", "Saved.")

    (line,) = await h.store.list_lines(rec.id)
    assert (line.login, line.password, line.domain) == ("1001", "s3cret-Pass", "pbx.example.com")
    assert (line.proxy, line.number_on_pbx) == ("[2001:db8::1]:5070", "*100#")
    assert line.missing_params() == []
    rules = DialRules(line.dial_rules)
    assert rules.apply("8 (926) 123-45-67") == "79261234567"
    assert rules.apply("100") is None
    # Show Account is only for generated accounts.
    assert "Show Account" not in chat.buttons(saved)


async def test_ip_ip_lines_conflict_and_other_admin(harness: Harness) -> None:
    h = harness
    rec = await h.session(h.alice)
    chat = h.chat(h.alice)
    menu = await _lines_menu(h, chat, rec.id)
    await chat.press(menu, "🆕 IP⇿IP")
    first = chat.current(menu)
    wrong = await _edit(chat, first, "Address:port", "192.0.2.10:99999", "❌")
    assert "not a port number" in wrong.text
    saved = await chat.send("192.0.2.10", "Saved.")
    assert "Address:port: 192.0.2.10:5060" in chat.buttons(saved)
    await _edit(chat, saved, "Field:Value", "X-Trunk: one", "Saved.")

    menu = await _lines_menu(h, chat, rec.id)
    await chat.press(menu, "🆕 IP⇿IP")
    second = chat.current(menu)
    clash = await _edit(chat, second, "Address:port", "192.0.2.10:5080", "❌")
    assert "without a distinct Field:Value" in clash.text
    await chat.press(clash, "Cancel")
    saved = await _edit(chat, second, "Field:Value", "Via: x", "❌")
    assert "used by SIP itself" in saved.text
    saved = await chat.send("X-Trunk: two", "Saved.")
    saved = await _edit(chat, saved, "Address:port", "192.0.2.10:5080", "Saved.")
    lines = sorted(await h.store.list_lines(rec.id), key=lambda ln: ln.id)
    assert [(ln.address, ln.field_value) for ln in lines] == [
        ("192.0.2.10:5060", "X-Trunk: one"),
        ("192.0.2.10:5080", "X-Trunk: two"),
    ]

    # The session passes to Bob: Alice's line menus now get a polite refusal.
    stored = await h.store.get_session(rec.id)
    assert stored is not None
    await h.store.update_session(type(stored)(id=rec.id, admin_id=h.bob.id, phone=rec.phone))
    refused = await chat.press(saved, "Priority")
    assert refused.answer_text == REFUSAL
    refused = await chat.press(saved, "Delete")
    assert refused.answer_text == REFUSAL
    assert len(await h.store.list_lines(rec.id)) == 2
