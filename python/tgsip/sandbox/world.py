"""The sandbox's shared world, persisted in SQLite.

Users (people and bots), their access hashes, phones and usernames; auth keys and the
authorization each is bound to; login codes; two-step verification state; per-user message
boxes with pts bookkeeping; contacts; privacy rules; private calls (``World.calls``); and an
outbox of "emails". The API is
protocol-neutral (no TL objects), so the MTProto server and a Bot API server can share it.
Timestamps are passed in (``now``, unix seconds) by the caller.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import secrets
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tgsip.sandbox.calls import CallStore

SERVICE_USER_ID = 777000
FIRST_USER_ID = 1_000_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
  id INTEGER PRIMARY KEY, access_hash INTEGER NOT NULL, phone TEXT UNIQUE,
  first_name TEXT NOT NULL, last_name TEXT NOT NULL DEFAULT '', username TEXT UNIQUE,
  is_bot INTEGER NOT NULL DEFAULT 0, bot_token TEXT UNIQUE, pts INTEGER NOT NULL DEFAULT 0,
  next_msg_id INTEGER NOT NULL DEFAULT 1, created INTEGER NOT NULL,
  pw_salt1 BLOB, pw_salt2 BLOB, pw_verifier BLOB, pw_hint TEXT, pw_email TEXT
);
CREATE TABLE IF NOT EXISTS auth_keys (
  key_id INTEGER PRIMARY KEY, auth_key BLOB NOT NULL, user_id INTEGER,
  pending_user_id INTEGER, hash INTEGER NOT NULL, created INTEGER NOT NULL,
  active INTEGER NOT NULL, device_model TEXT NOT NULL DEFAULT '',
  platform TEXT NOT NULL DEFAULT '', system_version TEXT NOT NULL DEFAULT '',
  app_version TEXT NOT NULL DEFAULT '', api_id INTEGER NOT NULL DEFAULT 0,
  ip TEXT NOT NULL DEFAULT '', calls_disabled INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS login_codes (
  phone_code_hash TEXT PRIMARY KEY, phone TEXT NOT NULL, code TEXT NOT NULL,
  created INTEGER NOT NULL, expires INTEGER NOT NULL, used INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS recovery_codes (
  user_id INTEGER PRIMARY KEY, code TEXT NOT NULL, expires INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS emails (
  id INTEGER PRIMARY KEY AUTOINCREMENT, address TEXT NOT NULL, subject TEXT NOT NULL,
  body TEXT NOT NULL, code TEXT NOT NULL, created INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
  owner_id INTEGER NOT NULL, id INTEGER NOT NULL, peer_id INTEGER NOT NULL,
  from_id INTEGER NOT NULL, out INTEGER NOT NULL, text TEXT NOT NULL, date INTEGER NOT NULL,
  pts INTEGER NOT NULL, reply_to INTEGER, markup TEXT, twin_id INTEGER, edit_date INTEGER,
  PRIMARY KEY (owner_id, id)
);
CREATE INDEX IF NOT EXISTS messages_pts ON messages (owner_id, pts);
CREATE TABLE IF NOT EXISTS edits (
  owner_id INTEGER NOT NULL, pts INTEGER NOT NULL, msg_id INTEGER NOT NULL,
  PRIMARY KEY (owner_id, pts)
);
CREATE TABLE IF NOT EXISTS deletions (
  owner_id INTEGER NOT NULL, pts INTEGER NOT NULL, pts_count INTEGER NOT NULL,
  ids TEXT NOT NULL, PRIMARY KEY (owner_id, pts)
);
CREATE TABLE IF NOT EXISTS contacts (
  owner_id INTEGER NOT NULL, user_id INTEGER NOT NULL, first_name TEXT NOT NULL,
  last_name TEXT NOT NULL, PRIMARY KEY (owner_id, user_id)
);
CREATE TABLE IF NOT EXISTS callback_queries (
  id INTEGER PRIMARY KEY AUTOINCREMENT, bot_id INTEGER NOT NULL, user_id INTEGER NOT NULL,
  bot_msg_id INTEGER NOT NULL, data BLOB NOT NULL, pts INTEGER NOT NULL,
  created INTEGER NOT NULL, answered INTEGER NOT NULL DEFAULT 0, answer_text TEXT,
  show_alert INTEGER NOT NULL DEFAULT 0, url TEXT
);
CREATE TABLE IF NOT EXISTS bot_offsets (
  bot_id INTEGER PRIMARY KEY, confirmed INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS privacy (
  user_id INTEGER NOT NULL, key TEXT NOT NULL, rules TEXT NOT NULL,
  PRIMARY KEY (user_id, key)
);
"""


