"""Notifications reach the administrator with a button back to the setting, rate-limited per
kind and target; unlinked sessions notify the operators."""

from __future__ import annotations

from types import SimpleNamespace

from tgsip.bot import Access, Notifier
from tgsip.calls.notices import AdminNotices
from tgsip.config.lines import new_gateway_to_pbx

from .conftest import Harness


async def test_notifications_with_links_and_rate_limit(harness: Harness) -> None:
    h = harness
    rec = await h.session(h.bob)
    line = await h.store.create_line(new_gateway_to_pbx(rec.id))
    notifier = Notifier(h.bot, h.store, Access([h.alice.id]), h.clock, interval_s=600)
    assert isinstance(notifier, AdminNotices)
    bob = h.chat(h.bob)

    assert await notifier.session_lost(rec.id, "network unreachable") == 1
    lost = await bob.wait_for(lambda m: "lost its connection" in m.text, 0)
    assert "Reason: network unreachable" in lost.text
    # The same kind for the same session within 10 minutes is held back...
    assert await notifier.session_lost(rec.id) == 0
    # ...but another kind is not.
    assert await notifier.session_lost(rec.id, revoked=True) == 1
    revoked = await bob.wait_for(lambda m: "revoked" in m.text)
    assert "Connect it again" in revoked.text
    h.clock.now += 601
    assert await notifier.session_lost(rec.id) == 1
    again = await bob.wait_for(lambda m: "lost its connection" in m.text)
    assert "(1 similar notifications were held back.)" in again.text

    # The button leads back to the session's settings.
    await bob.press(lost, "Settings")
    assert f"Session #{rec.id}" in bob.current(lost).text
    assert "DTMF In" in " ".join(bob.buttons(bob.current(lost)))

    assert await notifier.registration_failed(line.id, "403 Forbidden") == 1
    reg = await bob.wait_for(lambda m: "registration failed (403 Forbidden)" in m.text)
    assert await notifier.call_failures(line.id, 5, "503 Service Unavailable") == 1
    calls = await bob.wait_for(lambda m: "5 calls in a row failed" in m.text)
    assert "503 Service Unavailable" in calls.text
    assert await notifier.ip_banned(line.id, "198.51.100.7", 1800) == 1
    ban = await bob.wait_for(lambda m: "198.51.100.7 is banned for 30 min" in m.text)
    assert await notifier.ip_banned(line.id, "198.51.100.8", 1800) == 0
    for msg in (reg, ban):
        await bob.press(msg, "Settings")
        assert f"SIP line #{line.id}" in bob.current(msg).text
    assert await notifier.registration_failed(999, "x") == 0


async def test_session_events_and_unlinked_sessions_reach_operators(harness: Harness) -> None:
    h = harness
    rec = await h.session(None)
    notifier = Notifier(h.bot, h.store, Access([h.alice.id]), h.clock)
    notifier.on_session_event(SimpleNamespace(session_id=rec.id, kind="revoked", detail="x"))
    notifier.on_session_event(SimpleNamespace(session_id=rec.id, kind="reconnected", detail=""))
    await notifier.drain()
    alice = h.chat(h.alice)
    msg = await alice.wait_for(lambda m: "revoked" in m.text, 0)
    assert f"#{rec.id}" in msg.text
    assert not h.bob.history(h.bot_user)
