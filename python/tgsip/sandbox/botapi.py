"""A Bot API (HTTP) server over the sandbox world, for clients such as aiogram.

URL scheme as https://core.telegram.org/bots/api: ``/bot<token>/<method>``, parameters
in the query string, a form body or a JSON body; answers ``{"ok": true, "result": ...}`` or
``{"ok": false, "error_code": ..., "description": ...}``. Implemented: getMe, getUpdates
(long polling; the confirmed offset persists; messages and callback queries),
webhooks (setWebhook, deleteWebhook, getWebhookInfo: the server POSTs each update as JSON to the
URL with the secret-token header, in order, retrying with back-off; a method returned in the
webhook's response body is executed), sendMessage (text, inline keyboards, reply keyboards with
``request_contact`` / ``request_users`` buttons, ``remove_keyboard``), sendDocument and
sendAudio (multipart upload or a known file_id; the caption is the message text),
editMessageText, editMessageReplyMarkup, deleteMessage, answerCallbackQuery (the answer is
stored on the query, where the pressing user reads it).

Reply keyboards, shared contacts, shared users and files are sandbox-side extras kept by this
server (not in the world database): a scripted user reads the chat's reply keyboard with
``reply_keyboard`` and answers it with ``share_contact`` / ``share_users`` (see ScriptedUser).
Update ids are the bot's pts, so they only grow and survive restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from tgsip.sandbox.world import Button, CallbackQuery, Message, User, WorldError

if TYPE_CHECKING:
    from tgsip.sandbox.sandbox import Sandbox

MAX_POLL_TIMEOUT = 50
WEBHOOK_TIMEOUT_S = 10.0
"""How long one webhook POST may take before it counts as failed."""
WEBHOOK_MAX_BACKOFF_S = 30.0
MAX_FILE_BYTES = 50 * 1024 * 1024
"""The Bot API's upload limit for bots."""


@dataclass
class StoredFile:
    """A file a bot uploaded (sendDocument / sendAudio)."""

    file_id: str
    file_unique_id: str
    file_name: str
    mime_type: str
    data: bytes


@dataclass
class Webhook:
    url: str
    secret_token: str | None
    task: asyncio.Task[None] | None = None
    last_error_date: int | None = None
    last_error_message: str | None = None
    delivered: int = 0


