"""MTProto TCP transports (https://core.telegram.org/mtproto/mtproto-transports).

The server detects the client's mode from its first bytes: ``0xef`` abridged,
``0xeeeeeeee`` intermediate, ``0xdddddddd`` padded intermediate, a plausible full-mode header
(length, seq 0) for full, and otherwise a 64-byte obfuscation header whose decrypted tag
names one of the three framed modes.
"""

from __future__ import annotations

import asyncio
import os
import struct
import zlib
from typing import Protocol

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

MAX_PACKET = 1 << 20


class TransportError(Exception):
    """The peer sent bytes that are not a valid frame of its transport."""


class _Ctr(Protocol):
    def update(self, data: bytes) -> bytes: ...


class Stream:
    """Reads and writes raw bytes, optionally through the obfuscation AES-CTR layer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._dec: _Ctr | None = None
        self._enc: _Ctr | None = None

    def obfuscate(self, dec: _Ctr, enc: _Ctr) -> None:
        self._dec, self._enc = dec, enc

    async def read(self, n: int) -> bytes:
        data = await self._reader.readexactly(n)
        return self._dec.update(data) if self._dec else data

    def write(self, data: bytes) -> None:
        self._writer.write(self._enc.update(data) if self._enc else data)


class Codec:
    """One framing mode: ``read_packet`` returns a payload, ``encode`` frames one."""

    name = "codec"

    def __init__(self, stream: Stream) -> None:
        self.stream = stream

    async def read_packet(self) -> bytes:
        raise NotImplementedError

    def encode(self, payload: bytes) -> bytes:
        raise NotImplementedError

    def send(self, payload: bytes) -> None:
        self.stream.write(self.encode(payload))

    def send_error(self, code: int) -> None:
        """Transport error (e.g. -404 unknown auth key): a bare negative int32 payload."""
        self.send(struct.pack("<i", code))


class AbridgedCodec(Codec):
    name = "abridged"

    async def read_packet(self) -> bytes:
        first = (await self.stream.read(1))[0]
        if first >= 0x7F:
            length = int.from_bytes(await self.stream.read(3), "little") * 4
        else:
            length = first * 4
        if length == 0 or length > MAX_PACKET:
            raise TransportError(f"abridged length {length}")
        return await self.stream.read(length)

    def encode(self, payload: bytes) -> bytes:
        words = len(payload) // 4
        if words < 0x7F:
            return bytes([words]) + payload
        return b"\x7f" + words.to_bytes(3, "little") + payload


class IntermediateCodec(Codec):
    name = "intermediate"
    padded = False

    async def read_packet(self) -> bytes:
        length = struct.unpack("<I", await self.stream.read(4))[0] & 0x7FFFFFFF
        if length == 0 or length > MAX_PACKET:
            raise TransportError(f"intermediate length {length}")
        data = await self.stream.read(length)
        if self.padded:
            data = data[: len(data) - len(data) % 4]
        return data

    def encode(self, payload: bytes) -> bytes:
        if self.padded:
            payload += os.urandom(os.urandom(1)[0] % 4)
        return struct.pack("<I", len(payload)) + payload


class PaddedIntermediateCodec(IntermediateCodec):
    name = "padded-intermediate"
    padded = True


class FullCodec(Codec):
    name = "full"

    def __init__(self, stream: Stream, first_header: bytes) -> None:
        super().__init__(stream)
        self._pending: bytes | None = first_header
        self._recv_seq = 0
        self._send_seq = 0

    async def read_packet(self) -> bytes:
        if self._pending is not None:
            header, self._pending = self._pending, None
        else:
            header = await self.stream.read(8)
        length, seq = struct.unpack("<ii", header)
        if length < 12 or length > MAX_PACKET:
            raise TransportError(f"full length {length}")
        if seq != self._recv_seq:
            raise TransportError(f"full seq {seq}, expected {self._recv_seq}")
        self._recv_seq += 1
        rest = await self.stream.read(length - 8)
        body, crc = rest[:-4], struct.unpack("<I", rest[-4:])[0]
        if zlib.crc32(header + body) != crc:
            raise TransportError("full crc mismatch")
        return body

    def encode(self, payload: bytes) -> bytes:
        data = struct.pack("<ii", len(payload) + 12, self._send_seq) + payload
        self._send_seq += 1
        return data + struct.pack("<I", zlib.crc32(data))


_TAGS: dict[bytes, type[Codec]] = {
    b"\xef\xef\xef\xef": AbridgedCodec,
    b"\xee\xee\xee\xee": IntermediateCodec,
    b"\xdd\xdd\xdd\xdd": PaddedIntermediateCodec,
}


def _ctr(key: bytes, iv: bytes, encrypt: bool) -> _Ctr:
    cipher = Cipher(algorithms.AES(key), modes.CTR(iv))
    return cipher.encryptor() if encrypt else cipher.decryptor()


async def detect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Codec:
    """Read the first bytes of a connection and return the codec for the rest of it."""
    stream = Stream(reader, writer)
    first = await reader.readexactly(1)
    if first == b"\xef":
        return AbridgedCodec(stream)
    head = first + await reader.readexactly(3)
    if head == b"\xee\xee\xee\xee":
        return IntermediateCodec(stream)
    if head == b"\xdd\xdd\xdd\xdd":
        return PaddedIntermediateCodec(stream)
    second = await reader.readexactly(4)
    length, seq = struct.unpack("<ii", head + second)
    if seq == 0 and 12 <= length <= MAX_PACKET and length % 4 == 0:
        return FullCodec(stream, head + second)
    init = head + second + await reader.readexactly(56)
    dec_key, dec_iv = init[8:40], init[40:56]
    rev = init[8:56][::-1]
    dec = _ctr(dec_key, dec_iv, encrypt=False)
    enc = _ctr(rev[:32], rev[32:48], encrypt=True)
    plain = dec.update(init)
    codec_type = _TAGS.get(plain[56:60])
    if codec_type is None:
        raise TransportError("unknown transport header")
    stream.obfuscate(dec, enc)
    return codec_type(stream)
