"""The configuration store: sessions, their settings and their SIP lines.

The API is async so a server-backed implementation can stand behind the same calls; the
embedded implementation is SQLite (WAL, one connection used from the event loop's thread,
every write its own transaction, so a crash loses at most the write in flight). Line
passwords are sealed with the :class:`~tgsip.storage.secretbox.SecretBox` (bound to the line
id) and never stored in clear. Telegram auth keys do not live here: the Telegram session
storage keeps them.

Listeners hear every committed change (:class:`ConfigChange`), which is how the SIP service
re-registers a line the bot just edited.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import msgspec

from tgsip.config.lines import SipLine
from tgsip.config.sessions import SessionRecord, SessionSettings, SessionState, StorageKind
from tgsip.storage.secretbox import SecretBox

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    admin_id INTEGER,
    phone TEXT NOT NULL,
    tg_user_id INTEGER,
    username TEXT NOT NULL DEFAULT '',
    storage TEXT NOT NULL,
    state TEXT NOT NULL,
    last_error TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    settings TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_admin ON sessions(admin_id);
CREATE TABLE IF NOT EXISTS lines (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    body TEXT NOT NULL,
    password BLOB
);
CREATE INDEX IF NOT EXISTS lines_session ON lines(session_id);
"""


class StoreError(Exception):
    """The database cannot be opened or written, or a row is not there."""


class ConfigChange(msgspec.Struct, frozen=True):
    """One committed change: what (``session`` or ``line``), which id, and whether deleted."""

    kind: Literal["session", "line"]
    id: int
    deleted: bool = False


_line_encoder = msgspec.json.Encoder()
_line_decoder = msgspec.json.Decoder(SipLine)
_settings_decoder = msgspec.json.Decoder(SessionSettings)


