"""Unmodified aiogram 3 polls the sandbox's Bot API and talks to a Telethon user."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
import pytest
from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramUnauthorizedError
from aiogram.filters import CommandStart
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.types import Message as BotMessage
from telethon import events

from tgsip.sandbox import Sandbox, WorldError

from .conftest import TIMEOUT, ClientFactory, login


async def test_aiogram_polling_round_trip(sandbox: Sandbox, make_client: ClientFactory) -> None:
    bot_user = sandbox.create_bot("echo_bot", "Echo")
    assert bot_user.bot_token is not None
    api_port = await sandbox.start_bot_api("127.0.0.1", 0)
    session = AiohttpSession(api=TelegramAPIServer.from_base(f"http://127.0.0.1:{api_port}"))
    bot = Bot(bot_user.bot_token, session=session)
    dp = Dispatcher()
    seen: list[str] = []

    @dp.message(CommandStart())
    async def on_start(message: BotMessage) -> None:
        seen.append(message.text or "")
        keyboard = InlineKeyboardMarkup(
            inline_keyboard=[[InlineKeyboardButton(text="Call", callback_data="call:1")]]
        )
        await message.answer(f"hello {message.from_user.first_name}", reply_markup=keyboard)

    @dp.callback_query()
    async def on_press(query: CallbackQuery) -> None:
        seen.append(f"press {query.data} by {query.from_user.first_name}")
        await query.answer(f"pressed {query.data}", show_alert=True)

    polling = asyncio.create_task(dp.start_polling(bot, handle_signals=False, polling_timeout=2))
    try:
        me = await asyncio.wait_for(bot.get_me(), TIMEOUT)
        assert me.username == "echo_bot"
        assert me.is_bot

        sandbox.create_user("15559001", "Mia")
        client = await make_client()
        await login(client, sandbox, "15559001")
        replies: asyncio.Queue[events.NewMessage.Event] = asyncio.Queue()

        @client.on(events.NewMessage(incoming=True, from_users=bot_user.id))
        async def on_reply(event: events.NewMessage.Event) -> None:
            await replies.put(event)

        await asyncio.wait_for(client.send_message("echo_bot", "/start"), TIMEOUT)
        reply = await asyncio.wait_for(replies.get(), TIMEOUT)
        assert reply.raw_text == "hello Mia"
        assert reply.buttons[0][0].data == b"call:1"
        assert seen == ["/start"]

        # A Telethon user presses the inline button; the bot's answer comes back.
        answer = await asyncio.wait_for(reply.click(0), TIMEOUT)
        assert answer.message == "pressed call:1"
        assert answer.alert
        # A scripted user presses it too.
        nina = sandbox.create_user("15559002", "Nina")
        await nina.send_message(bot_user, "/start")
        for _ in range(50):
            msgs = nina.history(bot_user, limit=1)
            if msgs and not msgs[0].out:
                break
            await asyncio.wait_for(sandbox.changed(nina.id).wait(), TIMEOUT)
        assert msgs[0].text == "hello Nina"
        query = await nina.press_button(msgs[0].id, b"call:1", timeout=TIMEOUT)
        assert query.answered
        assert query.answer_text == "pressed call:1"
        assert seen == ["/start", "press call:1 by Mia", "/start", "press call:1 by Nina"]
        with pytest.raises(WorldError):
            await nina.press_button(msgs[0].id, b"not-a-button", timeout=TIMEOUT)
    finally:
        await asyncio.wait_for(dp.stop_polling(), TIMEOUT)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(polling, TIMEOUT)
        await bot.session.close()


async def test_bot_api_errors(sandbox: Sandbox) -> None:
    bot_user = sandbox.create_bot("quiet_bot", "Quiet")
    api_port = await sandbox.start_bot_api("127.0.0.1", 0)
    base = f"http://127.0.0.1:{api_port}"
    bad = Bot("123:not-a-token", session=AiohttpSession(api=TelegramAPIServer.from_base(base)))
    try:
        with pytest.raises(TelegramUnauthorizedError):
            await asyncio.wait_for(bad.get_me(), TIMEOUT)
    finally:
        await bad.session.close()
    async with aiohttp.ClientSession() as http:
        url = f"{base}/bot{bot_user.bot_token}"
        async with http.post(f"{url}/sendMessage", json={"chat_id": 1, "text": "x"}) as resp:
            body = await resp.json()
            assert resp.status == 400
            assert body["ok"] is False
        async with http.get(f"{url}/noSuchMethod") as resp:
            assert resp.status == 404
        # An empty long poll returns after its timeout, not before and not much later.
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with http.get(f"{url}/getUpdates", params={"timeout": "1"}) as resp:
            body = await resp.json()
        assert body == {"ok": True, "result": []}
        assert 0.9 <= loop.time() - started < 5


async def test_bot_edits_and_deletes_reach_telethon(
    sandbox: Sandbox, make_client: ClientFactory
) -> None:
    bot_user = sandbox.create_bot("editor_bot", "Editor")
    assert bot_user.bot_token is not None
    api_port = await sandbox.start_bot_api("127.0.0.1", 0)
    session = AiohttpSession(api=TelegramAPIServer.from_base(f"http://127.0.0.1:{api_port}"))
    bot = Bot(bot_user.bot_token, session=session)
    try:
        olga = sandbox.create_user("15559101", "Olga")
        client = await make_client()
        await login(client, sandbox, "15559101")
        new: asyncio.Queue[events.NewMessage.Event] = asyncio.Queue()
        edited: asyncio.Queue[events.MessageEdited.Event] = asyncio.Queue()
        deleted: asyncio.Queue[events.MessageDeleted.Event] = asyncio.Queue()
        client.add_event_handler(new.put, events.NewMessage(incoming=True))
        client.add_event_handler(edited.put, events.MessageEdited())
        client.add_event_handler(deleted.put, events.MessageDeleted())

        keyboard = InlineKeyboardMarkup(
            inline_keyboard=[[InlineKeyboardButton(text="A", callback_data="a")]]
        )
        sent = await asyncio.wait_for(
            bot.send_message(olga.id, "first", reply_markup=keyboard), TIMEOUT
        )
        got = await asyncio.wait_for(new.get(), TIMEOUT)
        assert got.raw_text == "first"
        assert got.buttons[0][0].data == b"a"

        await asyncio.wait_for(
            bot.edit_message_text(text="second", chat_id=olga.id, message_id=sent.message_id),
            TIMEOUT,
        )
        change = await asyncio.wait_for(edited.get(), TIMEOUT)
        assert change.id == got.id
        assert change.raw_text == "second"
        assert change.message.reply_markup is None

        assert await asyncio.wait_for(
            bot.delete_message(chat_id=olga.id, message_id=sent.message_id), TIMEOUT
        )
        gone = await asyncio.wait_for(deleted.get(), TIMEOUT)
        assert gone.deleted_ids == [got.id]
        assert olga.history(bot_user) == []
    finally:
        await bot.session.close()
