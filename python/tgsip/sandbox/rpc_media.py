"""Sandbox API methods for files, media messages and inline bots, and the sandbox's account rules.

Mixed into :class:`tgsip.sandbox.rpc.Api`. Served methods (Telegram's error names):

* ``upload.saveFilePart`` / ``upload.saveBigFilePart``: parts of at most 512 KiB (a multiple of
  1 KiB except the last), ``FILE_PART_INVALID``, ``FILE_PART_SIZE_INVALID``,
  ``FILE_PART_EMPTY``, ``FILE_PARTS_INVALID``; parts live in memory until used by
* ``upload.getFile`` serves a stored document back (``inputDocumentFileLocation``);
* ``messages.sendMedia`` with ``inputMediaUploadedDocument``: the parts are joined (count and,
  for small files, the MD5 checked: ``FILE_PARTS_INVALID``, ``MD5_CHECKSUM_INVALID``) into a
  document kept in ``<data_dir>/media.sqlite3``; both sides get the message (the caption as its
  text) and the live clients an ``updateNewMessage`` carrying ``messageMediaDocument``;
* ``messages.getInlineBotResults`` / ``messages.sendInlineBotResult``: a bot answers inline
  queries through a handler set with :meth:`MediaApi.set_inline_bot` (``BOT_INLINE_DISABLED``
  otherwise); results are text messages with optional inline keyboards, posted by the user
  "via" the bot (``QUERY_ID_INVALID``, ``RESULT_ID_INVALID``).

Account rules applied around every request (:meth:`MediaApi.screen`,
:meth:`MediaApi.filter_result`):

* banned numbers (:meth:`MediaApi.ban_phone`): ``auth.sendCode`` / ``auth.signIn`` answer
  ``PHONE_NUMBER_BANNED``;
* fresh sessions (``fresh_session_seconds`` > 0, off by default): an authorization younger than
  that may not change or reset other authorizations (``FRESH_RESET_AUTHORISATION_FORBIDDEN``,
  406), as Telegram does for 24 h after a login;
* ``messages.deleteMessages`` with ``revoke`` deletes the other side's copy too;
* phone-number privacy: a user's phone is shown to another user only when that user's
  ``phone_number`` rules allow it (default: their contacts), or the viewer has the number saved.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import secrets
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from telethon.tl import functions, types  # type: ignore[import-untyped]

from tgsip.sandbox.server import Connection, RpcError
from tgsip.sandbox.world import SERVICE_USER_ID, Button, Message, User

if TYPE_CHECKING:
    from tgsip.sandbox.sandbox import Sandbox

__all__ = ["Document", "InlineResult", "MediaApi", "MediaStore"]

PART_MAX = 512 * 1024
SMALL_FILE_PARTS = 3000
BIG_FILE_PARTS = 8000
INLINE_QUERY_TTL = 300

_WRAPPERS = (
    functions.InvokeWithLayerRequest,
    functions.InitConnectionRequest,
    functions.InvokeWithoutUpdatesRequest,
    functions.InvokeAfterMsgRequest,
)


@dataclass(frozen=True)
class Document:
    """A stored file: what a recipient's client downloads."""

    id: int
    access_hash: int
    name: str
    mime_type: str
    size: int
    data: bytes
    attributes: list[dict[str, Any]]
    date: int


@dataclass(frozen=True)
class InlineResult:
    """One answer of a scripted inline bot: an article that posts ``text`` (with ``buttons``)."""

    id: str
    title: str
    text: str
    description: str = ""
    buttons: tuple[tuple[Button, ...], ...] | None = None


InlineHandler = Callable[[str, User], Sequence[InlineResult]]

