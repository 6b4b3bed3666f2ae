"""Bot API extras for the administrator bot: files, reply keyboards with pickers, webhook
conflicts; driven by unmodified aiogram and scripted users."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aiohttp
import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import (
    BufferedInputFile,
    KeyboardButton,
    KeyboardButtonRequestUsers,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
)
from aiohttp import web

from tgsip.sandbox import Sandbox, WorldError

from .conftest import TIMEOUT


async def _bot(sandbox: Sandbox, name: str) -> tuple[Bot, int, str]:
    bot_user = sandbox.create_bot(name, "Files")
    assert bot_user.bot_token is not None
    port = await sandbox.start_bot_api("127.0.0.1", 0)
    api = TelegramAPIServer.from_base(f"http://127.0.0.1:{port}")
    return (
        Bot(bot_user.bot_token, session=AiohttpSession(api=api)),
        bot_user.id,
        f"http://127.0.0.1:{port}/bot{bot_user.bot_token}",
    )


async def test_send_document_and_audio_multipart(sandbox: Sandbox) -> None:
    bot, bot_id, _ = await _bot(sandbox, "files_bot")
    try:
        ann = sandbox.create_user("15559301", "Ann")
        payload = bytes(range(256)) * 40
        sent = await bot.send_document(
            ann.id, BufferedInputFile(payload, "call-17.ogg"), caption="Recording of call 17"
        )
        assert sent.document is not None
        assert sent.document.file_name == "call-17.ogg"
        assert sent.document.file_size == len(payload)
        assert sent.caption == "Recording of call 17"
        (got,) = ann.history(bot_id)
        assert got.text == "Recording of call 17"
        assert sandbox.bot_api is not None
        stored = sandbox.bot_api.file(sent.document.file_id)
        assert stored is not None
        assert stored.data == payload
        audio = await bot.send_audio(
            ann.id, BufferedInputFile(b"OggS" + payload, "a.ogg"), duration=3, title="Call"
        )
        assert audio.audio is not None
        assert (audio.audio.duration, audio.audio.title) == (3, "Call")
        # A known file_id is sent again without an upload; an unknown one is refused.
        again = await bot.send_document(ann.id, sent.document.file_id)
        assert again.document is not None
        assert again.document.file_id == sent.document.file_id
        with pytest.raises(TelegramBadRequest, match="wrong file identifier"):
            await bot.send_document(ann.id, "document-unknown")
    finally:
        await bot.session.close()


async def test_reply_keyboards_contact_and_user_pickers(sandbox: Sandbox) -> None:
    bot, bot_id, url = await _bot(sandbox, "picker_bot")
    try:
        ann = sandbox.create_user("15559311", "Ann", last_name="Lee")
        ben = sandbox.create_user("15559312", "Ben", username="ben_b")
        with pytest.raises(WorldError, match="BUTTON_NOT_FOUND"):
            await ann.share_contact(bot_id)
        await bot.send_message(
            ann.id,
            "Share",
            reply_markup=ReplyKeyboardMarkup(
                keyboard=[
                    [KeyboardButton(text="Phone", request_contact=True)],
                    [
                        KeyboardButton(
                            text="Pick",
                            request_users=KeyboardButtonRequestUsers(
                                request_id=7, user_is_bot=False, max_quantity=1,
                                request_name=True, request_username=True,
                            ),
                        )
                    ],
                ]
            ),
        )  # fmt: skip
        keyboard = ann.reply_keyboard(bot_id)
        assert keyboard is not None
        assert keyboard[0][0] == {"text": "Phone", "request_contact": True}
        await ann.share_contact(bot_id)
        await ann.share_users(bot_id, 7, [ben])
        with pytest.raises(WorldError, match="USERS_TOO_MUCH"):
            await ann.share_users(bot_id, 7, [ben, ann])
        with pytest.raises(WorldError, match="BUTTON_NOT_FOUND"):
            await ann.share_users(bot_id, 8, [ben])
        updates = await bot.get_updates(timeout=0)
        contact = updates[0].message.contact  # type: ignore[union-attr]
        assert contact is not None
        assert (contact.phone_number, contact.first_name, contact.last_name, contact.user_id) == (
            "15559311", "Ann", "Lee", ann.id,
        )  # fmt: skip
        shared = updates[1].message.users_shared  # type: ignore[union-attr]
        assert shared is not None
        assert shared.request_id == 7
        assert [(u.user_id, u.first_name, u.username) for u in shared.users] == [
            (ben.id, "Ben", "ben_b")
        ]
        await bot.send_message(ann.id, "Done", reply_markup=ReplyKeyboardRemove())
        assert ann.reply_keyboard(bot_id) is None

        # While a webhook is set, getUpdates is a conflict.
        assert await bot.set_webhook("http://127.0.0.1:9/hook")
        async with aiohttp.ClientSession() as http, http.get(f"{url}/getUpdates") as resp:
            assert resp.status == 409
        with pytest.raises(TelegramBadRequest, match="invalid URL"):
            await bot.set_webhook("ftp://example/hook")
        assert await bot.delete_webhook()
        assert await bot.get_updates(timeout=0) is not None
    finally:
        await bot.session.close()


async def test_webhook_delivers_in_order_and_runs_the_method_in_the_response(
    sandbox: Sandbox,
) -> None:
    bot, bot_id, _ = await _bot(sandbox, "hook_bot")
    cara = sandbox.create_user("15559321", "Cara")
    seen: list[dict[str, Any]] = []
    secrets: list[str | None] = []
    got_two = asyncio.Event()

    async def hook(request: web.Request) -> web.Response:
        update = await request.json()
        seen.append(update)
        secrets.append(request.headers.get("X-Telegram-Bot-Api-Secret-Token"))
        if len(seen) == 2:
            got_two.set()
        chat = update["message"]["chat"]["id"]
        return web.json_response(
            {"method": "sendMessage", "chat_id": chat, "text": f"echo {update['message']['text']}"}
        )

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        await cara.send_message(bot_id, "one")
        await cara.send_message(bot_id, "two")
        assert await bot.set_webhook(f"http://127.0.0.1:{port}/hook", secret_token="tok")
        await asyncio.wait_for(got_two.wait(), TIMEOUT)
        assert [u["message"]["text"] for u in seen] == ["one", "two"]
        assert seen[0]["update_id"] < seen[1]["update_id"]
        assert secrets == ["tok", "tok"]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TIMEOUT
        while len([m for m in cara.history(bot_id) if not m.out]) < 2:
            assert loop.time() < deadline, "the responses' sendMessage did not arrive"
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(sandbox.changed(cara.id).wait(), 1)
        replies = sorted(m.text for m in cara.history(bot_id) if not m.out)
        assert replies == ["echo one", "echo two"]
        info = await bot.get_webhook_info()
        assert info.pending_update_count == 0
    finally:
        await bot.delete_webhook()
        await runner.cleanup()
        await bot.session.close()
