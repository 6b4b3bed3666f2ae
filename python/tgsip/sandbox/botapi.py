"""A Bot API (HTTP) server over the sandbox world, for clients such as aiogram.

URL scheme as https://core.telegram.org/bots/api: ``/bot<token>/<method>``, parameters
in the query string, a form body or a JSON body; answers ``{"ok": true, "result": ...}`` or
``{"ok": false, "error_code": ..., "description": ...}``. Implemented: getMe, getUpdates
(long polling; the confirmed offset persists; messages and callback queries),
sendMessage (text, inline keyboards), editMessageText, editMessageReplyMarkup,
deleteMessage, answerCallbackQuery,
deleteWebhook and getWebhookInfo (no webhook is ever set).
Update ids are the bot's pts, so they only grow and survive restarts.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

from tgsip.sandbox.world import Button, CallbackQuery, Message, User, WorldError

if TYPE_CHECKING:
    from tgsip.sandbox.sandbox import Sandbox

MAX_POLL_TIMEOUT = 50


class BotApiError(Exception):
    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


def user_json(user: User) -> dict[str, Any]:
    out: dict[str, Any] = {"id": user.id, "is_bot": user.is_bot, "first_name": user.first_name}
    if user.last_name:
        out["last_name"] = user.last_name
    if user.username:
        out["username"] = user.username
    return out


def _markup_json(buttons: tuple[tuple[Button, ...], ...] | None) -> dict[str, Any] | None:
    if buttons is None:
        return None
    rows = []
    for row in buttons:
        out = []
        for b in row:
            item: dict[str, Any] = {"text": b.text}
            if b.url is not None:
                item["url"] = b.url
            else:
                item["callback_data"] = (b.data or b"").decode("utf-8", "replace")
            out.append(item)
        rows.append(out)
    return {"inline_keyboard": rows}


def _parse_markup(raw: Any) -> tuple[tuple[Button, ...], ...] | None:
    if raw is None:
        return None
    markup = json.loads(raw) if isinstance(raw, str) else raw
    if not isinstance(markup, dict) or "inline_keyboard" not in markup:
        return None
    rows = []
    for row in markup["inline_keyboard"]:
        out = []
        for b in row:
            if "url" in b:
                out.append(Button(text=str(b["text"]), url=str(b["url"])))
            elif "callback_data" in b:
                out.append(Button(text=str(b["text"]), data=str(b["callback_data"]).encode()))
            else:
                raise BotApiError(400, "Bad Request: unsupported inline keyboard button")
        rows.append(tuple(out))
    return tuple(rows)


class BotApiServer:
    """Serves the Bot API for every bot in ``sandbox``'s world."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self._runner: web.AppRunner | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen on ``host``:``port`` (0 picks one); returns the bound port."""
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        addresses = self._runner.addresses
        return int(addresses[0][1]) if addresses else port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- plumbing ----------------------------------------------------------------------

    async def _params(self, request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query)
        if request.can_read_body:
            if request.content_type == "application/json":
                body = await request.json()
                if isinstance(body, dict):
                    params.update(body)
            else:
                form = await request.post()
                params.update({k: v for k, v in form.items() if isinstance(v, str)})
        return params

    async def _handle(self, request: web.Request) -> web.Response:
        bot = self.sandbox.world.user_by_token(request.match_info["token"])
        if bot is None or not bot.is_bot:
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
            )
        method = request.match_info["method"].lower()
        handler = getattr(self, "m_" + method, None)
        if handler is None:
            return web.json_response(
                {"ok": False, "error_code": 404, "description": "Not Found"}, status=404
            )
        try:
            params = await self._params(request)
            result = await handler(bot, params)
        except BotApiError as exc:
            return web.json_response(
                {"ok": False, "error_code": exc.code, "description": exc.description},
                status=exc.code,
            )
        except (ValueError, KeyError, TypeError) as exc:
            return web.json_response(
                {"ok": False, "error_code": 400, "description": f"Bad Request: {exc}"},
                status=400,
            )
        return web.json_response({"ok": True, "result": result})

    def _message_json(self, msg: Message, bot: User) -> dict[str, Any]:
        world = self.sandbox.world
        sender = world.user_by_id(msg.from_id)
        chat = world.user_by_id(msg.peer_id)
        if sender is None or chat is None:
            raise BotApiError(400, "Bad Request: message peer vanished")
        chat_json: dict[str, Any] = {"id": chat.id, "type": "private"}
        chat_json.update({k: v for k, v in user_json(chat).items() if k != "is_bot" and k != "id"})
        out: dict[str, Any] = {
            "message_id": msg.id,
            "from": user_json(sender),
            "chat": chat_json,
            "date": msg.date,
            "text": msg.text,
        }
        if msg.text.startswith("/"):
            command = msg.text.split()[0]
            out["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        markup = _markup_json(msg.buttons)
        if markup is not None:
            out["reply_markup"] = markup
        return out

    # --- methods -----------------------------------------------------------------------

    async def m_getme(self, bot: User, params: dict[str, Any]) -> dict[str, Any]:
        out = user_json(bot)
        out.update(
            can_join_groups=False,
            can_read_all_group_messages=False,
            supports_inline_queries=False,
        )
        return out

    async def m_deletewebhook(self, bot: User, params: dict[str, Any]) -> bool:
        if str(params.get("drop_pending_updates", "")).lower() in ("true", "1"):
            self.sandbox.world.set_bot_confirmed(bot.id, bot.pts + 1)
        return True

    async def m_getwebhookinfo(self, bot: User, params: dict[str, Any]) -> dict[str, Any]:
        return {"url": "", "has_custom_certificate": False, "pending_update_count": 0}

    async def m_getupdates(self, bot: User, params: dict[str, Any]) -> list[dict[str, Any]]:
        world = self.sandbox.world
        offset = int(params.get("offset", 0))
        limit = max(1, min(int(params.get("limit", 100)), 100))
        timeout = max(0, min(int(params.get("timeout", 0)), MAX_POLL_TIMEOUT))
        if offset > 0:
            world.set_bot_confirmed(bot.id, offset)
        since = world.bot_confirmed(bot.id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            changed = self.sandbox.changed(bot.id)
            items = world.bot_updates_since(bot.id, since, limit)
            remaining = deadline - loop.time()
            if items or remaining <= 0:
                break
            try:
                await asyncio.wait_for(changed.wait(), remaining)
            except TimeoutError:
                continue
        return [self._update_json(item, bot) for item in items]

    def _update_json(self, item: Message | CallbackQuery, bot: User) -> dict[str, Any]:
        if isinstance(item, Message):
            return {"update_id": item.pts, "message": self._message_json(item, bot)}
        presser = self.sandbox.world.user_by_id(item.user_id)
        msg = self.sandbox.world.message(bot.id, item.bot_msg_id)
        if presser is None:
            raise BotApiError(500, "Internal Server Error: callback user vanished")
        query: dict[str, Any] = {
            "id": str(item.id),
            "from": user_json(presser),
            "chat_instance": str(bot.id ^ presser.id),
            "data": item.data.decode("utf-8", "replace"),
        }
        if msg is not None:
            query["message"] = self._message_json(msg, bot)
        return {"update_id": item.pts, "callback_query": query}

    def _own_message(self, bot: User, params: dict[str, Any]) -> Message:
        msg = self.sandbox.world.message(bot.id, int(params["message_id"]))
        if msg is None or msg.peer_id != int(params["chat_id"]):
            raise BotApiError(400, "Bad Request: message to edit not found")
        return msg

    async def m_editmessagetext(self, bot: User, params: dict[str, Any]) -> dict[str, Any]:
        msg = self._own_message(bot, params)
        if not msg.out:
            raise BotApiError(400, "Bad Request: message can't be edited")
        text = str(params.get("text", ""))
        if not text.strip():
            raise BotApiError(400, "Bad Request: message text is empty")
        markup = _parse_markup(params.get("reply_markup"))
        edited = self.sandbox.edit_message(
            bot,
            msg.id,
            text=text,
            buttons=[list(r) for r in markup] if markup else None,
            set_buttons=True,
        )
        return self._message_json(edited, bot)

    async def m_editmessagereplymarkup(self, bot: User, params: dict[str, Any]) -> dict[str, Any]:
        msg = self._own_message(bot, params)
        if not msg.out:
            raise BotApiError(400, "Bad Request: message can't be edited")
        markup = _parse_markup(params.get("reply_markup"))
        edited = self.sandbox.edit_message(
            bot, msg.id, buttons=[list(r) for r in markup] if markup else None, set_buttons=True
        )
        return self._message_json(edited, bot)

    async def m_deletemessage(self, bot: User, params: dict[str, Any]) -> bool:
        msg = self._own_message(bot, params)
        return self.sandbox.delete_message(bot, msg.id, revoke=True)

    async def m_answercallbackquery(self, bot: User, params: dict[str, Any]) -> bool:
        query_id = int(params["callback_query_id"])
        query = self.sandbox.world.callback_query(query_id)
        if query is None or query.bot_id != bot.id:
            raise BotApiError(400, "Bad Request: query is too old or query ID is invalid")
        text = params.get("text")
        alert = str(params.get("show_alert", "")).lower() in ("true", "1")
        url = params.get("url")
        if not self.sandbox.answer_callback_query(
            query_id,
            str(text) if text is not None else None,
            alert,
            str(url) if url is not None else None,
        ):
            raise BotApiError(400, "Bad Request: query is too old or query ID is invalid")
        return True

    async def m_sendmessage(self, bot: User, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = int(params["chat_id"])
        text = str(params.get("text", ""))
        if not text.strip():
            raise BotApiError(400, "Bad Request: message text is empty")
        if len(text) > 4096:
            raise BotApiError(400, "Bad Request: message is too long")
        reply_to = params.get("reply_to_message_id")
        try:
            mine = self.sandbox.send_message(
                bot,
                chat_id,
                text,
                buttons=None,
                markup=_parse_markup(params.get("reply_markup")),
                reply_to=int(reply_to) if reply_to else None,
            )
        except WorldError as exc:
            raise BotApiError(400, "Bad Request: chat not found") from exc
        return self._message_json(mine, bot)
