"""Diffie-Hellman for Telegram private calls (``telegram_calls.md`` §2).

Pure functions and two small exchange objects, no I/O. Every check Telegram's documentation
requires is here: the 2048-bit safe prime ``p`` and the generator ``g`` of
``messages.getDhConfig`` (:func:`validate_params`), the secrets derived from 256 own random bytes
XOR the server's ``random``, the range checks on ``g_a``/``g_b`` (:func:`check_public`), the
callee's ``g_a_hash`` check, the key and its 64-bit fingerprint.

The caller (:class:`CallerExchange`) sends ``g_a_hash`` in ``phone.requestCall``, receives ``g_b``
in ``phoneCallAccepted`` and reveals ``g_a`` with the fingerprint in ``phone.confirmCall``. The
callee (:class:`CalleeExchange`) sends ``g_b`` in ``phone.acceptCall`` and checks ``g_a`` and the
fingerprint of the final ``phoneCall``.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field

#: Telegram's current ``p`` (``g = 3``), a known 2048-bit safe prime: validation skips the
#: primality test for it.
TELEGRAM_P = int(
    "C71CAEB9C6B1C9048E6C522F70F13F73980D40238E3E21C14934D037563D930F"
    "48198A0AA7C14058229493D22530F4DBFA336F6E0AC925139543AED44CCE7C37"
    "20FD51F69458705AC68CD4FE6B6B13ABDC9746512969328454F18FAF8C595F64"
    "2477FE96BB2A941D5BCD1D4AC8CC49880708FA9B378E3C4F3A9060BEE67CF9A4"
    "A4A695811051907E162753B56B0F6B410DBA74D8A84B2A14B3144E0EF1284754"
    "FD17ED950D5965B4B9DD46582DB1178D169C6BC465B0D6FF9CA3928FEF5B9AE4"
    "E418FC15E83EBEA0F87FA9FF5EED70050DED2849F47BF959D956850CE929851F"
    "0D8115F635B105EE2E4E15D04B2454BF6F4FADF034B10403119CD8E3B92FCC5B",
    16,
)

#: Bytes of ``p``, of every public value and of the key.
KEY_BYTES = 256
#: Bits of ``p``.
PRIME_BITS = 2048
#: Public values must lie in ``(2^(2048-64), p - 2^(2048-64))``.
RANGE_MARGIN = 1 << (PRIME_BITS - 64)
#: Miller-Rabin rounds for an unknown ``p`` (error probability at most ``4^-ROUNDS``).
MILLER_RABIN_ROUNDS = 40
#: Size of the emoji table of official clients (``telegram_calls.md`` §2 step 7).
EMOJI_TABLE_SIZE = 333

_SMALL_PRIMES = (3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73)


class DhError(ValueError):
    """A DH parameter, public value, hash or fingerprint failed a check: abort the call."""


def is_probable_prime(n: int, rounds: int = MILLER_RABIN_ROUNDS) -> bool:
    """Miller-Rabin with ``rounds`` random bases; ``False`` is certain, ``True`` is probable."""
    if n < 2:
        return False
    if n in (2, 3):
        return True
    if n % 2 == 0:
        return False
    for q in _SMALL_PRIMES:
        if n == q:
            return True
        if n % q == 0:
            return False
    d, s = n - 1, 0
    while d % 2 == 0:
        d //= 2
        s += 1
    for _ in range(rounds):
        a = 2 + secrets.randbelow(n - 3)
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def check_generator(g: int, p: int) -> None:
    """Raises :class:`DhError` unless ``g`` generates the subgroup of order ``(p-1)/2``.

    The residue conditions of Telegram's documentation (``telegram_calls.md`` §2 step 1).
    """
    ok = {
        2: p % 8 == 7,
        3: p % 3 == 2,
        4: True,
        5: p % 5 in (1, 4),
        6: p % 24 in (19, 23),
        7: p % 7 in (3, 5, 6),
    }.get(g)
    if ok is None:
        raise DhError(f"unsupported DH generator g={g}")
    if not ok:
        raise DhError(f"g={g} does not generate the order-(p-1)/2 subgroup of p")


@dataclass(frozen=True)
class DhParams:
    """Validated ``messages.getDhConfig`` parameters (cache them by ``version``)."""

    g: int
    p: int
    version: int = 0

    @property
    def p_bytes(self) -> bytes:
        """``p`` as 256 big-endian bytes (what ntgcalls and the server exchange)."""
        return self.p.to_bytes(KEY_BYTES, "big")


def validate_params(g: int, p: bytes | int, version: int = 0) -> DhParams:
    """Checks ``p`` (a 2048-bit safe prime) and ``g``; returns :class:`DhParams`.

    ``p`` may be the 256 raw bytes of ``messages.dhConfig.p`` or an integer. Telegram's known
    prime skips the Miller-Rabin tests; any other costs two of them (about 0.1-0.5 s), so
    validate once per ``version``. Raises :class:`DhError`.
    """
    if isinstance(p, bytes | bytearray):
        if len(p) != KEY_BYTES:
            raise DhError(f"p must be {KEY_BYTES} bytes, got {len(p)}")
        p_int = int.from_bytes(p, "big")
    else:
        p_int = p
    if not (1 << (PRIME_BITS - 1)) < p_int < (1 << PRIME_BITS):
        raise DhError("p is not a 2048-bit number")
    check_generator(g, p_int)
    if p_int != TELEGRAM_P and not (
        is_probable_prime(p_int) and is_probable_prime((p_int - 1) // 2)
    ):
        raise DhError("p is not a safe prime")
    return DhParams(g=g, p=p_int, version=version)


def check_public(g_x: int, p: int) -> None:
    """Raises :class:`DhError` unless ``1 < g_x < p-1`` and
    ``2^(2048-64) < g_x < p - 2^(2048-64)`` (``telegram_calls.md`` §2 step 3)."""
    if not 1 < g_x < p - 1:
        raise DhError("public DH value out of range (1, p-1)")
    if not RANGE_MARGIN < g_x < p - RANGE_MARGIN:
        raise DhError("public DH value out of range (2^1984, p - 2^1984)")


def make_secret(server_random: bytes, own_random: bytes | None = None) -> int:
    """The secret exponent: 256 own random bytes XOR the server's 256 ``random`` bytes.

    ``own_random`` defaults to :func:`secrets.token_bytes`; tests pass fixed bytes.
    """
    if len(server_random) != KEY_BYTES:
        raise DhError(f"server random must be {KEY_BYTES} bytes, got {len(server_random)}")
    own = secrets.token_bytes(KEY_BYTES) if own_random is None else own_random
    if len(own) != KEY_BYTES:
        raise DhError(f"own random must be {KEY_BYTES} bytes, got {len(own)}")
    return int.from_bytes(bytes(x ^ y for x, y in zip(own, server_random, strict=True)), "big")


def to_bytes(value: int) -> bytes:
    """A DH value as 256 big-endian bytes, left-padded."""
    return value.to_bytes(KEY_BYTES, "big")


def public_value(params: DhParams, secret: int) -> bytes:
    """``g^secret mod p`` as 256 bytes; raises :class:`DhError` if it fails the range check
    (then draw a new secret)."""
    g_x = pow(params.g, secret, params.p)
    check_public(g_x, params.p)
    return to_bytes(g_x)


def g_a_hash(g_a: bytes) -> bytes:
    """``SHA256(g_a)`` of the 256-byte ``g_a`` (``phone.requestCall.g_a_hash``)."""
    return hashlib.sha256(g_a).digest()


def shared_key(params: DhParams, their_public: bytes, secret: int) -> bytes:
    """``their_public^secret mod p`` as 256 bytes, after the range check on ``their_public``."""
    if not 0 < len(their_public) <= KEY_BYTES:
        raise DhError(f"public DH value must be 1..{KEY_BYTES} bytes, got {len(their_public)}")
    g_x = int.from_bytes(their_public, "big")
    check_public(g_x, params.p)
    return to_bytes(pow(g_x, secret, params.p))


def key_fingerprint(key: bytes) -> int:
    """The low 64 bits of ``SHA1(key)``, little-endian signed (``key_fingerprint`` of
    ``phone.confirmCall`` and ``phoneCall``)."""
    return int.from_bytes(hashlib.sha1(key).digest()[-8:], "little", signed=True)


def emoji_indices(key: bytes, g_a: bytes) -> tuple[int, int, int, int]:
    """Indices into the 333-emoji table of official clients, shown for key verification.

    ``h = SHA256(key || g_a)``; index ``i`` is the big-endian uint64 of ``h[8i:8i+8]`` with the
    top bit cleared, modulo 333 (``telegram_calls.md`` §2 step 7).
    """
    h = hashlib.sha256(key + g_a).digest()
    out = [
        (int.from_bytes(h[8 * i : 8 * i + 8], "big") & 0x7FFF_FFFF_FFFF_FFFF) % EMOJI_TABLE_SIZE
        for i in range(4)
    ]
    return out[0], out[1], out[2], out[3]


@dataclass(frozen=True)
class KeyResult:
    """The outcome of an exchange: the 256-byte key, its fingerprint and ``g_a``."""

    key: bytes = field(repr=False)
    fingerprint: int
    g_a: bytes = field(repr=False)

    @property
    def emojis(self) -> tuple[int, int, int, int]:
        """Emoji table indices for this key (:func:`emoji_indices`)."""
        return emoji_indices(self.key, self.g_a)


class CallerExchange:
    """The caller's side: ``g_a_hash`` out, ``g_b`` in, ``(g_a, fingerprint)`` out."""

    def __init__(
        self, params: DhParams, server_random: bytes, own_random: bytes | None = None
    ) -> None:
        self.params = params
        self._a = make_secret(server_random, own_random)
        self.g_a = public_value(params, self._a)
        self.g_a_hash = g_a_hash(self.g_a)

    def complete(self, g_b: bytes) -> KeyResult:
        """Derives the key from the callee's ``g_b`` (checked); raises :class:`DhError`."""
        key = shared_key(self.params, g_b, self._a)
        return KeyResult(key=key, fingerprint=key_fingerprint(key), g_a=self.g_a)

    def __repr__(self) -> str:
        return f"CallerExchange(g={self.params.g}, version={self.params.version})"