class WorldError(Exception):
    """A world rule was broken; ``name`` is the Telegram error name (e.g. USERNAME_OCCUPIED)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


@dataclass(frozen=True)
class User:
    id: int
    access_hash: int
    phone: str | None
    first_name: str
    last_name: str
    username: str | None
    is_bot: bool
    bot_token: str | None
    pts: int
    has_password: bool
    password_hint: str | None
    password_email: str | None


@dataclass(frozen=True)
class Button:
    """An inline keyboard button: callback ``data`` or a ``url``."""

    text: str
    data: bytes | None = None
    url: str | None = None


@dataclass(frozen=True)
class Message:
    """One message in ``owner_id``'s box (each side of a private chat has its own copy)."""

    owner_id: int
    id: int
    peer_id: int
    from_id: int
    out: bool
    text: str
    date: int
    pts: int
    reply_to: int | None
    buttons: tuple[tuple[Button, ...], ...] | None
    twin_id: int | None = None
    """The id of the other side's copy (None for Saved Messages)."""
    edit_date: int | None = None


@dataclass(frozen=True)
class CallbackQuery:
    """A press of an inline button by ``user_id`` on the bot's message ``bot_msg_id``."""

    id: int
    bot_id: int
    user_id: int
    bot_msg_id: int
    data: bytes
    pts: int
    created: int
    answered: bool
    answer_text: str | None
    show_alert: bool
    url: str | None


@dataclass(frozen=True)
class AuthKeyRecord:
    key_id: int
    auth_key: bytes
    user_id: int | None
    pending_user_id: int | None
    hash: int
    created: int
    active: int
    device_model: str
    platform: str
    system_version: str
    app_version: str
    api_id: int
    ip: str
    calls_disabled: bool


@dataclass(frozen=True)
class LoginCode:
    phone: str
    phone_code_hash: str
    code: str
    created: int
    expires: int
    used: bool


@dataclass(frozen=True)
class Email:
    address: str
    subject: str
    body: str
    code: str
    created: int


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _markup_to_json(buttons: tuple[tuple[Button, ...], ...] | None) -> str | None:
    if buttons is None:
        return None
    return json.dumps(
        [
            [
                {"text": b.text, "data": b.data.hex() if b.data is not None else None, "url": b.url}
                for b in row
            ]
            for row in buttons
        ]
    )


def _markup_from_json(raw: str | None) -> tuple[tuple[Button, ...], ...] | None:
    if raw is None:
        return None
    rows: list[list[dict[str, Any]]] = json.loads(raw)
    return tuple(
        tuple(
            Button(
                text=b["text"],
                data=bytes.fromhex(b["data"]) if b["data"] is not None else None,
                url=b["url"],
            )
            for b in row
        )
        for row in rows
    )


