"""Messages of a session account: incoming ones as events, outgoing ones for the call logic.

``product.md`` §10 (keypad and Redial/Lines buttons are messages with inline keyboards), §11
(messages processing: the text becomes a number, an inline bot's answer, or an autoreply) and §12
(recordings sent to a chosen chat).

* :func:`attach_incoming` turns every incoming private message of a session account into an
  :class:`IncomingMessage` (sender id, username, phone when visible, display name, text);
* :class:`SessionMessenger` sends as the session account: text with inline keyboards
  (:meth:`~SessionMessenger.send_message`), the first result of an inline bot
  (``messages.getInlineBotResults`` + ``messages.sendInlineBotResult``,
  :meth:`~SessionMessenger.post_inline_result`), deletions
  (:meth:`~SessionMessenger.delete_messages`) and files (``upload.saveFilePart`` /
  ``saveBigFilePart`` + ``messages.sendMedia``, :meth:`~SessionMessenger.send_file`).

Peers are a user id the account has seen, ``@username`` or a phone number (``+...``; the number
is imported as a contact first, as Telegram requires).
"""

from __future__ import annotations

import asyncio
import logging
import mimetypes
import secrets
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec
from telethon import events, utils  # type: ignore[import-untyped]
from telethon.tl import functions, types  # type: ignore[import-untyped]

__all__ = [
    "INLINE_QUERY_MAX",
    "IncomingMessage",
    "InlineButton",
    "SessionMessenger",
    "attach_incoming",
]

log = logging.getLogger(__name__)

INLINE_QUERY_MAX = 256
"""Telegram's limit on an inline query (``product.md`` §11.2)."""


class IncomingMessage(msgspec.Struct, frozen=True, kw_only=True):
    """A private message received by session ``session_id``."""

    session_id: int
    message_id: int
    sender_id: int
    sender_username: str = ""
    sender_phone: str = ""
    """``+digits`` when the sender's privacy lets the account see it, else empty."""
    sender_name: str = ""
    sender_is_bot: bool = False
    text: str = ""
    date: float = 0.0


class InlineButton(msgspec.Struct, frozen=True):
    """An inline keyboard button: callback ``data`` or a ``url``."""

    text: str
    data: bytes | None = None
    url: str | None = None


Deliver = Callable[[IncomingMessage], None]


def attach_incoming(client: Any, session_id: int, deliver: Deliver, timeout: float = 20.0) -> Any:
    """Call ``deliver`` for every incoming private message of ``client``; returns the handler."""

    async def on_message(event: Any) -> None:
        if not event.is_private:
            return
        msg = event.message
        try:
            sender = await asyncio.wait_for(event.get_sender(), timeout)
        except (TimeoutError, OSError, ValueError) as exc:
            log.warning("session %d: sender of message %d unknown: %s", session_id, msg.id, exc)
            return
        if sender is None:
            return
        phone = getattr(sender, "phone", None)
        deliver(
            IncomingMessage(
                session_id=session_id,
                message_id=msg.id,
                sender_id=sender.id,
                sender_username=getattr(sender, "username", None) or "",
                sender_phone="+" + phone if phone else "",
                sender_name=utils.get_display_name(sender) or "",
                sender_is_bot=bool(getattr(sender, "bot", False)),
                text=msg.message or "",
                date=msg.date.timestamp() if msg.date is not None else 0.0,
            )
        )

    client.add_event_handler(on_message, events.NewMessage(incoming=True))
    return on_message


def _markup(buttons: Sequence[Sequence[InlineButton]] | None) -> Any:
    if not buttons:
        return None
    rows = []
    for row in buttons:
        out = []
        for b in row:
            kind: Any
            if b.url is not None:
                kind = types.InlineButtonTypeUrl(url=b.url)
            else:
                kind = types.InlineButtonTypeCallback(data=b.data or b"")
            out.append(types.KeyboardInlineButton(text=b.text, type=kind))
        rows.append(types.KeyboardInlineButtonRow(buttons=out))
    return types.ReplyInlineMarkup(rows=rows)


def _sent_id(result: Any) -> int:
    """The id of the message an ``Updates``/``UpdateShortSentMessage`` answer reports."""
    if isinstance(result, types.UpdateShortSentMessage):
        return int(result.id)
    for update in getattr(result, "updates", ()):
        if isinstance(update, types.UpdateMessageID):
            return int(update.id)
    for update in getattr(result, "updates", ()):
        if isinstance(update, types.UpdateNewMessage | types.UpdateNewChannelMessage):
            return int(update.message.id)
    raise ValueError("Telegram's answer carries no message id")


