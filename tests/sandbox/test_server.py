"""Persistence across restarts, transports and malformed input."""

from __future__ import annotations

import asyncio
import os
import struct
import zlib
from pathlib import Path

import pytest
from telethon import TelegramClient, connection, functions, types
from telethon.crypto import rsa
from telethon.sessions import StringSession

from tgsip.sandbox import DEFAULT_API_HASH, DEFAULT_API_ID, Sandbox

from .conftest import TIMEOUT, ClientFactory, login


async def test_restart_keeps_users_and_authorization(tmp_path: Path, rsa_dir: Path) -> None:
    data = tmp_path / "persist"
    data.mkdir()
    key = rsa_dir / "rsa_key.pem"
    if key.exists():
        (data / "rsa_key.pem").write_bytes(key.read_bytes())
    first = Sandbox(data)
    rsa.add_key(first.public_key_pem, old=False)
    port = await first.start("127.0.0.1", 0)
    user = first.create_user("15554001", "Heidi", username="heidi")
    client = TelegramClient(
        StringSession(),
        DEFAULT_API_ID,
        DEFAULT_API_HASH,
        timeout=5,
        connection_retries=1,
        retry_delay=0,
    )
    client.session.set_dc(first.dc_id, "127.0.0.1", port)
    await asyncio.wait_for(client.connect(), TIMEOUT)
    await login(client, first, "15554001")
    saved = client.session.save()
    await asyncio.wait_for(client.disconnect(), TIMEOUT)
    await first.stop()
    first.close()

    second = Sandbox(data)
    assert second.fingerprint == first.fingerprint
    port = await second.start("127.0.0.1", 0)
    try:
        again = TelegramClient(
            StringSession(saved),
            DEFAULT_API_ID,
            DEFAULT_API_HASH,
            timeout=5,
            connection_retries=1,
            retry_delay=0,
        )
        again.session.set_dc(second.dc_id, "127.0.0.1", port)
        await asyncio.wait_for(again.connect(), TIMEOUT)
        assert await asyncio.wait_for(again.is_user_authorized(), TIMEOUT)
        me = await asyncio.wait_for(again.get_me(), TIMEOUT)
        assert me.id == user.id
        assert me.username == "heidi"
        codes_before = second.last_login_code("15554001")
        assert codes_before is not None  # only the one from the first run: no new login
        await asyncio.wait_for(again.disconnect(), TIMEOUT)
    finally:
        await second.stop()
        second.close()


@pytest.mark.parametrize(
    "mode",
    [
        connection.ConnectionTcpFull,
        connection.ConnectionTcpAbridged,
        connection.ConnectionTcpIntermediate,
        connection.ConnectionTcpObfuscated,
    ],
)
async def test_transports(sandbox: Sandbox, mode: type, make_client: ClientFactory) -> None:
    sandbox.create_user("15555001", "Ivan")
    client = await make_client(connection=mode)
    me = await login(client, sandbox, "15555001")
    assert me.first_name == "Ivan"
    config = await asyncio.wait_for(client(functions.help.GetConfigRequest()), TIMEOUT)
    assert config.dc_options[0].port == sandbox.advertised_address[1]


async def _raw(sandbox: Sandbox, payload: bytes) -> bytes:
    """Send raw bytes; return what the server sent back before closing (bounded)."""
    host, port = sandbox.advertised_address
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), TIMEOUT)
    writer.write(payload)
    await writer.drain()
    writer.write_eof()
    try:
        return await asyncio.wait_for(reader.read(65536), TIMEOUT)
    finally:
        writer.close()


def _full(body: bytes, seq: int = 0) -> bytes:
    data = struct.pack("<ii", len(body) + 12, seq) + body
    return data + struct.pack("<I", zlib.crc32(data))


async def test_malformed_input_does_not_hurt_others(
    sandbox: Sandbox, make_client: ClientFactory
) -> None:
    sandbox.create_user("15556001", "Judy")
    client = await make_client()
    await login(client, sandbox, "15556001")

    assert await _raw(sandbox, os.urandom(200)) == b""
    assert await _raw(sandbox, b"\xef\x10" + os.urandom(5)) == b""  # truncated abridged frame
    assert await _raw(sandbox, b"\xee\xee\xee\xee" + struct.pack("<I", 1 << 30)) == b""
    bad_crc = bytearray(_full(struct.pack("<qqi", 0, 0, 4) + b"\x00" * 4))
    bad_crc[-1] ^= 0xFF
    assert await _raw(sandbox, bytes(bad_crc)) == b""
    # Unknown auth key: a transport error -404, then the connection is closed.
    unknown = _full(struct.pack("<Q", 0x1234) + os.urandom(16 + 64))
    reply = await _raw(sandbox, unknown)
    assert reply[8:12] == struct.pack("<i", -404)
    # A known auth key with a forged msg_key: -404 and closed.
    key_id = struct.unpack("<Q", client.session.auth_key.key_id.to_bytes(8, "little"))[0]
    forged = _full(struct.pack("<Q", key_id) + os.urandom(16 + 64))
    reply = await _raw(sandbox, forged)
    assert reply[8:12] == struct.pack("<i", -404)
    # An unknown plain request closes only that connection.
    assert (
        await _raw(sandbox, _full(struct.pack("<qqi", 0, 1 << 32, 4) + b"\x01\x02\x03\x04")) == b""
    )

    # The signed-in client keeps working throughout.
    me = await asyncio.wait_for(client.get_me(), TIMEOUT)
    assert me.first_name == "Judy"


class _UnknownRequest(functions.help.GetConfigRequest):  # type: ignore[misc]
    """A request with a constructor id the schema does not know."""

    CONSTRUCTOR_ID = 0xDEADBEEF

    def _bytes(self) -> bytes:
        return struct.pack("<I", self.CONSTRUCTOR_ID)


class _TruncatedRequest(functions.users.GetUsersRequest):  # type: ignore[misc]
    """users.getUsers cut off in the middle of its vector."""

    def _bytes(self) -> bytes:
        return struct.pack("<IIi", 0x0D91A548, 0x1CB5C415, 5)


async def test_bad_requests_get_rpc_errors(sandbox: Sandbox, make_client: ClientFactory) -> None:
    from telethon import errors

    sandbox.create_user("15557001", "Karl")
    client = await make_client()
    await login(client, sandbox, "15557001")
    with pytest.raises(errors.InputMethodInvalidError):
        await asyncio.wait_for(client(_UnknownRequest()), TIMEOUT)
    with pytest.raises(errors.InputFetchErrorError):
        await asyncio.wait_for(client(_TruncatedRequest([])), TIMEOUT)
    with pytest.raises(errors.PeerIdInvalidError):
        await asyncio.wait_for(
            client(
                functions.messages.SendMessageRequest(peer=types.InputPeerUser(1, 1), message="x")
            ),
            TIMEOUT,
        )
    me = await asyncio.wait_for(client.get_me(), TIMEOUT)
    assert me.first_name == "Karl"
