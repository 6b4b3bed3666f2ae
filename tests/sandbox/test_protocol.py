"""Service messages on the wire: a hand-built MTProto 2.0 client over an established key."""

from __future__ import annotations

import asyncio
import gzip
import os
import struct
import time

from telethon.tl import functions

from tgsip.sandbox import Sandbox, crypto
from tgsip.sandbox.tl import parse_object, tl_bytes

from .conftest import TIMEOUT, ClientFactory, login

PING = 0x7ABE77EC
PONG = 0x347773C5
BAD_SERVER_SALT = 0xEDAB447B
BAD_MSG_NOTIFICATION = 0xA7EFF811
NEW_SESSION_CREATED = 0x9EC20908
RPC_RESULT = 0xF35C6D01
RPC_ERROR = 0x2144CA19
MSG_CONTAINER = 0x73F1F8DC
GZIP_PACKED = 0x3072CFA1


class RawClient:
    """Intermediate transport + MTProto 2.0 encryption, written from the spec for tests."""

    def __init__(self, key: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.key = key
        self.key_id = crypto.auth_key_id(key)
        self.reader, self.writer = reader, writer
        self.session_id = struct.unpack("<q", os.urandom(8))[0]
        self.salt = 0
        self.seq = 0
        self.last_id = 0

    def msg_id(self) -> int:
        now = time.time()
        value = (int(now) << 32) | (int((now % 1) * 2**32) & ~3 & 0xFFFFFFFF)
        self.last_id = max(value, self.last_id + 4)
        return self.last_id

    def send(self, body: bytes, msg_id: int | None = None) -> int:
        msg_id = self.msg_id() if msg_id is None else msg_id
        self.seq += 1
        plain = (
            struct.pack("<qqqii", self.salt, self.session_id, msg_id, self.seq * 2 - 1, len(body))
            + body
        )
        plain += os.urandom(-(len(plain) + 12) % 16 + 12)
        msg_key = crypto.msg_key_for(self.key, plain, from_client=True)
        aes_key, iv = crypto.kdf2(self.key, msg_key, from_client=True)
        payload = struct.pack("<Q", self.key_id) + msg_key + crypto.ige_encrypt(plain, aes_key, iv)
        self.writer.write(struct.pack("<I", len(payload)) + payload)
        return msg_id

    async def recv(self) -> bytes:
        (length,) = struct.unpack("<I", await self.reader.readexactly(4))
        payload = await self.reader.readexactly(length)
        msg_key = payload[8:24]
        aes_key, iv = crypto.kdf2(self.key, msg_key, from_client=False)
        plain = crypto.ige_decrypt(payload[24:], aes_key, iv)
        assert crypto.msg_key_for(self.key, plain, from_client=False) == msg_key
        _salt, session_id, msg_id, _seq, size = struct.unpack_from("<qqqii", plain)
        assert session_id == self.session_id
        assert msg_id % 2 == 1
        return plain[32 : 32 + size]

    async def recv_until(self, constructor: int) -> bytes:
        for _ in range(8):
            body = await asyncio.wait_for(self.recv(), TIMEOUT)
            if struct.unpack_from("<I", body)[0] == constructor:
                return body
        raise AssertionError(f"no {constructor:#x} in 8 messages")


async def test_service_messages(sandbox: Sandbox, make_client: ClientFactory) -> None:
    sandbox.create_user("15560001", "Nora")
    client = await make_client()
    await login(client, sandbox, "15560001")
    host, port = sandbox.advertised_address
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"\xee\xee\xee\xee")
    raw = RawClient(client.session.auth_key.key, reader, writer)
    try:
        # Salt 0 is wrong: new_session_created, then bad_server_salt with the right salt.
        first = raw.send(struct.pack("<Iq", PING, 1))
        body = await raw.recv_until(NEW_SESSION_CREATED)
        assert struct.unpack_from("<q", body, 4)[0] == first
        body = await raw.recv_until(BAD_SERVER_SALT)
        bad_id, _seq, code, new_salt = struct.unpack_from("<qiiq", body, 4)
        assert (bad_id, code) == (first, 48)
        raw.salt = new_salt

        ping = raw.send(struct.pack("<Iq", PING, 42))
        body = await raw.recv_until(PONG)
        assert struct.unpack_from("<qq", body, 4) == (ping, 42)

        # msg_id too old (16) and not divisible by 4 (18).
        old = ((int(time.time()) - 3600) << 32) | 4
        raw.send(struct.pack("<Iq", PING, 2), msg_id=old)
        body = await raw.recv_until(BAD_MSG_NOTIFICATION)
        assert struct.unpack_from("<qii", body, 4) == (old, raw.seq * 2 - 1, 16)
        odd = raw.msg_id() + 1
        raw.send(struct.pack("<Iq", PING, 3), msg_id=odd)
        body = await raw.recv_until(BAD_MSG_NOTIFICATION)
        assert struct.unpack_from("<qii", body, 4)[2] == 18

        # A container holding a plain ping and a gzip_packed help.getNearestDc.
        inner_ping = struct.pack("<Iq", PING, 7)
        nearest = bytes(functions.help.GetNearestDcRequest())
        packed = struct.pack("<I", GZIP_PACKED) + tl_bytes(gzip.compress(nearest))
        id1, id2 = raw.msg_id(), raw.msg_id()
        container = struct.pack("<Ii", MSG_CONTAINER, 2)
        container += struct.pack("<qii", id1, 1, len(inner_ping)) + inner_ping
        container += struct.pack("<qii", id2, 3, len(packed)) + packed
        raw.send(container)
        body = await raw.recv_until(PONG)
        assert struct.unpack_from("<qq", body, 4) == (id1, 7)
        body = await raw.recv_until(RPC_RESULT)
        assert struct.unpack_from("<q", body, 4)[0] == id2
        result = parse_object(body[12:])
        assert result.this_dc == sandbox.dc_id

        # An unknown method: rpc_error INPUT_METHOD_INVALID, and the session goes on.
        bogus = raw.send(struct.pack("<I", 0x0BADF00D))
        body = await raw.recv_until(RPC_RESULT)
        assert struct.unpack_from("<qI", body, 4) == (bogus, RPC_ERROR)
        error = parse_object(body[12:])
        assert (error.error_code, error.error_message) == (400, "INPUT_METHOD_INVALID")
        raw.send(struct.pack("<Iq", PING, 9))
        body = await raw.recv_until(PONG)
        assert struct.unpack_from("<q", body, 12)[0] == 9
    finally:
        writer.close()