class CalleeExchange:
    """The callee's side: ``g_a_hash`` in, ``g_b`` out, ``(g_a, fingerprint)`` in and checked."""

    def __init__(
        self,
        params: DhParams,
        server_random: bytes,
        g_a_hash_received: bytes,
        own_random: bytes | None = None,
    ) -> None:
        if len(g_a_hash_received) != 32:
            raise DhError(f"g_a_hash must be 32 bytes, got {len(g_a_hash_received)}")
        self.params = params
        self._g_a_hash = g_a_hash_received
        self._b = make_secret(server_random, own_random)
        self.g_b = public_value(params, self._b)

    def complete(self, g_a: bytes, fingerprint: int) -> KeyResult:
        """Checks ``g_a`` (range and ``SHA256(g_a) == g_a_hash``), derives the key and checks
        the caller's ``fingerprint``; raises :class:`DhError`."""
        g_a_full = to_bytes(int.from_bytes(g_a, "big")) if 0 < len(g_a) <= KEY_BYTES else g_a
        if g_a_hash(g_a_full) != self._g_a_hash:
            raise DhError("g_a does not match the g_a_hash of phoneCallRequested")
        key = shared_key(self.params, g_a_full, self._b)
        fp = key_fingerprint(key)
        if fp != fingerprint:
            raise DhError("key fingerprint mismatch")
        return KeyResult(key=key, fingerprint=fp, g_a=g_a_full)

    def __repr__(self) -> str:
        return f"CalleeExchange(g={self.params.g}, version={self.params.version})"


__all__ = [
    "EMOJI_TABLE_SIZE",
    "KEY_BYTES",
    "RANGE_MARGIN",
    "TELEGRAM_P",
    "CalleeExchange",
    "CallerExchange",
    "DhError",
    "DhParams",
    "KeyResult",
    "check_generator",
    "check_public",
    "emoji_indices",
    "g_a_hash",
    "is_probable_prime",
    "key_fingerprint",
    "make_secret",
    "public_value",
    "shared_key",
    "to_bytes",
    "validate_params",
]
