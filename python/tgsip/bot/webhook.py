"""Serving the bot by webhook: an aiohttp application around the dispatcher.

The composition root picks polling (``Dispatcher.start_polling``) or this; Telegram (or the
sandbox) POSTs each update to ``path`` with the secret token, checked by aiogram's handler.
"""

from __future__ import annotations

from aiogram import Bot, Dispatcher
from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
from aiohttp import web


def webhook_app(dp: Dispatcher, bot: Bot, path: str, secret_token: str | None) -> web.Application:
    """An application answering updates on ``path``; run it, then ``bot.set_webhook(url,
    secret_token=...)``. Requests without the right secret get 401."""
    app = web.Application()
    SimpleRequestHandler(dispatcher=dp, bot=bot, secret_token=secret_token).register(app, path)
    setup_application(app, dp, bot=bot)
    return app
