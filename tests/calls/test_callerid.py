"""Caller ID / Caller Name templates (product.md section 8.4)."""

from __future__ import annotations

import pytest

from tgsip.calls.callerid import (
    DEFAULT_CALLER_NAME,
    DEFAULT_CALLER_PHONE,
    PHONE_FIELDS,
    Called,
    CalledKind,
    CallerInfo,
    TemplateError,
    ascii_name,
    parse_called,
    parse_templates,
    quote_display_name,
    render,
)


def test_first_complete_line_wins() -> None:
    visible = CallerInfo(userid=123456789, phone="+79991234567", first_name="Ivan")
    hidden = CallerInfo(userid=123456789, first_name="Ivan")
    assert render(DEFAULT_CALLER_PHONE, visible.values()) == "+79991234567"
    assert render(DEFAULT_CALLER_PHONE, hidden.values()) == "0123456789"


def test_line_without_placeholders_is_the_fallback() -> None:
    templates = parse_templates("@{username}\nanonymous", PHONE_FIELDS)
    assert render(templates, CallerInfo(userid=5).values()) == "anonymous"
    assert render(templates, CallerInfo(userid=5, username="bob_x").values()) == "@bob_x"
    assert render(("{username}",), CallerInfo(userid=5).values()) is None


def test_documented_name_examples() -> None:
    user = CallerInfo(
        userid=7, phone="79991234567", username="ivan_p", first_name="Иван", last_name="Петров 🙂"
    )
    values = user.values()
    assert values["name"] == "Иван Петров 🙂"
    assert values["name_ascii"].startswith("Ivan Petrov")
    assert values["name_ascii"].isascii()
    phone_form = render(("+{phone} ({name_ascii})",), values)
    assert phone_form == f"+79991234567 ({values['name_ascii']})"
    assert render(("@{username} ({name_ascii})",), values) == f"@ivan_p ({values['name_ascii']})"

    assert render(DEFAULT_CALLER_NAME, values) == values["name_ascii"]


def test_ascii_name_and_quoting() -> None:
    assert ascii_name('Zoë\x07  "Q"') == 'Zoe "Q"'
    assert quote_display_name('a"b\\c') == '"a\\"b\\\\c"'


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("{phone", "unbalanced"),
        ("+{email}", "unknown placeholder"),
        ("{name}", "unknown placeholder"),
        ("{phone:>5}", "placeholders"),
        ("", "at least one"),
    ],
)
def test_bad_templates_are_refused(text: str, needle: str) -> None:
    with pytest.raises(TemplateError, match=needle):
        parse_templates(text, PHONE_FIELDS)


def test_backticks_and_blank_lines() -> None:
    assert parse_templates("`+{phone}`\n\n 0{userid} ") == ("+{phone}", "0{userid}")
    assert parse_templates("```\n+{phone}\n```") == ("+{phone}",)


def test_called_identifier_read_back() -> None:
    assert parse_called(DEFAULT_CALLER_PHONE, "+79991234567") == Called(
        CalledKind.PHONE, "79991234567"
    )
    assert parse_called(DEFAULT_CALLER_PHONE, "0123456789") == Called(
        CalledKind.USERID, "123456789"
    )
    assert parse_called(DEFAULT_CALLER_PHONE, "@ivan_p") == Called(CalledKind.USERNAME, "ivan_p")
    assert parse_called(DEFAULT_CALLER_PHONE, "%%") is None
