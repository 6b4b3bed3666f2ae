"""The same bot served by a webhook: the sandbox POSTs updates to aiogram's aiohttp handler."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest_asyncio
from aiohttp import web

from tgsip.bot.webhook import webhook_app
from tgsip.sandbox import Sandbox
from tgsip.storage import ConfigStore

from .conftest import TIMEOUT, Harness, close_harness, make_harness

SECRET = "s3cret-token_1"


@pytest_asyncio.fixture
async def webhook_harness(sandbox: Sandbox, store: ConfigStore) -> AsyncIterator[Harness]:
    h = await make_harness(sandbox, store, polling=False)
    yield h
    await close_harness(h)


async def test_bot_over_webhook(webhook_harness: Harness) -> None:
    h = webhook_harness
    app = webhook_app(h.dp, h.bot, "/hook", SECRET)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        assert await h.bot.set_webhook(f"http://127.0.0.1:{port}/hook", secret_token=SECRET)
        info = await h.bot.get_webhook_info()
        assert info.url == f"http://127.0.0.1:{port}/hook"

        rec = await h.session(h.alice)
        chat = h.chat(h.alice)
        menu = await chat.send("/gateway", "sessions")
        await chat.press(menu, f"#{rec.id}")
        await chat.press(chat.current(menu), "DTMF Out")
        stored = await h.store.get_session(rec.id)
        assert stored is not None
        assert not stored.settings.dtmf_out
        info = await h.bot.get_webhook_info()
        assert info.pending_update_count == 0

        # A wrong secret is refused by the handler: the update stays pending with an error.
        assert await h.bot.set_webhook(f"http://127.0.0.1:{port}/hook", secret_token="wrong")
        await h.alice.send_message(h.bot_user, "/help")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TIMEOUT
        while (info := await h.bot.get_webhook_info()).last_error_message is None:
            assert loop.time() < deadline, "no delivery error recorded"
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(h.sandbox.changed(h.alice.id).wait(), 0.05)
        assert info.pending_update_count == 1
        assert "401" in info.last_error_message or "403" in info.last_error_message
        # With the right secret again, the pending update is delivered.
        before = chat.top_id()
        assert await h.bot.set_webhook(f"http://127.0.0.1:{port}/hook", secret_token=SECRET)
        await chat.wait_for(lambda m: "/gateway" in m.text, before)
        assert await h.bot.delete_webhook()
        assert (await h.bot.get_webhook_info()).url == ""
    finally:
        await h.bot.delete_webhook()
        await runner.cleanup()