@dataclass
class ChatExtras:
    """Sandbox-side state of one bot<->user chat that the world does not model."""

    reply_keyboard: list[list[dict[str, Any]]] | None = None
    message_extras: dict[int, dict[str, Any]] = field(default_factory=dict)
    """Extra Bot API fields of the bot's copy of a message, by message id."""


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
        self._hooks: dict[int, Webhook] = {}
        self._chats: dict[tuple[int, int], ChatExtras] = {}
        self._files: dict[str, StoredFile] = {}
        self._closing = asyncio.Event()
        """Set by stop(): pending long polls return at once instead of running out."""

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
        self._closing.set()
        for bot_id in list(self._hooks):
            await self._drop_hook(bot_id)
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
                for k, v in form.items():
                    if isinstance(v, str):
                        params[k] = v
                    elif isinstance(v, bytes | bytearray):
                        params[k] = (k, "application/octet-stream", bytes(v))
                    else:
                        data = v.file.read(MAX_FILE_BYTES + 1)
                        if len(data) > MAX_FILE_BYTES:
                            raise BotApiError(413, "Request Entity Too Large")
                        params[k] = (v.filename, v.content_type, data)
        return params

    async def _handle(self, request: web.Request) -> web.Response:
        bot = self.sandbox.world.user_by_token(request.match_info["token"])
        if bot is None or not bot.is_bot:
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
            )
        try:
            params = await self._params(request)
        except BotApiError as exc:
            return web.json_response(
                {"ok": False, "error_code": exc.code, "description": exc.description},
                status=exc.code,
            )
        return await self._call(bot, request.match_info["method"], params)

    async def _call(self, bot: User, method_name: str, params: dict[str, Any]) -> web.Response:
        handler = getattr(self, "m_" + method_name.lower(), None)
        if handler is None:
            return web.json_response(
                {"ok": False, "error_code": 404, "description": "Not Found"}, status=404
            )
        try:
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
        }
        extras = self._chat(bot.id, msg.peer_id if msg.owner_id == bot.id else msg.owner_id)
        extra = extras.message_extras.get(msg.id) if msg.owner_id == bot.id else None
        if extra:
            out.update(extra)
            if msg.text and "caption" not in extra:
                out["text"] = msg.text
        else:
            out["text"] = msg.text
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

    # --- webhooks ----------------------------------------------------------------------

    async def _drop_hook(self, bot_id: int) -> None:
        hook = self._hooks.pop(bot_id, None)
        if hook is not None and hook.task is not None:
            hook.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await hook.task

    async def m_setwebhook(self, bot: User, params: dict[str, Any]) -> bool:
        url = str(params.get("url", ""))
        await self._drop_hook(bot.id)
        if str(params.get("drop_pending_updates", "")).lower() in ("true", "1"):
            self.sandbox.world.set_bot_confirmed(bot.id, bot.pts + 1)
        if not url:
            return True
        if not url.startswith(("http://", "https://")):
            raise BotApiError(400, "Bad Request: bad webhook: invalid URL")
        secret = params.get("secret_token")
        hook = Webhook(url, str(secret) if secret else None)
        hook.task = asyncio.create_task(self._deliver(bot.id, hook))
        self._hooks[bot.id] = hook
        return True

    async def m_deletewebhook(self, bot: User, params: dict[str, Any]) -> bool:
        await self._drop_hook(bot.id)
        if str(params.get("drop_pending_updates", "")).lower() in ("true", "1"):
            self.sandbox.world.set_bot_confirmed(bot.id, bot.pts + 1)
        return True

    async def m_getwebhookinfo(self, bot: User, params: dict[str, Any]) -> dict[str, Any]:
        hook = self._hooks.get(bot.id)
        pending = len(
            self.sandbox.world.bot_updates_since(
                bot.id, self.sandbox.world.bot_confirmed(bot.id), 100
            )
        )
        out: dict[str, Any] = {
            "url": hook.url if hook else "",
            "has_custom_certificate": False,
            "pending_update_count": pending,
        }
        if hook is not None and hook.last_error_date is not None:
            out["last_error_date"] = hook.last_error_date
            out["last_error_message"] = hook.last_error_message or ""
        return out

    async def _deliver(self, bot_id: int, hook: Webhook) -> None:
        """POST the bot's updates to ``hook.url`` in order; a 2xx answer confirms one."""
        world = self.sandbox.world
        backoff = 0.5
        headers = {"Content-Type": "application/json"}
        if hook.secret_token:
            headers["X-Telegram-Bot-Api-Secret-Token"] = hook.secret_token
        timeout = aiohttp.ClientTimeout(total=WEBHOOK_TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            while True:
                bot = world.user_by_id(bot_id)
                if bot is None:
                    return
                changed = self.sandbox.changed(bot_id)
                items = world.bot_updates_since(bot_id, world.bot_confirmed(bot_id), 1)
                if not items:
                    await changed.wait()
                    continue
                item = items[0]
                error = await self._post_update(http, hook, bot, item, headers)
                if error is None:
                    world.set_bot_confirmed(bot_id, item.pts + 1)
                    hook.delivered += 1
                    backoff = 0.5
                    continue
                hook.last_error_date = self.sandbox.now()
                hook.last_error_message = error
                await asyncio.sleep(backoff)  # back-off before the retry, as Telegram does
                backoff = min(backoff * 2, WEBHOOK_MAX_BACKOFF_S)

    async def _post_update(
        self,
        http: aiohttp.ClientSession,
        hook: Webhook,
        bot: User,
        item: Message | CallbackQuery,
        headers: dict[str, str],
    ) -> str | None:
        """One delivery; returns an error text, or None when the webhook accepted it."""
        body = json.dumps(self._update_json(item, bot))
        try:
            async with http.post(hook.url, data=body, headers=headers) as resp:
                if resp.status // 100 != 2:
                    return f"Wrong response from the webhook: {resp.status} {resp.reason}"
                raw = await resp.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            return f"Connection failed: {type(exc).__name__}"
        # A method in the response body is executed as if the bot had called it.
        with contextlib.suppress(ValueError):
            answer = json.loads(raw) if raw else None
            if isinstance(answer, dict) and isinstance(answer.get("method"), str):
                method = answer.pop("method")
                await self._call(bot, method, answer)
        return None

    # --- polling -------------------------------------------------------------------------

    async def m_getupdates(self, bot: User, params: dict[str, Any]) -> list[dict[str, Any]]:
        if bot.id in self._hooks:
            raise BotApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
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
            if items or remaining <= 0 or self._closing.is_set():
                break
            waiters = {
                asyncio.ensure_future(changed.wait()),
                asyncio.ensure_future(self._closing.wait()),
            }
            _, pending = await asyncio.wait(
                waiters, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
            )
            for waiter in pending:
                waiter.cancel()
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
        return self._send(bot, chat_id, text, params, None)

    def _send(
        self,
        bot: User,
        chat_id: int,
        text: str,
        params: dict[str, Any],
        extra: dict[str, Any] | None,
    ) -> dict[str, Any]:
        raw_markup = params.get("reply_markup")
        markup = json.loads(raw_markup) if isinstance(raw_markup, str) else raw_markup
        reply_to = params.get("reply_to_message_id")
        if reply_to is None and isinstance(params.get("reply_parameters"), str | dict):
            rp = params["reply_parameters"]
            rp = json.loads(rp) if isinstance(rp, str) else rp
            reply_to = rp.get("message_id")
        try:
            mine = self.sandbox.send_message(
                bot,
                chat_id,
                text,
                buttons=None,
                markup=_parse_markup(markup),
                reply_to=int(reply_to) if reply_to else None,
            )
        except WorldError as exc:
            raise BotApiError(400, "Bad Request: chat not found") from exc
        chat = self._chat(bot.id, chat_id)
        if extra is not None:
            chat.message_extras[mine.id] = extra
        if isinstance(markup, dict):
            if "keyboard" in markup:
                chat.reply_keyboard = _reply_keyboard(markup["keyboard"])
            elif markup.get("remove_keyboard"):
                chat.reply_keyboard = None
        return self._message_json(mine, bot)

    def _chat(self, bot_id: int, user_id: int) -> ChatExtras:
        key = (bot_id, user_id)
        chat = self._chats.get(key)
        if chat is None:
            chat = self._chats[key] = ChatExtras()
        return chat

    # --- files ---------------------------------------------------------------------------

    def _file_param(self, params: dict[str, Any], name: str) -> StoredFile:
        value = params.get(name)
        if isinstance(value, str) and value.startswith("attach://"):
            value = params.get(value[len("attach://") :])
        if isinstance(value, str):
            known = self._files.get(value)
            if known is None:
                raise BotApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
            return known
        if not isinstance(value, tuple):
            raise BotApiError(400, f"Bad Request: there is no {name} in the request")
        filename, content_type, data = value
        digest = hashlib.sha256(data).hexdigest()
        stored = StoredFile(
            file_id=f"{name}-{digest[:32]}",
            file_unique_id=digest[:16],
            file_name=str(filename or name),
            mime_type=str(content_type or "application/octet-stream"),
            data=bytes(data),
        )
        self._files[stored.file_id] = stored
        return stored

    def file(self, file_id: str) -> StoredFile | None:
        """A file a bot sent, by its file_id (for scripted users and tests)."""
        return self._files.get(file_id)

    async def _send_file(self, bot: User, params: dict[str, Any], kind: str) -> dict[str, Any]:
        chat_id = int(params["chat_id"])
        stored = self._file_param(params, kind)
        caption = str(params.get("caption", ""))
        if len(caption) > 1024:
            raise BotApiError(400, "Bad Request: message caption is too long")
        media: dict[str, Any] = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_name": stored.file_name,
            "mime_type": stored.mime_type,
            "file_size": len(stored.data),
        }
        if kind == "audio":
            media["duration"] = int(params.get("duration", 0) or 0)
            for key in ("title", "performer"):
                if params.get(key):
                    media[key] = str(params[key])
        extra: dict[str, Any] = {kind: media}
        if caption:
            extra["caption"] = caption
        return self._send(bot, chat_id, caption, params, extra)

    async def m_senddocument(self, bot: User, params: dict[str, Any]) -> dict[str, Any]:
        return await self._send_file(bot, params, "document")

    async def m_sendaudio(self, bot: User, params: dict[str, Any]) -> dict[str, Any]:
        return await self._send_file(bot, params, "audio")

    # --- what scripted users do with reply keyboards ------------------------------------

    def reply_keyboard(self, bot_id: int, user_id: int) -> list[list[dict[str, Any]]] | None:
        """The reply keyboard ``bot_id`` shows ``user_id`` (None when there is none)."""
        return self._chat(bot_id, user_id).reply_keyboard

    def _keyboard_button(self, bot_id: int, user_id: int, key: str) -> list[dict[str, Any]]:
        keyboard = self.reply_keyboard(bot_id, user_id) or []
        return [b for row in keyboard for b in row if key in b]

    def user_message(self, user_id: int, bot_id: int, text: str, extra: dict[str, Any]) -> Message:
        """``user_id`` sends ``bot_id`` a message carrying Bot API ``extra`` fields."""
        mine = self.sandbox.send_message(user_id, bot_id, text)
        if mine.twin_id is not None:
            # The bot's long poll runs only after this returns, so it sees the extras.
            self._chat(bot_id, user_id).message_extras[mine.twin_id] = extra
        return mine

    def share_contact(self, user_id: int, bot_id: int) -> Message:
        """Press the chat's ``request_contact`` button: the user's own contact goes to the bot."""
        if not self._keyboard_button(bot_id, user_id, "request_contact"):
            raise WorldError("BUTTON_NOT_FOUND")
        user = self.sandbox.world.user_by_id(user_id)
        if user is None or user.phone is None:
            raise WorldError("USER_ID_INVALID")
        contact: dict[str, Any] = {
            "phone_number": user.phone,
            "first_name": user.first_name,
            "user_id": user.id,
        }
        if user.last_name:
            contact["last_name"] = user.last_name
        return self.user_message(user_id, bot_id, "", {"contact": contact})

    def share_users(self, user_id: int, bot_id: int, request_id: int, users: list[int]) -> Message:
        """Pick ``users`` with the chat's ``request_users`` button ``request_id``."""
        buttons = [
            b
            for b in self._keyboard_button(bot_id, user_id, "request_users")
            if int(b["request_users"].get("request_id", -1)) == request_id
        ]
        if not buttons:
            raise WorldError("BUTTON_NOT_FOUND")
        request = buttons[0]["request_users"]
        if not users or len(users) > int(request.get("max_quantity", 1)):
            raise WorldError("USERS_TOO_MUCH")
        shared = []
        for uid in users:
            picked = self.sandbox.world.user_by_id(uid)
            if picked is None:
                raise WorldError("USER_ID_INVALID")
            if "user_is_bot" in request and bool(request["user_is_bot"]) != picked.is_bot:
                raise WorldError("USER_ID_INVALID")
            item: dict[str, Any] = {"user_id": picked.id}
            if request.get("request_name"):
                item["first_name"] = picked.first_name
                if picked.last_name:
                    item["last_name"] = picked.last_name
            if request.get("request_username") and picked.username:
                item["username"] = picked.username
            shared.append(item)
        return self.user_message(
            user_id, bot_id, "", {"users_shared": {"request_id": request_id, "users": shared}}
        )


def _reply_keyboard(rows: Any) -> list[list[dict[str, Any]]]:
    if not isinstance(rows, list):
        raise BotApiError(400, "Bad Request: keyboard must be an array of button rows")
    out: list[list[dict[str, Any]]] = []
    for row in rows:
        if not isinstance(row, list):
            raise BotApiError(400, "Bad Request: keyboard row must be an array")
        buttons = []
        for b in row:
            button = {"text": b} if isinstance(b, str) else b
            if not isinstance(button, dict) or not isinstance(button.get("text"), str):
                raise BotApiError(400, "Bad Request: keyboard button must have a text")
            buttons.append(button)
        out.append(buttons)
    return out
