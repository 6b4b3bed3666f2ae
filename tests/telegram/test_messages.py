"""Messages of a session account against the sandbox: incoming events, keyboards, deletion,
inline bot results and files."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import pytest
from telethon import TelegramClient, events
from telethon.sessions import StringSession

from tgsip.sandbox import DEFAULT_API_HASH, DEFAULT_API_ID, Button, Sandbox, point_client
from tgsip.sandbox.rpc_media import InlineResult
from tgsip.telegram.messages import IncomingMessage, InlineButton

from .conftest import TIMEOUT, connect_session


async def test_incoming_messages_carry_the_sender(sandbox: Sandbox, make_gateway) -> None:
    line = sandbox.create_user("15553001", "Line")
    caller = sandbox.create_user("15553002", "Carla", username="carla", last_name="Diaz")
    gw = await make_gateway()
    heard: list[IncomingMessage] = []
    gw.manager.add_message_listener(heard.append)
    rec = (await connect_session(gw, sandbox, "+15553001")).session
    await caller.send_message(line, "2001")
    await gw.wait_for(lambda: len(heard) == 1)
    first = heard[0]
    assert first.session_id == rec.id
    assert first.sender_id == caller.id
    assert first.sender_username == "carla"
    assert first.sender_name == "Carla Diaz"
    assert first.text == "2001"
    assert not first.sender_is_bot
    assert first.sender_phone == ""  # hidden by the caller's privacy (contacts only)
    # The caller lets everybody see the number: the next message carries it.
    sandbox.world.set_privacy(caller.id, "phone_number", [{"kind": "allow_all"}])
    await caller.send_message(line, "2002")
    await gw.wait_for(lambda: len(heard) == 2)
    assert heard[1].sender_phone == "+15553002"
    assert heard[1].text == "2002"
    # Messages the session account sends itself are not incoming.
    await gw.manager.messenger(rec.id).send_message(caller.id, "echo")  # seen: id is enough
    await caller.send_message(line, "2003")
    await gw.wait_for(lambda: len(heard) == 3)
    assert [m.text for m in heard] == ["2001", "2002", "2003"]


async def test_keyboard_message_then_revoked(sandbox: Sandbox, make_gateway) -> None:
    line = sandbox.create_user("15553011", "Line")
    caller = sandbox.create_user("15553012", "Carl", username="carl")
    gw = await make_gateway()
    rec = (await connect_session(gw, sandbox, "+15553011")).session
    messenger = gw.manager.messenger(rec.id)
    keypad = [
        [InlineButton("1", data=b"k1"), InlineButton("2", data=b"k2")],
        [InlineButton("Site", url="https://example.org/")],
    ]
    msg_id = await messenger.send_message("@carl", "Keypad", buttons=keypad)
    [theirs] = caller.history(line)
    assert theirs.text == "Keypad"
    assert theirs.buttons == (
        (Button("1", data=b"k1"), Button("2", data=b"k2")),
        (Button("Site", url="https://example.org/"),),
    )
    assert await messenger.delete_messages(caller.id, [msg_id]) == 1
    assert caller.history(line) == []  # gone on both sides
    assert sandbox.world.message(line.id, msg_id) is None


async def test_send_to_phone_number_imports_contact(sandbox: Sandbox, make_gateway) -> None:
    line = sandbox.create_user("15553021", "Line")
    target = sandbox.create_user("15553022", "Tina")
    gw = await make_gateway()
    rec = (await connect_session(gw, sandbox, "+15553021")).session
    await gw.manager.messenger(rec.id).send_message("+1 555 3022", "by number")
    assert target.history(line)[0].text == "by number"
    assert sandbox.world.is_contact(line.id, target.id)
    with pytest.raises(ValueError, match="no Telegram account"):
        await gw.manager.messenger(rec.id).send_message("+15559999999", "nobody")


async def test_inline_bot_result_posted(sandbox: Sandbox, make_gateway) -> None:
    line = sandbox.create_user("15553031", "Line")
    caller = sandbox.create_user("15553032", "Carl", username="carl")
    bot = sandbox.create_bot("crm_bot", "CRM")
    queries: list[tuple[str, int]] = []

    def answer(query: str, user):
        queries.append((query, user.id))
        if query == "nothing":
            return []
        return [
            InlineResult(
                id="r1",
                title="Order",
                text=f"Order {query}: shipped",
                buttons=((Button("Track", url="https://example.org/t"),),),
            ),
            InlineResult(id="r2", title="Other", text="second"),
        ]

    sandbox.api.set_inline_bot(bot, answer)
    gw = await make_gateway()
    rec = (await connect_session(gw, sandbox, "+15553031")).session
    messenger = gw.manager.messenger(rec.id)
    msg_id = await messenger.post_inline_result("@carl", "@crm_bot", "A-17")
    assert msg_id is not None
    assert queries == [("A-17", line.id)]
    [theirs] = caller.history(line)
    assert theirs.text == "Order A-17: shipped"
    assert theirs.buttons == ((Button("Track", url="https://example.org/t"),),)
    assert theirs.from_id == line.id
    assert await messenger.post_inline_result("@carl", "@crm_bot", "nothing") is None
    assert len(caller.history(line)) == 1
    long = "x" * 300
    await messenger.post_inline_result("@carl", "@crm_bot", long)
    assert queries[-1][0] == "x" * 256


async def test_recording_file_sent_to_chat(sandbox: Sandbox, make_gateway, tmp_path: Path) -> None:
    line = sandbox.create_user("15553041", "Line")
    admin = sandbox.create_user("15553042", "Admin", username="boss")
    gw = await make_gateway()
    rec = (await connect_session(gw, sandbox, "+15553041")).session
    # The recipient watches with a real client too.
    watcher = TelegramClient(StringSession(), DEFAULT_API_ID, DEFAULT_API_HASH)
    host, port = sandbox.advertised_address
    point_client(watcher, sandbox.dc_id, host, port)
    await asyncio.wait_for(watcher.connect(), TIMEOUT)
    try:
        await asyncio.wait_for(watcher.send_code_request("15553042"), TIMEOUT)
        code = sandbox.last_login_code("15553042")
        await asyncio.wait_for(watcher.sign_in("15553042", code), TIMEOUT)
        arrived: asyncio.Future[object] = asyncio.get_running_loop().create_future()

        @watcher.on(events.NewMessage(incoming=True))
        async def on_new(event) -> None:
            if not arrived.done():
                arrived.set_result(event.message)

        body = os.urandom(700 * 1024 + 123)  # two parts of 512 KiB at most
        path = tmp_path / "call-2026-11-27.wav"
        path.write_bytes(body)
        # The administrator picked this chat: the session saw the admin when they wrote to it.
        heard: list[IncomingMessage] = []
        gw.manager.add_message_listener(heard.append)
        await admin.send_message(line, "recordings here please")
        await gw.wait_for(lambda: len(heard) == 1)
        msg_id = await gw.manager.messenger(rec.id).send_file(
            admin.id, path, caption="Incoming call, 42 s", title="Call"
        )
        theirs = admin.history(line)[0]
        assert theirs.text == "Incoming call, 42 s"
        doc = sandbox.api.media_of(admin.id, theirs.id)
        assert doc is not None
        assert hashlib.sha256(doc.data).digest() == hashlib.sha256(body).digest()
        assert doc.name == "call-2026-11-27.wav"
        assert doc.mime_type in ("audio/x-wav", "audio/wav")
        assert sandbox.api.media_of(line.id, msg_id) == doc
        got = await asyncio.wait_for(arrived, TIMEOUT)
        assert got.message == "Incoming call, 42 s"
        assert got.document is not None
        assert got.document.size == len(body)
        assert got.file.name == "call-2026-11-27.wav"
        # The recipient's client downloads exactly what was recorded.
        downloaded = await asyncio.wait_for(watcher.download_media(got, file=bytes), TIMEOUT)
        assert downloaded == body
    finally:
        await asyncio.wait_for(watcher.disconnect(), TIMEOUT)