class ConfigStore:
    """Sessions and lines in SQLite. Create with :meth:`open_sqlite`; :meth:`close` at exit."""

    def __init__(self, db: sqlite3.Connection, box: SecretBox) -> None:
        self._db = db
        self._box = box
        self._listeners: list[Callable[[ConfigChange], None]] = []

    @classmethod
    def open_sqlite(cls, path: Path | str, box: SecretBox) -> ConfigStore:
        """Opens (creating if needed) the database at ``path``; ``":memory:"`` for a throwaway."""
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA foreign_keys = ON")
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA busy_timeout = 5000")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{path} was written by a newer tgsip (schema {version} > {SCHEMA_VERSION})"
                )
            db.executescript(_SCHEMA)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except sqlite3.Error as e:
            raise StoreError(f"cannot open the configuration store {path}: {e}") from e
        return cls(db, box)

    def close(self) -> None:
        self._db.close()

    def add_listener(self, callback: Callable[[ConfigChange], None]) -> None:
        self._listeners.append(callback)

    def remove_listener(self, callback: Callable[[ConfigChange], None]) -> None:
        self._listeners.remove(callback)

    def _notify(self, change: ConfigChange) -> None:
        for callback in list(self._listeners):
            try:
                callback(change)
            except Exception:
                log.exception("configuration listener failed on %s", change)

    def _write(self, sql: str, args: tuple[object, ...]) -> sqlite3.Cursor:
        try:
            return self._db.execute(sql, args)
        except sqlite3.Error as e:
            raise StoreError(f"configuration store write failed: {e}") from e

    # sessions

    @staticmethod
    def _session(row: Any) -> SessionRecord:
        (sid, admin_id, phone, tg_user_id, username, storage, state, err, created, settings) = row
        return SessionRecord(
            id=sid,
            admin_id=admin_id,
            phone=phone,
            tg_user_id=tg_user_id,
            username=username,
            storage=StorageKind(storage),
            state=SessionState(state),
            last_error=err,
            created_at=created,
            settings=_settings_decoder.decode(settings),
        )

    _SESSION_COLUMNS = (
        "id, admin_id, phone, tg_user_id, username, storage, state, last_error, created_at, "
        "settings"
    )

    async def create_session(self, rec: SessionRecord) -> SessionRecord:
        """Stores a new session and returns it with its id (and ``created_at`` if unset)."""
        created = rec.created_at or time.time()
        cur = self._write(
            "INSERT INTO sessions (admin_id, phone, tg_user_id, username, storage, state, "
            "last_error, created_at, settings) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                rec.admin_id,
                rec.phone,
                rec.tg_user_id,
                rec.username,
                rec.storage.value,
                rec.state.value,
                rec.last_error,
                created,
                msgspec.json.encode(rec.settings).decode(),
            ),
        )
        assert cur.lastrowid is not None
        stored = msgspec.structs.replace(rec, id=cur.lastrowid, created_at=created)
        self._notify(ConfigChange("session", stored.id))
        return stored

    async def get_session(self, session_id: int) -> SessionRecord | None:
        row = self._db.execute(
            f"SELECT {self._SESSION_COLUMNS} FROM sessions WHERE id = ?", (session_id,)
        ).fetchone()
        return None if row is None else self._session(row)

    async def list_sessions(self, admin_id: int | None = None) -> list[SessionRecord]:
        """Every session, or only those ``admin_id`` administers; oldest first."""
        if admin_id is None:
            rows = self._db.execute(f"SELECT {self._SESSION_COLUMNS} FROM sessions ORDER BY id")
        else:
            rows = self._db.execute(
                f"SELECT {self._SESSION_COLUMNS} FROM sessions WHERE admin_id = ? ORDER BY id",
                (admin_id,),
            )
        return [self._session(row) for row in rows.fetchall()]

    async def update_session(self, rec: SessionRecord) -> None:
        """Replaces the stored session ``rec.id`` (StoreError if it is not there). The storage
        kind never changes after creation."""
        current = await self.get_session(rec.id)
        if current is None:
            raise StoreError(f"no session {rec.id}")
        if current.storage is not rec.storage:
            raise StoreError("a session cannot move between storages")
        self._write(
            "UPDATE sessions SET admin_id = ?, phone = ?, tg_user_id = ?, username = ?, "
            "state = ?, last_error = ?, settings = ? WHERE id = ?",
            (
                rec.admin_id,
                rec.phone,
                rec.tg_user_id,
                rec.username,
                rec.state.value,
                rec.last_error,
                msgspec.json.encode(rec.settings).decode(),
                rec.id,
            ),
        )
        self._notify(ConfigChange("session", rec.id))

    async def delete_session(self, session_id: int) -> None:
        """Deletes the session and its lines."""
        line_ids = [
            int(r[0])
            for r in self._db.execute("SELECT id FROM lines WHERE session_id = ?", (session_id,))
        ]
        self._write("DELETE FROM sessions WHERE id = ?", (session_id,))
        for line_id in line_ids:
            self._notify(ConfigChange("line", line_id, deleted=True))
        self._notify(ConfigChange("session", session_id, deleted=True))

    # lines

    def _line(self, row: Any) -> SipLine:
        line_id, body, sealed = row
        line = _line_decoder.decode(body)
        password = ""
        if isinstance(sealed, bytes):
            password = self._box.open(sealed, f"line:{line_id}".encode()).decode()
        return msgspec.structs.replace(line, id=line_id, password=password)

    def _body(self, line: SipLine) -> str:
        return _line_encoder.encode(msgspec.structs.replace(line, password="")).decode()

    def _sealed(self, line: SipLine) -> bytes | None:
        if not line.password:
            return None
        return self._box.seal(line.password.encode(), f"line:{line.id}".encode())

    async def create_line(self, line: SipLine) -> SipLine:
        """Stores a new line of an existing session; returns it with its id."""
        if await self.get_session(line.session_id) is None:
            raise StoreError(f"no session {line.session_id}")
        cur = self._write(
            "INSERT INTO lines (session_id, body) VALUES (?, ?)",
            (line.session_id, self._body(line)),
        )
        assert cur.lastrowid is not None
        stored = msgspec.structs.replace(line, id=cur.lastrowid)
        self._write(
            "UPDATE lines SET body = ?, password = ? WHERE id = ?",
            (self._body(stored), self._sealed(stored), stored.id),
        )
        self._notify(ConfigChange("line", stored.id))
        return stored

    async def get_line(self, line_id: int) -> SipLine | None:
        row = self._db.execute(
            "SELECT id, body, password FROM lines WHERE id = ?", (line_id,)
        ).fetchone()
        return None if row is None else self._line(row)

    async def list_lines(self, session_id: int | None = None) -> list[SipLine]:
        if session_id is None:
            rows = self._db.execute("SELECT id, body, password FROM lines ORDER BY id")
        else:
            rows = self._db.execute(
                "SELECT id, body, password FROM lines WHERE session_id = ? ORDER BY id",
                (session_id,),
            )
        return [self._line(row) for row in rows.fetchall()]

    async def update_line(self, line: SipLine) -> None:
        current = await self.get_line(line.id)
        if current is None:
            raise StoreError(f"no line {line.id}")
        if current.session_id != line.session_id:
            raise StoreError("a line cannot move to another session")
        self._write(
            "UPDATE lines SET body = ?, password = ? WHERE id = ?",
            (self._body(line), self._sealed(line), line.id),
        )
        self._notify(ConfigChange("line", line.id))

    async def delete_line(self, line_id: int) -> None:
        self._write("DELETE FROM lines WHERE id = ?", (line_id,))
        self._notify(ConfigChange("line", line_id, deleted=True))

    async def delete_lines(self, session_id: int) -> int:
        """Deletes every line of a session; returns how many."""
        ids = [
            int(r[0])
            for r in self._db.execute("SELECT id FROM lines WHERE session_id = ?", (session_id,))
        ]
        self._write("DELETE FROM lines WHERE session_id = ?", (session_id,))
        for line_id in ids:
            self._notify(ConfigChange("line", line_id, deleted=True))
        return len(ids)


__all__ = ["SCHEMA_VERSION", "ConfigChange", "ConfigStore", "StoreError"]