class SessionMessenger:
    """Sends as one session account through its (connected) Telethon client."""

    def __init__(self, session_id: int, client: Any, timeout: float = 20.0) -> None:
        self.session_id = session_id
        self.client = client
        self.timeout = timeout

    async def _call(self, request: Any) -> Any:
        return await asyncio.wait_for(self.client(request), self.timeout)

    async def input_peer(self, peer: int | str) -> Any:
        """A user id seen before, ``@username``, or ``+phone`` (imported as a contact)."""
        if isinstance(peer, str) and peer.startswith("+"):
            digits = "".join(c for c in peer if c.isdigit())
            try:
                return await asyncio.wait_for(self.client.get_input_entity(peer), self.timeout)
            except ValueError:
                pass
            result = await self._call(
                functions.contacts.ImportContactsRequest(
                    contacts=[
                        types.InputPhoneContact(
                            client_id=secrets.randbits(62),
                            phone=digits,
                            first_name=digits,
                            last_name="",
                        )
                    ]
                )
            )
            if not result.users:
                raise ValueError(f"no Telegram account uses {peer}")
            return utils.get_input_peer(result.users[0])
        return await asyncio.wait_for(self.client.get_input_entity(peer), self.timeout)

    async def send_message(
        self,
        peer: int | str,
        text: str,
        buttons: Sequence[Sequence[InlineButton]] | None = None,
        reply_to: int | None = None,
    ) -> int:
        """Send ``text`` (with an inline keyboard); returns the message id."""
        result = await self._call(
            functions.messages.SendMessageRequest(
                peer=await self.input_peer(peer),
                message=text,
                random_id=secrets.randbits(63),
                reply_markup=_markup(buttons),
                reply_to=types.InputReplyToMessage(reply_to_msg_id=reply_to) if reply_to else None,
                no_webpage=True,
            )
        )
        return _sent_id(result)

    async def post_inline_result(self, peer: int | str, bot: int | str, query: str) -> int | None:
        """Ask inline ``bot`` with ``query`` (cut to 256 chars) in the chat with ``peer`` and post
        its first result there; returns the posted message id, or None when it had no result."""
        chat = await self.input_peer(peer)
        bot_peer = await self.input_peer(bot)
        bot_user = utils.get_input_user(bot_peer)
        results = await self._call(
            functions.messages.GetInlineBotResultsRequest(
                bot=bot_user, peer=chat, query=query[:INLINE_QUERY_MAX], offset=""
            )
        )
        if not results.results:
            return None
        sent = await self._call(
            functions.messages.SendInlineBotResultRequest(
                peer=chat,
                random_id=secrets.randbits(63),
                query_id=results.query_id,
                id=results.results[0].id,
            )
        )
        return _sent_id(sent)

    async def delete_messages(
        self, peer: int | str, ids: Sequence[int], revoke: bool = True
    ) -> int:
        """Delete the account's messages (for both sides with ``revoke``); returns how many."""
        del peer  # private-chat message ids are per account; the peer is not needed
        result = await self._call(
            functions.messages.DeleteMessagesRequest(id=list(ids), revoke=revoke)
        )
        return int(result.pts_count)

    async def send_file(
        self,
        peer: int | str,
        path: Path,
        caption: str = "",
        mime_type: str | None = None,
        title: str = "",
    ) -> int:
        """Upload ``path`` (parts of 512 KiB; ``saveBigFilePart`` above 10 MiB) and send it as a
        document with ``caption``; returns the message id (``product.md`` §12 recordings).

        ``mime_type`` defaults to the one the file name suggests (``audio/x-wav`` for a WAV
        recording); audio files carry an audio attribute titled ``title`` (default: the stem).
        """
        if mime_type is None:
            mime_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        chat = await self.input_peer(peer)
        uploaded = await asyncio.wait_for(
            self.client.upload_file(str(path), part_size_kb=512), self.timeout * 4
        )
        attributes: list[Any] = [types.DocumentAttributeFilename(file_name=path.name)]
        if mime_type.startswith("audio/"):
            attributes.append(
                types.DocumentAttributeAudio(duration=0, voice=False, title=title or path.stem)
            )
        result = await self._call(
            functions.messages.SendMediaRequest(
                peer=chat,
                media=types.InputMediaUploadedDocument(
                    file=uploaded, mime_type=mime_type, attributes=attributes
                ),
                message=caption,
                random_id=secrets.randbits(63),
            )
        )
        return _sent_id(result)
