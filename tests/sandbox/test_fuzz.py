"""Property tests: decoders reject arbitrary input cleanly; crypto round-trips."""

from __future__ import annotations

import os
import struct
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from telethon.tl import functions

from tgsip.sandbox import crypto
from tgsip.sandbox.tl import TLDecodeError, parse_object


def _decode_outcome(data: bytes) -> str:
    """ "ok" or the rpc error name; any other exception escapes and fails the test."""
    try:
        parse_object(data)
    except TLDecodeError as exc:
        return exc.rpc_name
    return "ok"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_parse_object_only_raises_decode_errors(data: bytes) -> None:
    assert _decode_outcome(data) in {"ok", "INPUT_CONSTRUCTOR_INVALID", "INPUT_FETCH_ERROR"}


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64), st.integers(min_value=0, max_value=40))
def test_truncated_known_requests_are_fetch_errors(tail: bytes, cut: int) -> None:
    body = bytes(functions.users.GetUsersRequest(id=[])) + tail
    outcome = _decode_outcome(body[: max(4, len(body) - cut)])
    assert outcome in {"ok", "INPUT_FETCH_ERROR"}


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=1, max_value=20))
def test_ige_round_trip(blocks: int) -> None:
    key, iv, plain = os.urandom(32), os.urandom(32), os.urandom(16 * blocks)
    assert crypto.ige_decrypt(crypto.ige_encrypt(plain, key, iv), key, iv) == plain


def test_ige_matches_telethon() -> None:
    from telethon.crypto import AES

    key, iv, plain = os.urandom(32), os.urandom(32), os.urandom(160)
    assert crypto.ige_encrypt(plain, key, iv) == AES.encrypt_ige(plain, key, iv)


def test_srp_accepts_telethon_proof_and_rejects_wrong_password() -> None:
    from telethon.password import compute_check
    from telethon.tl import types

    salt1, salt2 = os.urandom(40), os.urandom(16)
    verifier = crypto.srp_verifier("secret", salt1, salt2)
    b = int.from_bytes(os.urandom(256), "big")
    algo = types.PasswordKdfAlgoSHA256SHA256PBKDF2HMACSHA512iter100000SHA256ModPow(
        salt1=salt1, salt2=salt2, g=crypto.DH_G, p=crypto.int_to_256(crypto.DH_PRIME)
    )
    pw = types.account.Password(
        new_algo=algo,
        new_secure_algo=types.SecurePasswordKdfAlgoUnknown(),
        secure_random=b"",
        has_password=True,
        current_algo=algo,
        srp_B=crypto.srp_server_b(verifier, b),
        srp_id=1,
    )
    good = compute_check(pw, "secret")
    bad = compute_check(pw, "Secret")
    assert crypto.srp_check(verifier, b, salt1, salt2, good.A, good.M1)
    assert not crypto.srp_check(verifier, b, salt1, salt2, bad.A, bad.M1)
    assert not crypto.srp_check(verifier, b, salt1, salt2, struct.pack(">I", 1), good.M1)


def _rsa_pad_encrypt(key: crypto.SandboxRsaKey, data: bytes) -> bytes:
    """Client side of RSA_PAD (https://core.telegram.org/mtproto/auth_key, step 4.1)."""
    data_with_padding = data + os.urandom(192 - len(data))
    while True:
        temp_key = os.urandom(32)
        data_with_hash = data_with_padding[::-1] + crypto.sha256(temp_key, data_with_padding)
        aes_encrypted = crypto.ige_encrypt(data_with_hash, temp_key, bytes(32))
        temp_key_xor = bytes(
            a ^ b for a, b in zip(temp_key, crypto.sha256(aes_encrypted), strict=True)
        )
        value = int.from_bytes(temp_key_xor + aes_encrypted, "big")
        if value < key.n:
            return pow(value, key.e, key.n).to_bytes(256, "big")


def test_rsa_pad_and_legacy_inner_data(tmp_path: Path) -> None:
    from telethon.crypto import rsa as telethon_rsa
    from telethon.tl import types

    key = crypto.load_or_create_rsa_key(tmp_path / "k.pem")
    inner = bytes(
        types.PQInnerData(
            pq=b"\x01" * 8, p=b"\x02" * 4, q=b"\x03" * 4, nonce=1, server_nonce=2, new_nonce=3
        )
    )
    padded = key.decrypt_inner_data(_rsa_pad_encrypt(key, inner))
    assert padded is not None
    assert padded.startswith(inner)
    telethon_rsa.add_key(key.public_pem, old=False)
    legacy = key.decrypt_inner_data(telethon_rsa.encrypt(key.fingerprint, inner))
    assert legacy is not None
    assert legacy[:20] == crypto.sha1(inner)
    assert legacy[20:].startswith(inner)
    assert key.decrypt_inner_data(os.urandom(255)) is None
    # The fingerprint is the one Telethon computes for the same public key.
    assert telethon_rsa.encrypt(key.fingerprint, inner) is not None