class World:
    """All sandbox state. One instance per database file; not thread-safe (asyncio only)."""

    def __init__(self, path: Path | str, now: int) -> None:
        self._db = sqlite3.connect(str(path), isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        if self.user_by_id(SERVICE_USER_ID) is None:
            self._db.execute(
                "INSERT INTO users (id, access_hash, phone, first_name, created) "
                "VALUES (?, ?, '42777', 'Telegram', ?)",
                (SERVICE_USER_ID, _signed64(secrets.randbits(64)), now),
            )
        self.calls = CallStore(self._db, now)
        """Private calls and their history (see tgsip.sandbox.calls)."""

    def close(self) -> None:
        self._db.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """An explicit transaction (the connection is in autocommit mode)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # --- users -------------------------------------------------------------------------

    @staticmethod
    def _user(row: sqlite3.Row) -> User:
        return User(
            id=row["id"],
            access_hash=row["access_hash"],
            phone=row["phone"],
            first_name=row["first_name"],
            last_name=row["last_name"],
            username=row["username"],
            is_bot=bool(row["is_bot"]),
            bot_token=row["bot_token"],
            pts=row["pts"],
            has_password=row["pw_verifier"] is not None,
            password_hint=row["pw_hint"],
            password_email=row["pw_email"],
        )

    def user_by_id(self, user_id: int) -> User | None:
        row = self._db.execute("SELECT * FROM users WHERE id = ?", (user_id,)).fetchone()
        return self._user(row) if row else None

    def user_by_phone(self, phone: str) -> User | None:
        row = self._db.execute("SELECT * FROM users WHERE phone = ?", (phone,)).fetchone()
        return self._user(row) if row else None

    def user_by_username(self, username: str) -> User | None:
        row = self._db.execute(
            "SELECT * FROM users WHERE username = ? COLLATE NOCASE", (username.lstrip("@"),)
        ).fetchone()
        return self._user(row) if row else None

    def user_by_token(self, token: str) -> User | None:
        row = self._db.execute("SELECT * FROM users WHERE bot_token = ?", (token,)).fetchone()
        return self._user(row) if row else None

    def _next_user_id(self) -> int:
        row = self._db.execute("SELECT MAX(id) FROM users").fetchone()
        return max(FIRST_USER_ID, int(row[0] or 0) + 1)

    def create_user(
        self,
        phone: str | None,
        first_name: str,
        now: int,
        last_name: str = "",
        username: str | None = None,
        bot_token: str | None = None,
    ) -> User:
        """Create a person (``phone``) or a bot (``bot_token``); raises WorldError on clashes."""
        if phone is not None and self.user_by_phone(phone) is not None:
            raise WorldError("PHONE_NUMBER_OCCUPIED")
        if username is not None and self.user_by_username(username) is not None:
            raise WorldError("USERNAME_OCCUPIED")
        user_id = self._next_user_id()
        self._db.execute(
            "INSERT INTO users (id, access_hash, phone, first_name, last_name, username, "
            "is_bot, bot_token, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                user_id,
                _signed64(secrets.randbits(64)),
                phone,
                first_name,
                last_name,
                username,
                int(bot_token is not None),
                bot_token,
                now,
            ),
        )
        user = self.user_by_id(user_id)
        assert user is not None
        return user

    def create_bot(self, username: str, first_name: str, now: int) -> User:
        """Create a bot; its token ``<id>:<secret>`` is in ``User.bot_token``."""
        user_id = self._next_user_id()
        token = f"{user_id}:{secrets.token_urlsafe(26)}"
        return self.create_user(None, first_name, now, username=username, bot_token=token)

    def set_password(
        self,
        user_id: int,
        salt1: bytes,
        salt2: bytes,
        verifier: bytes | None,
        hint: str | None,
        email: str | None,
    ) -> None:
        """Set (or with ``verifier=None`` clear) the SRP two-step verification state."""
        self._db.execute(
            "UPDATE users SET pw_salt1 = ?, pw_salt2 = ?, pw_verifier = ?, pw_hint = ?, "
            "pw_email = ? WHERE id = ?",
            (salt1, salt2, verifier, hint, email, user_id),
        )

    def password_params(self, user_id: int) -> tuple[bytes, bytes, bytes] | None:
        """(salt1, salt2, verifier) or None without a password."""
        row = self._db.execute(
            "SELECT pw_salt1, pw_salt2, pw_verifier FROM users WHERE id = ?", (user_id,)
        ).fetchone()
        if row is None or row["pw_verifier"] is None:
            return None
        return bytes(row[0]), bytes(row[1]), bytes(row[2])

    # --- auth keys ---------------------------------------------------------------------

    @staticmethod
    def _key(row: sqlite3.Row) -> AuthKeyRecord:
        return AuthKeyRecord(
            key_id=row["key_id"],
            auth_key=bytes(row["auth_key"]),
            user_id=row["user_id"],
            pending_user_id=row["pending_user_id"],
            hash=row["hash"],
            created=row["created"],
            active=row["active"],
            device_model=row["device_model"],
            platform=row["platform"],
            system_version=row["system_version"],
            app_version=row["app_version"],
            api_id=row["api_id"],
            ip=row["ip"],
            calls_disabled=bool(row["calls_disabled"]),
        )

    def add_auth_key(self, key_id: int, auth_key: bytes, now: int) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO auth_keys (key_id, auth_key, hash, created, active) "
            "VALUES (?, ?, ?, ?, ?)",
            (_signed64(key_id), auth_key, _signed64(secrets.randbits(64)) or 1, now, now),
        )

    def auth_key(self, key_id: int) -> AuthKeyRecord | None:
        row = self._db.execute(
            "SELECT * FROM auth_keys WHERE key_id = ?", (_signed64(key_id),)
        ).fetchone()
        return self._key(row) if row else None

    def set_key_client(
        self,
        key_id: int,
        device_model: str,
        platform: str,
        system_version: str,
        app_version: str,
        api_id: int,
        ip: str,
        now: int,
    ) -> None:
        """Record initConnection's client description on the key's authorization."""
        self._db.execute(
            "UPDATE auth_keys SET device_model = ?, platform = ?, system_version = ?, "
            "app_version = ?, api_id = ?, ip = ?, active = ? WHERE key_id = ?",
            (
                device_model,
                platform,
                system_version,
                app_version,
                api_id,
                ip,
                now,
                _signed64(key_id),
            ),
        )

    def bind_key(
        self, key_id: int, user_id: int | None, pending_user_id: int | None = None
    ) -> None:
        """Authorize a key as ``user_id`` (None logs it out); ``pending`` awaits the password."""
        self._db.execute(
            "UPDATE auth_keys SET user_id = ?, pending_user_id = ? WHERE key_id = ?",
            (user_id, pending_user_id, _signed64(key_id)),
        )

    def authorizations(self, user_id: int) -> list[AuthKeyRecord]:
        rows = self._db.execute(
            "SELECT * FROM auth_keys WHERE user_id = ? ORDER BY created", (user_id,)
        ).fetchall()
        return [self._key(r) for r in rows]

    def reset_authorization(self, user_id: int, hash_: int) -> int | None:
        """Log out the authorization ``hash_`` of ``user_id``; returns its key id or None."""
        row = self._db.execute(
            "SELECT key_id FROM auth_keys WHERE user_id = ? AND hash = ?", (user_id, hash_)
        ).fetchone()
        if row is None:
            return None
        self._db.execute("UPDATE auth_keys SET user_id = NULL WHERE key_id = ?", (row[0],))
        return int(row[0]) & ((1 << 64) - 1)

    def set_calls_disabled(self, key_id: int, disabled: bool) -> None:
        self._db.execute(
            "UPDATE auth_keys SET calls_disabled = ? WHERE key_id = ?",
            (int(disabled), _signed64(key_id)),
        )

    # --- login codes and emails --------------------------------------------------------

    def add_login_code(self, phone: str, code: str, now: int, ttl: int) -> str:
        phone_code_hash = secrets.token_hex(9)
        self._db.execute(
            "INSERT INTO login_codes (phone_code_hash, phone, code, created, expires) "
            "VALUES (?, ?, ?, ?, ?)",
            (phone_code_hash, phone, code, now, now + ttl),
        )
        return phone_code_hash

    def login_code(self, phone_code_hash: str) -> LoginCode | None:
        row = self._db.execute(
            "SELECT * FROM login_codes WHERE phone_code_hash = ?", (phone_code_hash,)
        ).fetchone()
        if row is None:
            return None
        return LoginCode(
            row["phone"],
            row["phone_code_hash"],
            row["code"],
            row["created"],
            row["expires"],
            bool(row["used"]),
        )

    def last_login_code(self, phone: str) -> LoginCode | None:
        row = self._db.execute(
            "SELECT phone_code_hash FROM login_codes WHERE phone = ? ORDER BY rowid DESC LIMIT 1",
            (phone,),
        ).fetchone()
        return self.login_code(row[0]) if row else None

    def codes_sent_since(self, phone: str, since: int) -> list[int]:
        rows = self._db.execute(
            "SELECT created FROM login_codes WHERE phone = ? AND created >= ? ORDER BY created",
            (phone, since),
        ).fetchall()
        return [int(r[0]) for r in rows]

    def expire_codes_in_text(self, phone: str, text: str, now: int) -> int:
        """Expire ``phone``'s live login codes that appear in ``text``; returns how many.

        Telegram does this for a code its owner sends in a chat (anti-phishing), so a code
        pasted into a bot no longer signs in (PHONE_CODE_EXPIRED).
        """
        rows = self._db.execute(
            "SELECT phone_code_hash, code FROM login_codes WHERE phone = ? AND used = 0 "
            "AND expires > ?",
            (phone, now),
        ).fetchall()
        hit = [r[0] for r in rows if r[1] in text]
        for phone_code_hash in hit:
            self.use_login_code(phone_code_hash)
        return len(hit)

    def use_login_code(self, phone_code_hash: str) -> None:
        self._db.execute(
            "UPDATE login_codes SET used = 1 WHERE phone_code_hash = ?", (phone_code_hash,)
        )

    def set_recovery_code(self, user_id: int, code: str, expires: int) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO recovery_codes (user_id, code, expires) VALUES (?, ?, ?)",
            (user_id, code, expires),
        )

    def recovery_code(self, user_id: int) -> tuple[str, int] | None:
        row = self._db.execute(
            "SELECT code, expires FROM recovery_codes WHERE user_id = ?", (user_id,)
        ).fetchone()
        return (str(row[0]), int(row[1])) if row else None

    def clear_recovery_code(self, user_id: int) -> None:
        self._db.execute("DELETE FROM recovery_codes WHERE user_id = ?", (user_id,))

    def send_email(self, address: str, subject: str, body: str, code: str, now: int) -> None:
        self._db.execute(
            "INSERT INTO emails (address, subject, body, code, created) VALUES (?, ?, ?, ?, ?)",
            (address, subject, body, code, now),
        )

    def emails(self, address: str) -> list[Email]:
        rows = self._db.execute(
            "SELECT * FROM emails WHERE address = ? ORDER BY id", (address,)
        ).fetchall()
        return [Email(r["address"], r["subject"], r["body"], r["code"], r["created"]) for r in rows]

    # --- messages ----------------------------------------------------------------------

    @staticmethod
    def _message(row: sqlite3.Row) -> Message:
        return Message(
            owner_id=row["owner_id"],
            id=row["id"],
            peer_id=row["peer_id"],
            from_id=row["from_id"],
            out=bool(row["out"]),
            text=row["text"],
            date=row["date"],
            pts=row["pts"],
            reply_to=row["reply_to"],
            buttons=_markup_from_json(row["markup"]),
            twin_id=row["twin_id"],
            edit_date=row["edit_date"],
        )

    def _bump(self, user_id: int, pts_count: int, msg: bool) -> tuple[int, int]:
        """Advance ``user_id``'s pts (and message id when ``msg``); returns (pts, msg_id)."""
        row = self._db.execute(
            "SELECT pts, next_msg_id FROM users WHERE id = ?", (user_id,)
        ).fetchone()
        pts, msg_id = int(row[0]) + pts_count, int(row[1])
        self._db.execute(
            "UPDATE users SET pts = ?, next_msg_id = ? WHERE id = ?",
            (pts, msg_id + (1 if msg else 0), user_id),
        )
        return pts, msg_id

    def send_message(
        self,
        from_id: int,
        to_id: int,
        text: str,
        now: int,
        reply_to: int | None = None,
        buttons: tuple[tuple[Button, ...], ...] | None = None,
    ) -> tuple[Message, Message | None]:
        """Store a private message in both boxes; returns (sender's copy, recipient's copy).

        The recipient's copy is None for a message to oneself (Saved Messages).
        """
        if self.user_by_id(to_id) is None:
            raise WorldError("PEER_ID_INVALID")
        sender = self.user_by_id(from_id)
        if sender is not None and sender.phone is not None:
            self.expire_codes_in_text(sender.phone, text, now)
        markup = _markup_to_json(buttons)
        copies: list[Message] = []
        targets = [(from_id, True)] + ([(to_id, False)] if to_id != from_id else [])
        with self._transaction():
            for owner, out in targets:
                pts, msg_id = self._bump(owner, 1, True)
                peer = to_id if out else from_id
                reply = reply_to
                if reply_to is not None and not out:
                    original = self.message(from_id, reply_to)
                    reply = original.twin_id if original is not None else None
                self._db.execute(
                    "INSERT INTO messages (owner_id, id, peer_id, from_id, out, text, date, pts, "
                    "reply_to, markup) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (owner, msg_id, peer, from_id, int(out), text, now, pts, reply, markup),
                )
                copies.append(
                    Message(owner, msg_id, peer, from_id, out, text, now, pts, reply, buttons)
                )
            if len(copies) == 2:
                a, b = copies
                self._db.execute(
                    "UPDATE messages SET twin_id = ? WHERE owner_id = ? AND id = ?",
                    (b.id, a.owner_id, a.id),
                )
                self._db.execute(
                    "UPDATE messages SET twin_id = ? WHERE owner_id = ? AND id = ?",
                    (a.id, b.owner_id, b.id),
                )
                copies = [
                    dataclasses.replace(a, twin_id=b.id),
                    dataclasses.replace(b, twin_id=a.id),
                ]
        return copies[0], copies[1] if len(copies) > 1 else None

    def edit_message(
        self,
        owner_id: int,
        msg_id: int,
        now: int,
        text: str | None = None,
        buttons: tuple[tuple[Button, ...], ...] | None = None,
        set_buttons: bool = False,
    ) -> list[tuple[Message, int]]:
        """Edit a message in ``owner_id``'s box and its twin; returns [(copy, edit pts)].

        ``text`` None keeps the text; ``set_buttons`` replaces the keyboard with ``buttons``.
        Raises WorldError MESSAGE_ID_INVALID when the message is not there.
        """
        msg = self.message(owner_id, msg_id)
        if msg is None:
            raise WorldError("MESSAGE_ID_INVALID")
        copies = [(owner_id, msg_id)]
        if msg.twin_id is not None:
            copies.append((msg.peer_id, msg.twin_id))
        out: list[tuple[Message, int]] = []
        with self._transaction():
            for owner, mid in copies:
                if self.message(owner, mid) is None:
                    continue
                pts, _ = self._bump(owner, 1, False)
                if text is not None:
                    self._db.execute(
                        "UPDATE messages SET text = ? WHERE owner_id = ? AND id = ?",
                        (text, owner, mid),
                    )
                if set_buttons:
                    self._db.execute(
                        "UPDATE messages SET markup = ? WHERE owner_id = ? AND id = ?",
                        (_markup_to_json(buttons), owner, mid),
                    )
                self._db.execute(
                    "UPDATE messages SET edit_date = ? WHERE owner_id = ? AND id = ?",
                    (now, owner, mid),
                )
                self._db.execute(
                    "INSERT INTO edits (owner_id, pts, msg_id) VALUES (?, ?, ?)", (owner, pts, mid)
                )
                edited = self.message(owner, mid)
                assert edited is not None
                out.append((edited, pts))
        return out

    def message(self, owner_id: int, msg_id: int) -> Message | None:
        row = self._db.execute(
            "SELECT * FROM messages WHERE owner_id = ? AND id = ?", (owner_id, msg_id)
        ).fetchone()
        return self._message(row) if row else None

    def history(self, owner_id: int, peer_id: int, limit: int, offset_id: int = 0) -> list[Message]:
        """Newest first, ids below ``offset_id`` when it is non-zero."""
        rows = self._db.execute(
            "SELECT * FROM messages WHERE owner_id = ? AND peer_id = ? AND (? = 0 OR id < ?) "
            "ORDER BY id DESC LIMIT ?",
            (owner_id, peer_id, offset_id, offset_id, limit),
        ).fetchall()
        return [self._message(r) for r in rows]

    def dialogs(self, owner_id: int, limit: int) -> list[Message]:
        """The top message of each private chat, newest first."""
        rows = self._db.execute(
            "SELECT m.* FROM messages m JOIN (SELECT peer_id, MAX(id) AS top FROM messages "
            "WHERE owner_id = ? GROUP BY peer_id) t ON m.peer_id = t.peer_id AND m.id = t.top "
            "WHERE m.owner_id = ? ORDER BY m.id DESC LIMIT ?",
            (owner_id, owner_id, limit),
        ).fetchall()
        return [self._message(r) for r in rows]

    def delete_messages(self, owner_id: int, ids: list[int]) -> tuple[list[int], int]:
        """Delete from ``owner_id``'s box; returns (ids actually deleted, new pts)."""
        present = [i for i in ids if self.message(owner_id, i) is not None]
        if not present:
            user = self.user_by_id(owner_id)
            return [], user.pts if user else 0
        with self._transaction():
            pts, _ = self._bump(owner_id, len(present), False)
            self._db.executemany(
                "DELETE FROM messages WHERE owner_id = ? AND id = ?",
                [(owner_id, i) for i in present],
            )
            self._db.execute(
                "INSERT INTO deletions (owner_id, pts, pts_count, ids) VALUES (?, ?, ?, ?)",
                (owner_id, pts, len(present), json.dumps(present)),
            )
        return present, pts

    def edits_since(self, owner_id: int, since_pts: int) -> list[tuple[Message, int]]:
        """Edits after ``since_pts`` of messages still present: [(current message, edit pts)]."""
        out = []
        for r in self._db.execute(
            "SELECT pts, msg_id FROM edits WHERE owner_id = ? AND pts > ? ORDER BY pts",
            (owner_id, since_pts),
        ).fetchall():
            msg = self.message(owner_id, int(r[1]))
            if msg is not None:
                out.append((msg, int(r[0])))
        return out

    def difference(
        self, owner_id: int, since_pts: int
    ) -> tuple[list[Message], list[tuple[int, int, list[int]]]]:
        """Messages and deletions (pts, pts_count, ids) after ``since_pts``, in pts order."""
        msgs = [
            self._message(r)
            for r in self._db.execute(
                "SELECT * FROM messages WHERE owner_id = ? AND pts > ? ORDER BY pts",
                (owner_id, since_pts),
            ).fetchall()
        ]
        dels = [
            (int(r[0]), int(r[1]), [int(x) for x in json.loads(r[2])])
            for r in self._db.execute(
                "SELECT pts, pts_count, ids FROM deletions WHERE owner_id = ? AND pts > ? "
                "ORDER BY pts",
                (owner_id, since_pts),
            ).fetchall()
        ]
        return msgs, dels

    def inbox_since(self, owner_id: int, since_pts: int, limit: int) -> list[Message]:
        """Incoming messages in ``owner_id``'s box with pts >= ``since_pts``, oldest first."""
        rows = self._db.execute(
            "SELECT * FROM messages WHERE owner_id = ? AND out = 0 AND pts >= ? "
            "ORDER BY pts LIMIT ?",
            (owner_id, since_pts, limit),
        ).fetchall()
        return [self._message(r) for r in rows]

    def add_callback_query(
        self, bot_id: int, user_id: int, bot_msg_id: int, data: bytes, now: int
    ) -> CallbackQuery:
        """Record a button press for the bot; it takes the next pts in the bot's box."""
        with self._transaction():
            pts, _ = self._bump(bot_id, 1, False)
            cur = self._db.execute(
                "INSERT INTO callback_queries (bot_id, user_id, bot_msg_id, data, pts, created) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (bot_id, user_id, bot_msg_id, data, pts, now),
            )
        query = self.callback_query(int(cur.lastrowid or 0))
        assert query is not None
        return query

    @staticmethod
    def _query(row: sqlite3.Row) -> CallbackQuery:
        return CallbackQuery(
            id=row["id"],
            bot_id=row["bot_id"],
            user_id=row["user_id"],
            bot_msg_id=row["bot_msg_id"],
            data=bytes(row["data"]),
            pts=row["pts"],
            created=row["created"],
            answered=bool(row["answered"]),
            answer_text=row["answer_text"],
            show_alert=bool(row["show_alert"]),
            url=row["url"],
        )

    def callback_query(self, query_id: int) -> CallbackQuery | None:
        row = self._db.execute(
            "SELECT * FROM callback_queries WHERE id = ?", (query_id,)
        ).fetchone()
        return self._query(row) if row else None

    def answer_callback_query(
        self, query_id: int, text: str | None, show_alert: bool, url: str | None
    ) -> bool:
        """Store the bot's answer; False when the query is unknown or already answered."""
        cur = self._db.execute(
            "UPDATE callback_queries SET answered = 1, answer_text = ?, show_alert = ?, url = ? "
            "WHERE id = ? AND answered = 0",
            (text, int(show_alert), url, query_id),
        )
        return cur.rowcount == 1

    def bot_updates_since(
        self, bot_id: int, since_pts: int, limit: int
    ) -> list[Message | CallbackQuery]:
        """Incoming messages and button presses with pts >= ``since_pts``, in pts order."""
        queries = [
            self._query(r)
            for r in self._db.execute(
                "SELECT * FROM callback_queries WHERE bot_id = ? AND pts >= ? ORDER BY pts LIMIT ?",
                (bot_id, since_pts, limit),
            ).fetchall()
        ]
        items: list[Message | CallbackQuery] = [*self.inbox_since(bot_id, since_pts, limit)]
        items.extend(queries)
        items.sort(key=lambda item: item.pts)
        return items[:limit]

    def bot_confirmed(self, bot_id: int) -> int:
        """The Bot API update offset the bot last confirmed (0 when none)."""
        row = self._db.execute(
            "SELECT confirmed FROM bot_offsets WHERE bot_id = ?", (bot_id,)
        ).fetchone()
        return int(row[0]) if row else 0

    def set_bot_confirmed(self, bot_id: int, offset: int) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO bot_offsets (bot_id, confirmed) VALUES (?, ?)",
            (bot_id, offset),
        )

    # --- contacts and privacy ----------------------------------------------------------

    def add_contact(self, owner_id: int, user_id: int, first_name: str, last_name: str) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO contacts (owner_id, user_id, first_name, last_name) "
            "VALUES (?, ?, ?, ?)",
            (owner_id, user_id, first_name, last_name),
        )

    def contacts(self, owner_id: int) -> list[int]:
        rows = self._db.execute(
            "SELECT user_id FROM contacts WHERE owner_id = ? ORDER BY user_id", (owner_id,)
        ).fetchall()
        return [int(r[0]) for r in rows]

    def is_contact(self, owner_id: int, user_id: int) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM contacts WHERE owner_id = ? AND user_id = ?", (owner_id, user_id)
        ).fetchone()
        return row is not None

    def set_privacy(self, user_id: int, key: str, rules: list[dict[str, Any]]) -> None:
        """Store privacy rules for ``key`` as neutral dicts: {"kind": ..., "users": [...]}."""
        self._db.execute(
            "INSERT OR REPLACE INTO privacy (user_id, key, rules) VALUES (?, ?, ?)",
            (user_id, key, json.dumps(rules)),
        )

    def privacy(self, user_id: int, key: str) -> list[dict[str, Any]]:
        row = self._db.execute(
            "SELECT rules FROM privacy WHERE user_id = ? AND key = ?", (user_id, key)
        ).fetchone()
        if row is None:
            return [{"kind": "allow_all"}]
        rules: list[dict[str, Any]] = json.loads(row[0])
        return rules

    def stored_privacy(self, user_id: int, key: str) -> list[dict[str, Any]] | None:
        """The rules ``user_id`` set for ``key``, or None when never set (Telegram's default)."""
        row = self._db.execute(
            "SELECT rules FROM privacy WHERE user_id = ? AND key = ?", (user_id, key)
        ).fetchone()
        if row is None:
            return None
        rules: list[dict[str, Any]] = json.loads(row[0])
        return rules
