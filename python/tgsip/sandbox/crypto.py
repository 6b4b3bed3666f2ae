"""MTProto 2.0 cryptography for the server side.

Contracts follow https://core.telegram.org/mtproto/description (msg_key, AES-256-IGE key
derivation with x = 8 for server-to-client and x = 0 for client-to-server),
https://core.telegram.org/mtproto/auth_key (the DH exchange) and
https://core.telegram.org/api/srp (two-step verification, SRP-2048).
"""

from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from tgsip.sandbox.tl import tl_bytes

# Telegram's published 2048-bit safe prime (dh_prime), generator 3.
DH_PRIME = int(
    "C71CAEB9C6B1C9048E6C522F70F13F73980D40238E3E21C14934D037563D930F48198A0AA7C14058229493D2"
    "2530F4DBFA336F6E0AC925139543AED44CCE7C3720FD51F69458705AC68CD4FE6B6B13ABDC97465129693284"
    "54F18FAF8C595F642477FE96BB2A941D5BCD1D4AC8CC49880708FA9B378E3C4F3A9060BEE67CF9A4A4A6958"
    "11051907E162753B56B0F6B410DBA74D8A84B2A14B3144E0EF1284754FD17ED950D5965B4B9DD46582DB117"
    "8D169C6BC465B0D6FF9CA3928FEF5B9AE4E418FC15E83EBEA0F87FA9FF5EED70050DED2849F47BF959D95685"
    "0CE929851F0D8115F635B105EE2E4E15D04B2454BF6F4FADF034B10403119CD8E3B92FCC5B",
    16,
)
DH_G = 3


def sha1(*parts: bytes) -> bytes:
    return hashlib.sha1(b"".join(parts)).digest()


def sha256(*parts: bytes) -> bytes:
    return hashlib.sha256(b"".join(parts)).digest()


def int_to_min_bytes(value: int) -> bytes:
    """Big-endian bytes without leading zeros (how MTProto carries pq, p, q, g_a, g_b)."""
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def int_to_256(value: int) -> bytes:
    return value.to_bytes(256, "big")


def _aes_ecb(key: bytes, encrypt: bool) -> object:
    cipher = Cipher(algorithms.AES(key), modes.ECB())
    return cipher.encryptor() if encrypt else cipher.decryptor()


def ige_encrypt(plain: bytes, key: bytes, iv: bytes) -> bytes:
    """AES-256-IGE encryption; ``plain`` must be a multiple of 16 bytes."""
    if len(plain) % 16:
        raise ValueError("IGE input must be a multiple of 16 bytes")
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    prev_c, prev_p = iv[:16], iv[16:32]
    out = bytearray()
    for i in range(0, len(plain), 16):
        block = plain[i : i + 16]
        x = bytes(a ^ b for a, b in zip(block, prev_c, strict=True))
        y = enc.update(x)
        c = bytes(a ^ b for a, b in zip(y, prev_p, strict=True))
        out += c
        prev_c, prev_p = c, block
    return bytes(out)


def ige_decrypt(cipher_text: bytes, key: bytes, iv: bytes) -> bytes:
    """AES-256-IGE decryption; ``cipher_text`` must be a multiple of 16 bytes."""
    if len(cipher_text) % 16:
        raise ValueError("IGE input must be a multiple of 16 bytes")
    dec = Cipher(algorithms.AES(key), modes.ECB()).decryptor()
    prev_c, prev_p = iv[:16], iv[16:32]
    out = bytearray()
    for i in range(0, len(cipher_text), 16):
        block = cipher_text[i : i + 16]
        x = bytes(a ^ b for a, b in zip(block, prev_p, strict=True))
        y = dec.update(x)
        p = bytes(a ^ b for a, b in zip(y, prev_c, strict=True))
        out += p
        prev_c, prev_p = block, p
    return bytes(out)


def kdf2(auth_key: bytes, msg_key: bytes, from_client: bool) -> tuple[bytes, bytes]:
    """MTProto 2.0 AES key and IV for a message key (x = 0 client->server, 8 server->client)."""
    x = 0 if from_client else 8
    a = sha256(msg_key, auth_key[x : x + 36])
    b = sha256(auth_key[40 + x : 76 + x], msg_key)
    return a[:8] + b[8:24] + a[24:32], b[:8] + a[8:24] + b[24:32]


def msg_key_for(auth_key: bytes, plain: bytes, from_client: bool) -> bytes:
    x = 0 if from_client else 8
    return sha256(auth_key[88 + x : 120 + x], plain)[8:24]


def auth_key_id(auth_key: bytes) -> int:
    """The 64 lower-order bits of SHA1(auth_key), as an unsigned integer."""
    return int(struct.unpack("<Q", sha1(auth_key)[-8:])[0])


def auth_key_aux_hash(auth_key: bytes) -> int:
    return int(struct.unpack("<Q", sha1(auth_key)[:8])[0])


def new_nonce_hash(auth_key: bytes, new_nonce: bytes, number: int) -> bytes:
    """new_nonce_hash1/2/3: the lower 128 bits of SHA1(new_nonce + number + auth_key_aux_hash)."""
    aux = sha1(auth_key)[:8]
    return sha1(new_nonce, bytes([number]), aux)[4:20]


