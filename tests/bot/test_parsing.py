"""The bot's own input parsing: session texts, phone numbers, separated login codes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tgsip.bot.callbacks import SessionText
from tgsip.bot.routers.connect import SEPARATED_CODE
from tgsip.bot.routers.session import (
    MAX_AUTOREPLY,
    MAX_INLINE_QUERY,
    InvalidValue,
    parse_session_text,
)
from tgsip.config.sessions import SessionSettings

BASE = SessionSettings(inline_bot="x_bot", inline_bot_enabled=True, autoreply_text="hi",
                       autoreply_enabled=True)  # fmt: skip


@pytest.mark.parametrize(
    ("field", "text", "expected"),
    [
        (SessionText.INLINE_BOT, "@Helpdesk_Bot", {"inline_bot": "Helpdesk_Bot"}),
        (SessionText.INLINE_BOT, "`support_bot`", {"inline_bot": "support_bot"}),
        (SessionText.INLINE_BOT, "-", {"inline_bot": "", "inline_bot_enabled": False}),
        (SessionText.INLINE_QUERY, "{text} {{x}}", {"inline_query": "{text} {{x}}"}),
        (SessionText.AUTOREPLY, "Hello {name}", {"autoreply_text": "Hello {name}"}),
        (SessionText.AUTOREPLY, "—", {"autoreply_text": "", "autoreply_enabled": False}),
    ],
)
def test_accepted(field: SessionText, text: str, expected: dict[str, object]) -> None:
    out = parse_session_text(field, text, BASE)
    for key, value in expected.items():
        assert getattr(out, key) == value


@pytest.mark.parametrize(
    ("field", "text", "needle"),
    [
        (SessionText.INLINE_BOT, "@helpdesk", "ends with"),
        (SessionText.INLINE_BOT, "@a_bot extra", "ends with"),
        (SessionText.INLINE_QUERY, "", "1-256"),
        (SessionText.INLINE_QUERY, "x" * (MAX_INLINE_QUERY + 1), "1-256"),
        (SessionText.INLINE_QUERY, "{text", "Unbalanced"),
        (SessionText.AUTOREPLY, "{secret}", "Unknown placeholder"),
        (SessionText.AUTOREPLY, "x" * (MAX_AUTOREPLY + 1), "1-1024"),
    ],
)
def test_refused(field: SessionText, text: str, needle: str) -> None:
    with pytest.raises(InvalidValue, match=needle):
        parse_session_text(field, text, BASE)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(list(SessionText)), st.text(max_size=300))
def test_any_text_is_accepted_or_refused_cleanly(field: SessionText, text: str) -> None:
    try:
        out = parse_session_text(field, text, BASE)
    except InvalidValue as exc:
        message = str(exc)
        assert message
        return
    assert isinstance(out, SessionSettings)
    assert len(out.inline_query) <= MAX_INLINE_QUERY
    assert len(out.autoreply_text) <= MAX_AUTOREPLY


@pytest.mark.parametrize(
    ("text", "ok"),
    [("1 2 3 4 5", True), ("1-2-3-4-5", True), ("1.2.3 4,5", True), ("12345", False),
     ("1 2 a", False), ("", False), ("1", False)],
)  # fmt: skip
def test_typed_code_needs_separators(text: str, ok: bool) -> None:
    assert bool(SEPARATED_CODE.match(text)) is ok
