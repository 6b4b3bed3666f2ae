"""DH for private calls: parameter validation, range checks (property-based), both sides."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tgsip.telegram.calls import dh
from tgsip.telegram.calls.dh import (
    RANGE_MARGIN,
    TELEGRAM_P,
    CalleeExchange,
    CallerExchange,
    DhError,
    DhParams,
)

PARAMS = DhParams(g=3, p=TELEGRAM_P, version=1)
R1 = bytes(range(256))
R2 = bytes(255 - i for i in range(256))
R3 = bytes((7 * i) % 256 for i in range(256))
R4 = bytes((11 * i + 3) % 256 for i in range(256))

SMALL_SAFE_PRIMES = [5, 7, 11, 23, 47, 59, 83, 107, 167, 179, 227, 263, 347, 359, 383]


def test_telegram_prime_is_a_safe_prime_by_miller_rabin() -> None:
    assert dh.is_probable_prime(TELEGRAM_P, rounds=8)
    assert dh.is_probable_prime((TELEGRAM_P - 1) // 2, rounds=8)
    assert TELEGRAM_P.bit_length() == 2048


def test_miller_rabin_small_numbers() -> None:
    primes = {n for n in range(2, 2000) if all(n % d for d in range(2, int(n**0.5) + 1))}
    for n in range(-3, 2000):
        assert dh.is_probable_prime(n) == (n in primes), n


def test_miller_rabin_rejects_carmichael_numbers() -> None:
    for n in (561, 1105, 1729, 2465, 2821, 6601, 8911, 41041, 825265, 321197185):
        assert not dh.is_probable_prime(n)


def test_validate_known_params_bytes_and_int() -> None:
    got = dh.validate_params(3, TELEGRAM_P.to_bytes(256, "big"), version=7)
    assert got == DhParams(3, TELEGRAM_P, 7)
    assert got.p_bytes == TELEGRAM_P.to_bytes(256, "big")
    assert dh.validate_params(3, TELEGRAM_P).p == TELEGRAM_P


def test_validate_accepts_another_safe_prime() -> None:
    """2^2048 - 1942289 is a 2048-bit safe prime (mod 8 = 7, mod 3 = 2): Miller-Rabin accepts it
    with g = 2 and g = 3."""
    p = (1 << 2048) - 1942289
    assert dh.validate_params(2, p.to_bytes(256, "big")).p == p
    dh.check_generator(3, p)


def test_validate_rejects_composite() -> None:
    composite = TELEGRAM_P + 6  # odd, no factor 3, 5 or 7, composite
    with pytest.raises(DhError, match="safe prime"):
        dh.validate_params(4, composite)


def test_validate_rejects_prime_that_is_not_safe() -> None:
    q = TELEGRAM_P + 570  # prime, (q-1)/2 composite
    assert dh.is_probable_prime(q, 4)
    with pytest.raises(DhError, match="safe prime"):
        dh.validate_params(4, q)


@pytest.mark.parametrize(
    ("p_value", "message"),
    [
        (1 << 2047, "2048-bit"),
        ((1 << 2047) - 1, "2048-bit"),
        (1 << 2048, "2048-bit"),
        (0, "2048-bit"),
    ],
)
def test_validate_rejects_sizes(p_value: int, message: str) -> None:
    with pytest.raises(DhError, match=message):
        dh.validate_params(3, p_value)


def test_validate_rejects_wrong_length_bytes() -> None:
    with pytest.raises(DhError, match="256 bytes"):
        dh.validate_params(3, TELEGRAM_P.to_bytes(257, "big"))


@pytest.mark.parametrize("g", [0, 1, 8, 9, -3, 1 << 70])
def test_unsupported_generators(g: int) -> None:
    with pytest.raises(DhError, match="unsupported"):
        dh.validate_params(g, TELEGRAM_P)


def test_generator_conditions_for_telegram_p() -> None:
    # TELEGRAM_P mod 8 == 3, mod 3 == 2: g=3 and g=4 are fine, g=2 is not.
    assert TELEGRAM_P % 8 != 7
    dh.check_generator(3, TELEGRAM_P)
    dh.check_generator(4, TELEGRAM_P)
    with pytest.raises(DhError, match="does not generate"):
        dh.check_generator(2, TELEGRAM_P)


@pytest.mark.parametrize("p", SMALL_SAFE_PRIMES)
@pytest.mark.parametrize("g", [2, 3, 4, 5, 6, 7])
def test_generator_conditions_match_quadratic_residuosity(p: int, g: int) -> None:
    """For a safe prime p = 2q+1, g (not ±1, 0 mod p) generates the order-q subgroup exactly
    when g is a quadratic residue mod p; the residue rules must agree with Euler's criterion."""
    if g % p in (0, 1, p - 1) or p <= 7:
        return
    is_qr = pow(g, (p - 1) // 2, p) == 1
    try:
        dh.check_generator(g, p)
        accepted = True
    except DhError:
        accepted = False
    assert accepted == is_qr, (p, g)


@given(st.integers(min_value=-(1 << 2100), max_value=1 << 2100))
def test_range_check_matches_definition(x: int) -> None:
    ok = 1 < x < TELEGRAM_P - 1 and RANGE_MARGIN < x < TELEGRAM_P - RANGE_MARGIN
    try:
        dh.check_public(x, TELEGRAM_P)
        accepted = True
    except DhError:
        accepted = False
    assert accepted == ok


@given(st.integers(min_value=0, max_value=RANGE_MARGIN))
def test_range_check_rejects_small_values(x: int) -> None:
    with pytest.raises(DhError):
        dh.check_public(x, TELEGRAM_P)


@given(st.integers(min_value=0, max_value=RANGE_MARGIN))
def test_range_check_rejects_values_near_p(d: int) -> None:
    with pytest.raises(DhError):
        dh.check_public(TELEGRAM_P - d, TELEGRAM_P)


@given(st.integers(min_value=RANGE_MARGIN + 1, max_value=TELEGRAM_P - RANGE_MARGIN - 1))
def test_range_check_accepts_the_middle(x: int) -> None:
    dh.check_public(x, TELEGRAM_P)


@given(st.binary(min_size=256, max_size=256), st.binary(min_size=256, max_size=256))
def test_secret_is_xor_of_randoms(own: bytes, server: bytes) -> None:
    want = int.from_bytes(bytes(a ^ b for a, b in zip(own, server, strict=True)), "big")
    assert dh.make_secret(server, own) == want


@pytest.mark.parametrize(("server", "own"), [(b"x" * 255, None), (R1, b"y" * 257), (b"", R1)])
def test_secret_needs_256_bytes(server: bytes, own: bytes | None) -> None:
    with pytest.raises(DhError, match="256 bytes"):
        dh.make_secret(server, own)


def test_own_random_defaults_to_fresh_bytes() -> None:
    assert dh.make_secret(R1) != dh.make_secret(R1)


def test_full_exchange_both_sides_agree() -> None:
    caller = CallerExchange(PARAMS, R1, R2)
    assert caller.g_a_hash == hashlib.sha256(caller.g_a).digest()
    callee = CalleeExchange(PARAMS, R3, caller.g_a_hash, R4)
    assert len(callee.g_b) == 256
    mine = caller.complete(callee.g_b)
    theirs = callee.complete(caller.g_a, mine.fingerprint)
    assert mine.key == theirs.key
    assert len(mine.key) == 256
    assert mine.fingerprint == theirs.fingerprint
    assert mine.emojis == theirs.emojis
    assert all(0 <= i < 333 for i in mine.emojis)
    # The key is g^(ab) mod p.
    a = dh.make_secret(R1, R2)
    b = dh.make_secret(R3, R4)
    assert int.from_bytes(mine.key, "big") == pow(3, a * b, TELEGRAM_P)
    assert "key" not in repr(mine) or mine.key.hex() not in repr(mine)


def test_fingerprint_is_low_64_bits_of_sha1_little_endian_signed() -> None:
    key = bytes(range(256))
    digest = hashlib.sha1(key).digest()
    fp = dh.key_fingerprint(key)
    assert fp.to_bytes(8, "little", signed=True) == digest[12:20]
    assert -(1 << 63) <= fp < (1 << 63)


def test_emoji_indices_definition() -> None:
    key, g_a = bytes(range(256)), bytes(256)
    h = hashlib.sha256(key + g_a).digest()
    want = tuple(
        (int.from_bytes(h[i : i + 8], "big") & ((1 << 63) - 1)) % 333 for i in (0, 8, 16, 24)
    )
    assert dh.emoji_indices(key, g_a) == want


def test_callee_rejects_g_a_not_matching_hash() -> None:
    caller = CallerExchange(PARAMS, R1, R2)
    other = CallerExchange(PARAMS, R1, R3)
    callee = CalleeExchange(PARAMS, R3, caller.g_a_hash, R4)
    fp = other.complete(callee.g_b).fingerprint
    with pytest.raises(DhError, match="g_a_hash"):
        callee.complete(other.g_a, fp)


def test_callee_rejects_wrong_fingerprint() -> None:
    caller = CallerExchange(PARAMS, R1, R2)
    callee = CalleeExchange(PARAMS, R3, caller.g_a_hash, R4)
    fp = caller.complete(callee.g_b).fingerprint
    with pytest.raises(DhError, match="fingerprint"):
        callee.complete(caller.g_a, fp ^ 1)


@pytest.mark.parametrize(
    "bad",
    [
        (1).to_bytes(256, "big"),
        (TELEGRAM_P - 1).to_bytes(256, "big"),
        RANGE_MARGIN.to_bytes(256, "big"),
        b"",
        b"\x01" * 257,
        (TELEGRAM_P + 5).to_bytes(256, "big"),
    ],
)
def test_caller_rejects_bad_g_b(bad: bytes) -> None:
    caller = CallerExchange(PARAMS, R1, R2)
    with pytest.raises(DhError):
        caller.complete(bad)


def test_callee_rejects_bad_g_a_even_with_matching_hash() -> None:
    bad = (TELEGRAM_P - 1).to_bytes(256, "big")
    callee = CalleeExchange(PARAMS, R3, dh.g_a_hash(bad), R4)
    with pytest.raises(DhError, match="range"):
        callee.complete(bad, 0)


def test_callee_needs_32_byte_hash() -> None:
    with pytest.raises(DhError, match="32 bytes"):
        CalleeExchange(PARAMS, R3, b"\x00" * 31, R4)


def test_public_value_refuses_degenerate_secret() -> None:
    # Secret 0 gives g^0 = 1: out of range.
    with pytest.raises(DhError):
        dh.public_value(PARAMS, 0)


def test_short_g_a_is_left_padded() -> None:
    """A g_a whose leading byte is zero may arrive with it stripped; it still verifies."""
    caller = CallerExchange(PARAMS, R1, bytes([1, 218]) + R2[2:])
    assert caller.g_a[0] == 0
    callee = CalleeExchange(PARAMS, R3, caller.g_a_hash, R4)
    fp = caller.complete(callee.g_b).fingerprint
    assert callee.complete(caller.g_a.lstrip(b"\x00"), fp).fingerprint == fp