def tmp_aes_from_nonces(server_nonce: bytes, new_nonce: bytes) -> tuple[bytes, bytes]:
    """tmp_aes_key and tmp_aes_iv of the DH exchange (auth_key page, step 5)."""
    h1 = sha1(new_nonce, server_nonce)
    h2 = sha1(server_nonce, new_nonce)
    h3 = sha1(new_nonce, new_nonce)
    return h1 + h2[:12], h2[12:20] + h3 + new_nonce[:4]


@dataclass(frozen=True)
class SandboxRsaKey:
    """The sandbox's RSA key: clients trust its public half (PKCS#1 PEM)."""

    n: int
    e: int
    d: int
    public_pem: str

    @property
    def fingerprint(self) -> int:
        """Telegram's fingerprint: lower 64 bits of SHA1(tl_bytes(n) + tl_bytes(e)), signed."""
        digest = sha1(tl_bytes(int_to_min_bytes(self.n)), tl_bytes(int_to_min_bytes(self.e)))
        return int(struct.unpack("<q", digest[-8:])[0])

    def decrypt_inner_data(self, block: bytes) -> bytes | None:
        """Recover p_q_inner_data from req_DH_params.encrypted_data.

        Accepts RSA_PAD (auth_key page, step 4.1: temp_key_xor + AES-IGE(reversed padded data
        + SHA256(temp_key + data))) and the legacy SHA1(data) + data + padding that Telethon
        sends. Returns the padded inner data (the caller parses the TL object), or None when
        neither check holds.
        """
        if len(block) != 256:
            return None
        plain = self.decrypt_raw(block)
        # RSA_PAD: the 256-byte result is temp_key_xor (32) + aes_encrypted (224).
        aes_encrypted = plain[32:]
        temp_key = bytes(a ^ b for a, b in zip(plain[:32], sha256(aes_encrypted), strict=True))
        data_with_hash = ige_decrypt(aes_encrypted, temp_key, bytes(32))
        data_with_padding = data_with_hash[:192][::-1]
        if sha256(temp_key, data_with_padding) == data_with_hash[192:]:
            return data_with_padding
        # Legacy: 0x00 + SHA1(data) + data + random padding (255 significant bytes).
        if plain[0] == 0:
            return plain[1:]
        return None

    def decrypt_raw(self, block: bytes) -> bytes:
        """Textbook RSA decryption of a 256-byte block (the padding is MTProto's own)."""
        value = int.from_bytes(block, "big")
        if value >= self.n:
            raise ValueError("RSA block out of range")
        return pow(value, self.d, self.n).to_bytes(256, "big")


def load_or_create_rsa_key(path: Path) -> SandboxRsaKey:
    """Load the sandbox RSA-2048 private key from ``path``, creating it (mode 0600) if absent."""
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError(f"{path} is not an RSA private key")
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
    numbers = key.private_numbers()
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
        .decode("ascii")
    )
    return SandboxRsaKey(
        n=numbers.public_numbers.n,
        e=numbers.public_numbers.e,
        d=numbers.d,
        public_pem=public_pem,
    )


# --- SRP (two-step verification), https://core.telegram.org/api/srp -------------------------


def _sh(data: bytes, salt: bytes) -> bytes:
    return sha256(salt, data, salt)


def srp_password_hash(password: str, salt1: bytes, salt2: bytes) -> int:
    """x = PH2(password, salt1, salt2) as an integer."""
    ph1 = _sh(_sh(password.encode("utf-8"), salt1), salt2)
    ph2 = _sh(hashlib.pbkdf2_hmac("sha512", ph1, salt1, 100000), salt2)
    return int.from_bytes(ph2, "big")


def srp_verifier(password: str, salt1: bytes, salt2: bytes) -> bytes:
    """v = g^x mod p, the only password-derived value the sandbox stores."""
    return int_to_256(pow(DH_G, srp_password_hash(password, salt1, salt2), DH_PRIME))


def _srp_k() -> int:
    return int.from_bytes(sha256(int_to_256(DH_PRIME), int_to_256(DH_G)), "big")


def srp_server_b(verifier: bytes, b: int) -> bytes:
    """B = (k*v + g^b) mod p."""
    v = int.from_bytes(verifier, "big")
    return int_to_256((_srp_k() * v + pow(DH_G, b, DH_PRIME)) % DH_PRIME)


def srp_check(
    verifier: bytes, b: int, salt1: bytes, salt2: bytes, a_bytes: bytes, m1: bytes
) -> bool:
    """Verify the client's proof M1 for its public value A against the stored verifier."""
    a_int = int.from_bytes(a_bytes, "big")
    if not 1 < a_int < DH_PRIME - 1:
        return False
    v = int.from_bytes(verifier, "big")
    b_pub = srp_server_b(verifier, b)
    a_pub = int_to_256(a_int)
    u = int.from_bytes(sha256(a_pub, b_pub), "big")
    s = pow(a_int * pow(v, u, DH_PRIME), b, DH_PRIME)
    k_hash = sha256(int_to_256(s))
    hp = sha256(int_to_256(DH_PRIME))
    hg = sha256(int_to_256(DH_G))
    expected = sha256(
        bytes(x ^ y for x, y in zip(hp, hg, strict=True)),
        sha256(salt1),
        sha256(salt2),
        a_pub,
        b_pub,
        k_hash,
    )
    return expected == m1
