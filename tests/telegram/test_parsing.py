"""Typed input of the login flow and the classification of Telegram's errors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from telethon import errors

from tgsip.telegram.login import digits_only, normalize_phone
from tgsip.telegram.manager import reconnect_delays, revocation_reason
from tgsip.telegram.tgerrors import error_name


@pytest.mark.parametrize(
    ("text", "phone"),
    [
        ("+44 20 7946 0000", "+442079460000"),
        ("`+1 (555) 000-1234`", "+15550001234"),
        ("15550001", "+15550001"),
        ("+1.555.0001", "+15550001"),
        ("1234", None),
        ("+1234567890123456", None),
        ("+1 555 abc", None),
        ("", None),
        ("++15550001", None),
    ],
)
def test_normalize_phone(text: str, phone: str | None) -> None:
    assert normalize_phone(text) == phone


@given(st.text())
def test_normalize_phone_never_raises(text: str) -> None:
    phone = normalize_phone(text)
    if phone is not None:
        assert phone[0] == "+"
        assert phone[1:].isascii()
        assert phone[1:].isdigit()
        assert 5 <= len(phone) - 1 <= 15


@given(st.text())
def test_digits_only(text: str) -> None:
    kept = digits_only(text)
    assert all(c.isdigit() for c in kept)
    assert digits_only(kept) == kept
    assert len(kept) == sum(c.isdigit() for c in text)


def test_code_with_separators() -> None:
    assert digits_only("1 2 3 4 5") == "12345"
    assert digits_only("12-345") == "12345"


def test_revocation_names() -> None:
    assert revocation_reason(errors.AuthKeyUnregisteredError(None)) == "AUTH_KEY_UNREGISTERED"
    assert revocation_reason(errors.SessionRevokedError(None)) == "SESSION_REVOKED"
    assert revocation_reason(errors.UserDeactivatedBanError(None)) == "USER_DEACTIVATED_BAN"
    assert revocation_reason(errors.AuthKeyNotFound()) == "AUTH_KEY_NOT_FOUND"
    assert revocation_reason(errors.FloodWaitError(None, capture=3)) is None
    assert revocation_reason(ConnectionError("reset")) is None
    assert revocation_reason(errors.RPCError(None, "SOMETHING_NEW", 400)) is None


def test_error_names() -> None:
    assert error_name(errors.PhoneCodeInvalidError(None)) == "PHONE_CODE_INVALID"
    assert error_name(errors.FloodWaitError(None, capture=30)) == "FLOOD_WAIT_X"
    assert error_name(errors.RPCError(None, "FRESH_SOMETHING_FORBIDDEN", 406)) == (
        "FRESH_SOMETHING_FORBIDDEN"
    )
    assert error_name(TimeoutError()) == "TimeoutError"


@given(
    st.floats(min_value=0.01, max_value=10),
    st.floats(min_value=0.01, max_value=120),
    st.floats(min_value=0, max_value=0.999),
)
def test_reconnect_delays_are_bounded(initial: float, maximum: float, jitter: float) -> None:
    delays = reconnect_delays(initial, maximum, rng=lambda: jitter)
    got = [next(delays) for _ in range(40)]
    assert all(0 < d <= maximum * 1.25 for d in got)
    assert got[0] <= initial * 1.25
    assert got[-1] == pytest.approx(maximum * (0.75 + jitter / 2))
    assert got == sorted(got)
