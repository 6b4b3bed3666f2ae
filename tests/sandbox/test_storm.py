"""Random and mutated requests over a valid session: errors, never a crash or a hang."""

from __future__ import annotations

import asyncio
import logging
import random
import struct

import pytest
from telethon.tl.alltlobjects import tlobjects
from telethon.tl.tlobject import TLRequest

from tgsip.sandbox import Sandbox

from .conftest import TIMEOUT, ClientFactory, login
from .test_protocol import BAD_SERVER_SALT, PING, PONG, RawClient

REQUEST_IDS = sorted(cid for cid, cls in tlobjects.items() if issubclass(cls, TLRequest))


async def test_request_storm(
    sandbox: Sandbox, make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox.create_user("15561001", "Pia")
    client = await make_client()
    await login(client, sandbox, "15561001")
    host, port = sandbox.advertised_address
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"\xee\xee\xee\xee")
    raw = RawClient(client.session.auth_key.key, reader, writer)
    rng = random.Random(20261127)
    caplog.set_level(logging.ERROR, logger="tgsip.sandbox")
    try:
        raw.send(struct.pack("<Iq", PING, 0))
        body = await raw.recv_until(BAD_SERVER_SALT)
        raw.salt = struct.unpack_from("<q", body, 20)[0]
        for _ in range(300):
            cid = rng.choice(REQUEST_IDS)
            tail = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 48)))
            raw.send(struct.pack("<I", cid) + tail)
        raw.send(struct.pack("<Iq", PING, 99))
        for _ in range(400):
            body = await asyncio.wait_for(raw.recv(), TIMEOUT)
            if struct.unpack_from("<I", body)[0] == PONG and body[12:20] == struct.pack("<q", 99):
                break
        else:
            raise AssertionError("no pong after the storm")
    finally:
        writer.close()
    me = await asyncio.wait_for(client.get_me(), TIMEOUT)
    assert me is None or me.first_name == "Pia"
    crashes = [r.getMessage() for r in caplog.records if r.name.startswith("tgsip.sandbox")]
    assert crashes == []