_MEDIA_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
  id INTEGER PRIMARY KEY, access_hash INTEGER NOT NULL, name TEXT NOT NULL,
  mime_type TEXT NOT NULL, size INTEGER NOT NULL, data BLOB NOT NULL, attributes TEXT NOT NULL,
  date INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS message_media (
  owner_id INTEGER NOT NULL, msg_id INTEGER NOT NULL, document_id INTEGER NOT NULL,
  PRIMARY KEY (owner_id, msg_id)
);
CREATE TABLE IF NOT EXISTS banned_phones (phone TEXT PRIMARY KEY);
"""


class MediaStore:
    """Documents, which messages carry them, and banned numbers (``media.sqlite3``)."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(str(path), isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_MEDIA_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def add_document(
        self, name: str, mime_type: str, data: bytes, attributes: list[dict[str, Any]], now: int
    ) -> Document:
        doc_id = secrets.randbits(62)
        access_hash = secrets.randbits(62)
        self._db.execute(
            "INSERT INTO documents (id, access_hash, name, mime_type, size, data, attributes, "
            "date) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (doc_id, access_hash, name, mime_type, len(data), data, json.dumps(attributes), now),
        )
        return Document(doc_id, access_hash, name, mime_type, len(data), data, attributes, now)

    def document(self, doc_id: int) -> Document | None:
        row = self._db.execute("SELECT * FROM documents WHERE id = ?", (doc_id,)).fetchone()
        if row is None:
            return None
        return Document(
            row["id"],
            row["access_hash"],
            row["name"],
            row["mime_type"],
            row["size"],
            bytes(row["data"]),
            json.loads(row["attributes"]),
            row["date"],
        )

    def attach(self, owner_id: int, msg_id: int, doc_id: int) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO message_media (owner_id, msg_id, document_id) VALUES (?, ?, ?)",
            (owner_id, msg_id, doc_id),
        )

    def media_of(self, owner_id: int, msg_id: int) -> Document | None:
        row = self._db.execute(
            "SELECT document_id FROM message_media WHERE owner_id = ? AND msg_id = ?",
            (owner_id, msg_id),
        ).fetchone()
        return self.document(int(row[0])) if row else None

    def ban(self, phone: str) -> None:
        self._db.execute("INSERT OR IGNORE INTO banned_phones (phone) VALUES (?)", (phone,))

    def is_banned(self, phone: str) -> bool:
        row = self._db.execute("SELECT 1 FROM banned_phones WHERE phone = ?", (phone,)).fetchone()
        return row is not None


@dataclass
class _Upload:
    parts: dict[int, bytes]
    total: int | None


@dataclass
class _InlineQuery:
    user_id: int
    bot_id: int
    results: dict[str, InlineResult]
    expires: int


def _digits(phone: str) -> str:
    return "".join(c for c in phone if c.isdigit())


class MediaApi:
    """Media, inline-bot and account-rule handlers (mixed into ``Api``)."""

    fresh_session_seconds: int = 0
    """Authorizations younger than this may not touch other authorizations (0: rule off)."""

    if TYPE_CHECKING:
        sandbox: Sandbox

        @property
        def world(self) -> Any: ...
        def now(self) -> int: ...
        def me(self, conn: Connection) -> User: ...
        def user_of(self, conn: Connection) -> User | None: ...
        def resolve_peer(self, peer: Any, me: User) -> User: ...
        def tl_user(self, user: User, viewer: User | None) -> Any: ...
        def tl_users(self, ids: set[int], viewer: User) -> list[Any]: ...
        def tl_message(self, msg: Message) -> Any: ...
        def push_new_message(self, msg: Message, exclude: Connection | None = None) -> None: ...
        def push_delete(self, owner_id: int, ids: list[int], pts: int) -> None: ...
        @staticmethod
        def tl_markup(msg: Message) -> Any: ...

    # --- state -------------------------------------------------------------------------------

    @cached_property
    def media(self) -> MediaStore:
        return MediaStore(self.sandbox.data_dir / "media.sqlite3")

    @cached_property
    def _uploads(self) -> dict[tuple[int, int], _Upload]:
        return {}

    @cached_property
    def _inline_bots(self) -> dict[int, InlineHandler]:
        return {}

    @cached_property
    def _inline_queries(self) -> dict[int, _InlineQuery]:
        return {}

    # --- scripting ---------------------------------------------------------------------------

    def ban_phone(self, phone: str) -> None:
        """Telegram banned ``phone``: it can no longer receive login codes or sign in."""
        self.media.ban(_digits(phone))

    def set_inline_bot(self, bot: User | int, handler: InlineHandler) -> None:
        """Make ``bot`` answer inline queries with ``handler(query, user)``."""
        bot_id = bot if isinstance(bot, int) else bot.id
        self._inline_bots[bot_id] = handler

    def media_of(self, owner_id: int, msg_id: int) -> Document | None:
        """The document carried by ``owner_id``'s message ``msg_id``, if any."""
        return self.media.media_of(owner_id, msg_id)

    # --- rules around every request ------------------------------------------------------------

    def screen(self, conn: Connection, request: Any) -> None:
        """Account rules checked before the request's handler runs; raises RpcError."""
        while isinstance(request, _WRAPPERS):
            request = request.query
        if isinstance(request, functions.auth.SendCodeRequest | functions.auth.SignInRequest):
            if self.media.is_banned(_digits(request.phone_number)):
                raise RpcError(400, "PHONE_NUMBER_BANNED")
        elif isinstance(
            request,
            functions.account.ChangeAuthorizationSettingsRequest
            | functions.account.ResetAuthorizationRequest,
        ):
            self._check_fresh(conn, request.hash)
        elif isinstance(request, functions.messages.DeleteMessagesRequest) and request.revoke:
            self._revoke_twins(conn, [i for i in request.id if isinstance(i, int)])

    def _check_fresh(self, conn: Connection, target_hash: int) -> None:
        if self.fresh_session_seconds <= 0 or target_hash == 0:
            return
        record = self.world.auth_key(conn.key_id)
        if record is None or record.user_id is None:
            return
        if record.created > self.now() - self.fresh_session_seconds:
            raise RpcError(406, "FRESH_RESET_AUTHORISATION_FORBIDDEN")

    def _revoke_twins(self, conn: Connection, ids: list[int]) -> None:
        me = self.user_of(conn)
        if me is None:
            return
        for msg_id in ids:
            msg = self.world.message(me.id, msg_id)
            if msg is None or msg.twin_id is None or msg.peer_id == me.id:
                continue
            deleted, pts = self.world.delete_messages(msg.peer_id, [msg.twin_id])
            if deleted:
                self.push_delete(msg.peer_id, deleted, pts)

    def filter_result(self, conn: Connection, result: Any) -> Any:
        """Applies phone-number privacy to the users in an answer."""
        viewer = self.user_of(conn)
        if viewer is None:
            return result
        return self.filter_for(viewer, result)

    def filter_push(self, user_id: int, update: Any) -> Any:
        """Applies phone-number privacy to the users in an update pushed to ``user_id``."""
        viewer = self.world.user_by_id(user_id)
        if viewer is None:
            return update
        return self.filter_for(viewer, update)

    def filter_for(self, viewer: User, result: Any) -> Any:
        """Shows or hides each user's phone in ``result`` as ``viewer`` may see it."""
        if result is None:
            return result
        for holder in (result, getattr(result, "full_user", None)):
            users = getattr(holder, "users", None)
            if isinstance(users, list):
                for user in users:
                    self._phone_privacy(user, viewer)
            single = getattr(holder, "user", None)
            if isinstance(single, types.User):
                self._phone_privacy(single, viewer)
        if isinstance(result, list):
            for user in result:
                self._phone_privacy(user, viewer)
        return result

    def _phone_privacy(self, user: Any, viewer: User) -> None:
        if not isinstance(user, types.User) or user.id in (viewer.id, SERVICE_USER_ID):
            return
        owner = self.world.user_by_id(user.id)
        if owner is None or owner.phone is None:
            return
        knows = self.world.is_contact(viewer.id, owner.id)
        user.phone = owner.phone if knows or self._allows(owner, viewer) else None

    def _allows(self, owner: User, viewer: User) -> bool:
        rules = self.world.stored_privacy(owner.id, "phone_number")
        if rules is None:
            rules = [{"kind": "allow_contacts"}]
        for rule in rules:
            if rule["kind"] == "disallow_users" and viewer.id in rule["users"]:
                return False
        for rule in rules:
            if rule["kind"] == "allow_users" and viewer.id in rule["users"]:
                return True
        for rule in rules:
            kind = rule["kind"]
            if kind == "allow_all":
                return True
            if kind == "allow_contacts":
                return bool(self.world.is_contact(owner.id, viewer.id))
            if kind == "disallow_all":
                return False
        return False

    # --- upload ------------------------------------------------------------------------------

    def _save_part(
        self, conn: Connection, file_id: int, part: int, data: bytes, total: int | None
    ) -> bool:
        self.me(conn)
        limit = BIG_FILE_PARTS if total is not None else SMALL_FILE_PARTS
        if part < 0 or part >= limit or (total is not None and part >= total):
            raise RpcError(400, "FILE_PART_INVALID")
        if total is not None and not 0 < total <= BIG_FILE_PARTS:
            raise RpcError(400, "FILE_PARTS_INVALID")
        if not data:
            raise RpcError(400, "FILE_PART_EMPTY")
        if len(data) > PART_MAX:
            raise RpcError(400, "FILE_PART_SIZE_INVALID")
        upload = self._uploads.setdefault((conn.key_id, file_id), _Upload({}, total))
        if total is not None:
            upload.total = total
        upload.parts[part] = bytes(data)
        return True

    def on_upload_SaveFilePartRequest(self, conn: Connection, req: Any) -> Any:
        return self._save_part(conn, req.file_id, req.file_part, req.bytes, None)

    def on_upload_SaveBigFilePartRequest(self, conn: Connection, req: Any) -> Any:
        return self._save_part(conn, req.file_id, req.file_part, req.bytes, req.file_total_parts)

    def _take_upload(self, conn: Connection, file: Any) -> bytes:
        if not isinstance(file, types.InputFile | types.InputFileBig):
            raise RpcError(400, "MEDIA_INVALID")
        upload = self._uploads.pop((conn.key_id, file.id), None)
        if upload is None or file.parts <= 0:
            raise RpcError(400, "FILE_PARTS_INVALID")
        if sorted(upload.parts) != list(range(file.parts)):
            raise RpcError(400, "FILE_PARTS_INVALID")
        chunks = [upload.parts[i] for i in range(file.parts)]
        for chunk in chunks[:-1]:
            if len(chunk) % 1024:
                raise RpcError(400, "FILE_PART_SIZE_INVALID")
        data = b"".join(chunks)
        md5 = getattr(file, "md5_checksum", "")
        if md5 and hashlib.md5(data).hexdigest() != md5.lower():
            raise RpcError(400, "MD5_CHECKSUM_INVALID")
        return data

    def on_upload_GetFileRequest(self, conn: Connection, req: Any) -> Any:
        """Download a stored document by ``inputDocumentFileLocation`` (offset/limit rules of
        https://core.telegram.org/api/files: multiples of 1 KiB, at most 1 MiB per request)."""
        self.me(conn)
        location = req.location
        if not isinstance(location, types.InputDocumentFileLocation):
            raise RpcError(400, "LOCATION_INVALID")
        doc = self.media.document(location.id)
        if doc is None or doc.access_hash != location.access_hash:
            raise RpcError(400, "FILE_REFERENCE_INVALID")
        if req.limit <= 0 or req.limit > 1024 * 1024 or req.limit % 1024:
            raise RpcError(400, "LIMIT_INVALID")
        if req.offset < 0 or req.offset % 1024:
            raise RpcError(400, "OFFSET_INVALID")
        return types.upload.File(
            type=types.storage.FileUnknown(),
            mtime=doc.date,
            bytes=doc.data[req.offset : req.offset + req.limit],
        )

    # --- media messages ------------------------------------------------------------------------

    def tl_document(self, doc: Document) -> Any:
        attributes: list[Any] = []
        for attr in doc.attributes:
            if attr["kind"] == "filename":
                attributes.append(types.DocumentAttributeFilename(file_name=attr["name"]))
            elif attr["kind"] == "audio":
                attributes.append(
                    types.DocumentAttributeAudio(
                        duration=attr["duration"], voice=attr["voice"], title=attr["title"]
                    )
                )
        return types.Document(
            id=doc.id,
            access_hash=doc.access_hash,
            file_reference=b"",
            date=doc.date,
            mime_type=doc.mime_type,
            size=doc.size,
            dc_id=self.sandbox.dc_id,
            attributes=attributes,
        )

    def tl_media_message(self, msg: Message) -> Any:
        """``tl_message`` plus the document the message carries."""
        tl = self.tl_message(msg)
        doc = self.media.media_of(msg.owner_id, msg.id)
        if doc is not None:
            tl.media = types.MessageMediaDocument(document=self.tl_document(doc))
        return tl

    def _push_media(self, msg: Message, exclude: Connection | None = None) -> None:
        viewer = self.world.user_by_id(msg.owner_id)
        if viewer is None:
            return
        update = types.Updates(
            updates=[
                types.UpdateNewMessage(message=self.tl_media_message(msg), pts=msg.pts, pts_count=1)
            ],
            users=self.tl_users({msg.from_id, msg.peer_id, msg.owner_id}, viewer),
            chats=[],
            date=msg.date,
            seq=0,
        )
        self.sandbox.push(msg.owner_id, update, exclude)

    def _sent(self, me: User, peer: User, mine: Message, random_id: int) -> Any:
        return types.Updates(
            updates=[
                types.UpdateMessageID(id=mine.id, random_id=random_id),
                types.UpdateNewMessage(
                    message=self.tl_media_message(mine), pts=mine.pts, pts_count=1
                ),
            ],
            users=self.tl_users({me.id, peer.id}, me),
            chats=[],
            date=mine.date,
            seq=0,
        )

    def on_messages_SendMediaRequest(self, conn: Connection, req: Any) -> Any:
        me = self.me(conn)
        peer = self.resolve_peer(req.peer, me)
        media = req.media
        if not isinstance(media, types.InputMediaUploadedDocument):
            raise RpcError(400, "MEDIA_INVALID")
        caption = req.message or ""
        if len(caption) > 1024:
            raise RpcError(400, "MEDIA_CAPTION_TOO_LONG")
        data = self._take_upload(conn, media.file)
        name = getattr(media.file, "name", "") or "file"
        attributes: list[dict[str, Any]] = []
        for attr in media.attributes:
            if isinstance(attr, types.DocumentAttributeFilename):
                name = attr.file_name
            elif isinstance(attr, types.DocumentAttributeAudio):
                attributes.append(
                    {
                        "kind": "audio",
                        "duration": int(attr.duration),
                        "voice": bool(attr.voice),
                        "title": attr.title,
                    }
                )
        attributes.insert(0, {"kind": "filename", "name": name})
        now = self.now()
        doc = self.media.add_document(
            name, media.mime_type or "application/octet-stream", data, attributes, now
        )
        mine, theirs = self.world.send_message(me.id, peer.id, caption, now)
        self.media.attach(mine.owner_id, mine.id, doc.id)
        if theirs is not None:
            self.media.attach(theirs.owner_id, theirs.id, doc.id)
            self._push_media(theirs)
        self._push_media(mine, exclude=conn)
        return self._sent(me, peer, mine, req.random_id)

    # --- inline bots ---------------------------------------------------------------------------

    def on_messages_GetInlineBotResultsRequest(self, conn: Connection, req: Any) -> Any:
        me = self.me(conn)
        bot = self.resolve_peer(req.bot, me)
        handler = self._inline_bots.get(bot.id)
        if not bot.is_bot or handler is None:
            raise RpcError(400, "BOT_INLINE_DISABLED")
        self.resolve_peer(req.peer, me)
        if len(req.query) > 256:
            raise RpcError(400, "QUERY_TOO_LONG")
        results = list(handler(req.query, me))
        now = self.now()
        for stale in [k for k, q in self._inline_queries.items() if q.expires <= now]:
            del self._inline_queries[stale]
        query_id = secrets.randbits(63)
        self._inline_queries[query_id] = _InlineQuery(
            me.id, bot.id, {r.id: r for r in results}, now + INLINE_QUERY_TTL
        )
        markup_of = self.tl_markup
        return types.messages.BotResults(
            query_id=query_id,
            results=[
                types.BotInlineResult(
                    id=r.id,
                    type="article",
                    title=r.title,
                    description=r.description or None,
                    send_message=types.BotInlineMessageText(
                        message=r.text,
                        reply_markup=markup_of(_as_message(r)),
                    ),
                )
                for r in results
            ],
            cache_time=0,
            users=[self.tl_user(bot, me)],
        )

    def on_messages_SendInlineBotResultRequest(self, conn: Connection, req: Any) -> Any:
        me = self.me(conn)
        peer = self.resolve_peer(req.peer, me)
        query = self._inline_queries.get(req.query_id)
        if query is None or query.user_id != me.id or query.expires <= self.now():
            raise RpcError(400, "QUERY_ID_INVALID")
        result = query.results.get(req.id)
        if result is None:
            raise RpcError(400, "RESULT_ID_INVALID")
        mine, theirs = self.world.send_message(
            me.id, peer.id, result.text, self.now(), buttons=result.buttons
        )
        if theirs is not None:
            self.push_new_message(theirs)
        self.push_new_message(mine, exclude=conn)
        return self._sent(me, peer, mine, req.random_id)


def _as_message(result: InlineResult) -> Message:
    """A throwaway Message carrying the result's keyboard (to reuse ``tl_markup``)."""
    return dataclasses.replace(
        Message(0, 0, 0, 0, True, result.text, 0, 0, None, None), buttons=result.buttons
    )
