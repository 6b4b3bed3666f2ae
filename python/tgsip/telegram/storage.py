"""Telethon session storage: the embedded SQLite store or an external PostgreSQL server.

``product.md`` §4 step 3: where a session account's Telegram authorization lives is chosen once,
when the session is connected, and never changes (its :class:`~tgsip.config.sessions.SessionRecord`
names the storage; there is no migration path). Two backends implement :class:`SessionBackend`:

* :class:`SqliteSessionBackend`: ``<data_dir>/telegram_sessions.sqlite3`` (the default);
* :class:`PostgresSessionBackend`: a PostgreSQL database reached through asyncpg.

Both keep, per session id: the data centre (id, address, port), the auth key **sealed** with the
gateway's :class:`~tgsip.storage.secretbox.SecretBox` (AES-256-GCM, the additional data binding
the blob to that session id, so a key copied onto another session fails to open), the entity
cache (id, access_hash, username, phone, display name of every peer Telethon has seen), the
update state (pts/qts/date/seq, per channel too) and the sent-file cache.

:class:`StoredSession` is the Telethon ``Session`` the client uses. Telethon reads a session
synchronously, so a stored session is loaded whole into memory first (:meth:`StoredSession.load`);
changes are then written behind, batched, by a background task and on every ``save()`` /
``close()`` (which Telethon awaits). The auth key never appears in a log line or an exception text.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import datetime
import logging
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from telethon import utils as tl_utils  # type: ignore[import-untyped]
from telethon.crypto import AuthKey  # type: ignore[import-untyped]
from telethon.sessions import MemorySession  # type: ignore[import-untyped]
from telethon.tl import types as tl_types  # type: ignore[import-untyped]

from tgsip.config.sessions import StorageKind
from tgsip.storage.secretbox import SecretBox, SecretError

__all__ = [
    "EMBEDDED_FILE",
    "EntityRow",
    "PostgresSessionBackend",
    "SessionBackend",
    "SessionSnapshot",
    "SessionStorages",
    "SqliteSessionBackend",
    "StorageError",
    "StoredSession",
    "WriteBatch",
    "auth_key_aad",
]

log = logging.getLogger(__name__)

EMBEDDED_FILE = "telegram_sessions.sqlite3"
"""File name of the embedded store inside the gateway's data directory."""

EntityRow = tuple[int, int, str | None, str | None, str | None]
"""(marked peer id, access_hash, lower-case username, phone, display name), Telethon's row."""

StateRow = tuple[int, int, int, int, int]
"""(entity id (0 = the account), pts, qts, date as unix seconds, seq)."""

FileRow = tuple[bytes, int, int, int, int]
"""(md5 digest, size, kind: 0 document / 1 photo, file id, access_hash)."""


class StorageError(Exception):
    """The session storage cannot be used: unreachable, unconfigured, or undecryptable.

    The message says what to do; it never contains key material.
    """


def auth_key_aad(session_id: int) -> bytes:
    """Additional authenticated data sealing session ``session_id``'s auth key."""
    return b"tgsip/telegram-auth-key/%d" % session_id


@dataclass
class SessionSnapshot:
    """Everything a backend keeps for one session (the auth key still sealed)."""

    dc_id: int = 0
    server_address: str | None = None
    port: int | None = None
    sealed_key: bytes | None = None
    entities: list[EntityRow] = field(default_factory=list)
    states: list[StateRow] = field(default_factory=list)
    files: list[FileRow] = field(default_factory=list)


@dataclass
class WriteBatch:
    """Changes to persist for one session; ``header`` set means dc and key changed."""

    header: tuple[int, str | None, int | None, bytes | None] | None = None
    entities: list[EntityRow] = field(default_factory=list)
    states: list[StateRow] = field(default_factory=list)
    files: list[FileRow] = field(default_factory=list)

    def empty(self) -> bool:
        return self.header is None and not (self.entities or self.states or self.files)


class SessionBackend(abc.ABC):
    """A place where Telethon sessions are kept; every method is safe to call concurrently."""

    kind: StorageKind

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and create the schema if needed; raises StorageError."""

    @abc.abstractmethod
    async def load(self, session_id: int) -> SessionSnapshot | None:
        """The stored session, or None when nothing is stored for ``session_id``."""

    @abc.abstractmethod
    async def write(self, session_id: int, batch: WriteBatch) -> None:
        """Upsert ``batch`` atomically."""

    @abc.abstractmethod
    async def delete(self, session_id: int) -> None:
        """Forget everything about ``session_id`` (auth key included)."""

    @abc.abstractmethod
    async def session_ids(self) -> list[int]:
        """Ids of the sessions that have a stored row."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections; the backend is unusable afterwards."""


_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS tg_sessions (
  session_id INTEGER PRIMARY KEY, dc_id INTEGER NOT NULL, server_address TEXT,
  port INTEGER, auth_key BLOB
);
CREATE TABLE IF NOT EXISTS tg_entities (
  session_id INTEGER NOT NULL, id INTEGER NOT NULL, hash INTEGER NOT NULL, username TEXT,
  phone TEXT, name TEXT, PRIMARY KEY (session_id, id)
);
CREATE TABLE IF NOT EXISTS tg_update_states (
  session_id INTEGER NOT NULL, entity_id INTEGER NOT NULL, pts INTEGER NOT NULL,
  qts INTEGER NOT NULL, date INTEGER NOT NULL, seq INTEGER NOT NULL,
  PRIMARY KEY (session_id, entity_id)
);
CREATE TABLE IF NOT EXISTS tg_sent_files (
  session_id INTEGER NOT NULL, md5 BLOB NOT NULL, size INTEGER NOT NULL, kind INTEGER NOT NULL,
  id INTEGER NOT NULL, hash INTEGER NOT NULL, PRIMARY KEY (session_id, md5, size, kind)
);
"""


class SqliteSessionBackend(SessionBackend):
    """The embedded store: one SQLite file (WAL) in the gateway's data directory."""

    kind = StorageKind.EMBEDDED

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> SqliteSessionBackend:
        return cls(data_dir / EMBEDDED_FILE)

    async def open(self) -> None:
        if self._db is not None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not self.path.exists():
                # Sealed keys only, but nobody else needs to read them: owner-only from birth.
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            db = sqlite3.connect(str(self.path), isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SQLITE_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(f"cannot open the session store {self.path}: {exc}") from exc
        self._db = db

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise StorageError("the embedded session store is not open")
        return self._db

    async def load(self, session_id: int) -> SessionSnapshot | None:
        db = self._conn()
        row = db.execute(
            "SELECT dc_id, server_address, port, auth_key FROM tg_sessions WHERE session_id = ?",
            (session_id,),
        ).fetchone()
        if row is None:
            return None
        snap = SessionSnapshot(
            dc_id=int(row[0]),
            server_address=row[1],
            port=row[2],
            sealed_key=bytes(row[3]) if row[3] is not None else None,
        )
        snap.entities = [
            (int(r[0]), int(r[1]), r[2], r[3], r[4])
            for r in db.execute(
                "SELECT id, hash, username, phone, name FROM tg_entities WHERE session_id = ?",
                (session_id,),
            )
        ]
        snap.states = [
            (int(r[0]), int(r[1]), int(r[2]), int(r[3]), int(r[4]))
            for r in db.execute(
                "SELECT entity_id, pts, qts, date, seq FROM tg_update_states WHERE session_id = ?",
                (session_id,),
            )
        ]
        snap.files = [
            (bytes(r[0]), int(r[1]), int(r[2]), int(r[3]), int(r[4]))
            for r in db.execute(
                "SELECT md5, size, kind, id, hash FROM tg_sent_files WHERE session_id = ?",
                (session_id,),
            )
        ]
        return snap

    async def write(self, session_id: int, batch: WriteBatch) -> None:
        db = self._conn()
        db.execute("BEGIN IMMEDIATE")
        try:
            if batch.header is not None:
                dc_id, address, port, sealed = batch.header
                db.execute(
                    "INSERT INTO tg_sessions (session_id, dc_id, server_address, port, auth_key) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (session_id) DO UPDATE SET "
                    "dc_id = excluded.dc_id, server_address = excluded.server_address, "
                    "port = excluded.port, auth_key = excluded.auth_key",
                    (session_id, dc_id, address, port, sealed),
                )
            db.executemany(
                "INSERT OR REPLACE INTO tg_entities (session_id, id, hash, username, phone, name) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(session_id, *e) for e in batch.entities],
            )
            db.executemany(
                "INSERT OR REPLACE INTO tg_update_states "
                "(session_id, entity_id, pts, qts, date, seq) VALUES (?, ?, ?, ?, ?, ?)",
                [(session_id, *s) for s in batch.states],
            )
            db.executemany(
                "INSERT OR REPLACE INTO tg_sent_files (session_id, md5, size, kind, id, hash) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(session_id, *f) for f in batch.files],
            )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    async def delete(self, session_id: int) -> None:
        db = self._conn()
        db.execute("BEGIN IMMEDIATE")
        for table in ("tg_sessions", "tg_entities", "tg_update_states", "tg_sent_files"):
            db.execute(f"DELETE FROM {table} WHERE session_id = ?", (session_id,))
        db.execute("COMMIT")

    async def session_ids(self) -> list[int]:
        rows = self._conn().execute("SELECT session_id FROM tg_sessions ORDER BY session_id")
        return [int(r[0]) for r in rows]

    async def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


_PG_SCHEMA = """
CREATE TABLE IF NOT EXISTS tg_sessions (
  session_id BIGINT PRIMARY KEY, dc_id INTEGER NOT NULL, server_address TEXT,
  port INTEGER, auth_key BYTEA
);
CREATE TABLE IF NOT EXISTS tg_entities (
  session_id BIGINT NOT NULL, id BIGINT NOT NULL, hash BIGINT NOT NULL, username TEXT,
  phone TEXT, name TEXT, PRIMARY KEY (session_id, id)
);
CREATE TABLE IF NOT EXISTS tg_update_states (
  session_id BIGINT NOT NULL, entity_id BIGINT NOT NULL, pts BIGINT NOT NULL,
  qts BIGINT NOT NULL, date BIGINT NOT NULL, seq BIGINT NOT NULL,
  PRIMARY KEY (session_id, entity_id)
);
CREATE TABLE IF NOT EXISTS tg_sent_files (
  session_id BIGINT NOT NULL, md5 BYTEA NOT NULL, size BIGINT NOT NULL, kind INTEGER NOT NULL,
  id BIGINT NOT NULL, hash BIGINT NOT NULL, PRIMARY KEY (session_id, md5, size, kind)
);
"""


class PostgresSessionBackend(SessionBackend):
    """An external PostgreSQL database (``dsn`` as libpq/asyncpg accept it)."""

    kind = StorageKind.POSTGRESQL

    def __init__(self, dsn: str, connect_timeout: float = 10.0) -> None:
        self.dsn = dsn
        self.connect_timeout = connect_timeout
        self._pool: Any = None

    async def open(self) -> None:
        if self._pool is not None:
            return
        import asyncpg  # type: ignore[import-untyped]

        try:
            pool = await asyncpg.create_pool(
                self.dsn, min_size=1, max_size=4, timeout=self.connect_timeout
            )
            async with pool.acquire() as conn:
                await conn.execute(_PG_SCHEMA)
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            raise StorageError(f"cannot use the PostgreSQL session store: {exc}") from exc
        self._pool = pool

    def _require(self) -> Any:
        if self._pool is None:
            raise StorageError("the PostgreSQL session store is not open")
        return self._pool

    async def load(self, session_id: int) -> SessionSnapshot | None:
        pool = self._require()
        async with pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT dc_id, server_address, port, auth_key FROM tg_sessions "
                "WHERE session_id = $1",
                session_id,
            )
            if row is None:
                return None
            snap = SessionSnapshot(
                dc_id=int(row[0]),
                server_address=row[1],
                port=row[2],
                sealed_key=bytes(row[3]) if row[3] is not None else None,
            )
            snap.entities = [
                (int(r[0]), int(r[1]), r[2], r[3], r[4])
                for r in await conn.fetch(
                    "SELECT id, hash, username, phone, name FROM tg_entities WHERE session_id = $1",
                    session_id,
                )
            ]
            snap.states = [
                (int(r[0]), int(r[1]), int(r[2]), int(r[3]), int(r[4]))
                for r in await conn.fetch(
                    "SELECT entity_id, pts, qts, date, seq FROM tg_update_states "
                    "WHERE session_id = $1",
                    session_id,
                )
            ]
            snap.files = [
                (bytes(r[0]), int(r[1]), int(r[2]), int(r[3]), int(r[4]))
                for r in await conn.fetch(
                    "SELECT md5, size, kind, id, hash FROM tg_sent_files WHERE session_id = $1",
                    session_id,
                )
            ]
        return snap

    async def write(self, session_id: int, batch: WriteBatch) -> None:
        pool = self._require()
        async with pool.acquire() as conn, conn.transaction():
            if batch.header is not None:
                dc_id, address, port, sealed = batch.header
                await conn.execute(
                    "INSERT INTO tg_sessions (session_id, dc_id, server_address, port, auth_key) "
                    "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (session_id) DO UPDATE SET "
                    "dc_id = EXCLUDED.dc_id, server_address = EXCLUDED.server_address, "
                    "port = EXCLUDED.port, auth_key = EXCLUDED.auth_key",
                    session_id,
                    dc_id,
                    address,
                    port,
                    sealed,
                )
            if batch.entities:
                await conn.executemany(
                    "INSERT INTO tg_entities (session_id, id, hash, username, phone, name) "
                    "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (session_id, id) DO UPDATE SET "
                    "hash = EXCLUDED.hash, username = EXCLUDED.username, "
                    "phone = EXCLUDED.phone, name = EXCLUDED.name",
                    [(session_id, *e) for e in batch.entities],
                )
            if batch.states:
                await conn.executemany(
                    "INSERT INTO tg_update_states (session_id, entity_id, pts, qts, date, seq) "
                    "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (session_id, entity_id) "
                    "DO UPDATE SET pts = EXCLUDED.pts, qts = EXCLUDED.qts, "
                    "date = EXCLUDED.date, seq = EXCLUDED.seq",
                    [(session_id, *s) for s in batch.states],
                )
            if batch.files:
                await conn.executemany(
                    "INSERT INTO tg_sent_files (session_id, md5, size, kind, id, hash) "
                    "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (session_id, md5, size, kind) "
                    "DO UPDATE SET id = EXCLUDED.id, hash = EXCLUDED.hash",
                    [(session_id, *f) for f in batch.files],
                )

    async def delete(self, session_id: int) -> None:
        pool = self._require()
        async with pool.acquire() as conn, conn.transaction():
            for table in ("tg_sessions", "tg_entities", "tg_update_states", "tg_sent_files"):
                await conn.execute(f"DELETE FROM {table} WHERE session_id = $1", session_id)

    async def session_ids(self) -> list[int]:
        pool = self._require()
        async with pool.acquire() as conn:
            rows = await conn.fetch("SELECT session_id FROM tg_sessions ORDER BY session_id")
        return [int(r[0]) for r in rows]

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()


class SessionStorages:
    """The backends a gateway has: the embedded one always, PostgreSQL when a DSN is set.

    A session is served only by the backend its record names (``product.md`` §4 step 3: no
    moving between storages).
    """

    def __init__(self, data_dir: Path, box: SecretBox, postgres_dsn: str | None = None) -> None:
        self.box = box
        self._backends: dict[StorageKind, SessionBackend] = {
            StorageKind.EMBEDDED: SqliteSessionBackend.in_data_dir(data_dir)
        }
        if postgres_dsn:
            self._backends[StorageKind.POSTGRESQL] = PostgresSessionBackend(postgres_dsn)
        self._opened: set[StorageKind] = set()

    def available(self) -> list[StorageKind]:
        return list(self._backends)

    async def backend(self, kind: StorageKind) -> SessionBackend:
        """The opened backend for ``kind``; StorageError when it is not configured."""
        backend = self._backends.get(kind)
        if backend is None:
            raise StorageError(
                f"the {kind.value} session storage is not configured on this gateway"
            )
        if kind not in self._opened:
            await backend.open()
            self._opened.add(kind)
        return backend

    async def new_session(self, session_id: int, kind: StorageKind) -> StoredSession:
        """An empty session that will be kept in ``kind`` (any old data for the id is erased)."""
        backend = await self.backend(kind)
        await backend.delete(session_id)
        return StoredSession(session_id, backend, self.box)

    async def load(self, session_id: int, kind: StorageKind) -> StoredSession | None:
        """The stored session or None; StorageError when the key cannot be decrypted."""
        return await StoredSession.load(session_id, await self.backend(kind), self.box)

    async def delete(self, session_id: int, kind: StorageKind) -> None:
        await (await self.backend(kind)).delete(session_id)

    async def close(self) -> None:
        for kind in list(self._opened):
            await self._backends[kind].close()
        self._opened.clear()


class StoredSession(MemorySession):  # type: ignore[misc]
    """A Telethon ``Session`` kept in a :class:`SessionBackend`, written behind.

    Telethon calls every method synchronously: ``save`` and ``close`` start a background flush
    (:meth:`flush` awaits one), ``delete`` a background :meth:`forget`.
    """

    _auth_key: Any

    def __init__(self, session_id: int, backend: SessionBackend, box: SecretBox) -> None:
        super().__init__()
        self.session_id = session_id
        self.backend = backend
        self._box = box
        self._rows: dict[int, EntityRow] = {}
        self._dirty_header = False
        self._dirty_entities: dict[int, EntityRow] = {}
        self._dirty_states: dict[int, StateRow] = {}
        self._dirty_files: list[FileRow] = []
        self._flusher: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._deleted = False

    def __repr__(self) -> str:
        return f"StoredSession(id={self.session_id}, storage={self.backend.kind.value})"

    @classmethod
    async def load(
        cls, session_id: int, backend: SessionBackend, box: SecretBox
    ) -> StoredSession | None:
        snap = await backend.load(session_id)
        if snap is None:
            return None
        session = cls(session_id, backend, box)
        session._dc_id = snap.dc_id
        session._server_address = snap.server_address
        session._port = snap.port
        if snap.sealed_key is not None:
            try:
                key = box.open(snap.sealed_key, auth_key_aad(session_id))
            except SecretError as exc:
                raise StorageError(
                    f"cannot decrypt the Telegram authorization of session {session_id}: the "
                    "gateway's secret key (TGSIP_SECRET_KEY / TGSIP_SECRET_KEY_FILE / "
                    "secret.key) is not the one it was stored with"
                ) from exc
            session._auth_key = AuthKey(data=key)
        for row in snap.entities:
            session._rows[row[0]] = row
        for entity_id, pts, qts, date, seq in snap.states:
            session._update_states[entity_id] = tl_types.updates.State(
                pts=pts,
                qts=qts,
                date=datetime.datetime.fromtimestamp(date, tz=datetime.UTC),
                seq=seq,
                unread_count=0,
            )
        for md5, size, kind, file_id, file_hash in snap.files:
            session._files[(md5, size, _file_kind(kind))] = (file_id, file_hash)
        return session

    # --- what Telethon calls -------------------------------------------------------------

    def set_dc(self, dc_id: int, server_address: str, port: int) -> None:
        super().set_dc(dc_id, server_address, port)
        self._dirty_header = True
        self._kick()

    @property
    def auth_key(self) -> Any:
        return self._auth_key

    @auth_key.setter
    def auth_key(self, value: Any) -> None:
        old = self._auth_key.key if self._auth_key is not None else None
        new = value.key if value is not None else None
        self._auth_key = value
        if old != new:
            self._dirty_header = True
            self._kick()

    def process_entities(self, tlo: Any) -> None:
        for row in self._entities_to_rows(tlo):
            marked_id = row[0]
            if self._rows.get(marked_id) != row:
                self._rows[marked_id] = row
                self._dirty_entities[marked_id] = row
        if self._dirty_entities:
            self._kick()

    def get_entity_rows_by_phone(self, phone: str) -> tuple[int, int] | None:
        return self._find(lambda r: r[3] == phone)

    def get_entity_rows_by_username(self, username: str) -> tuple[int, int] | None:
        return self._find(lambda r: r[2] == username)

    def get_entity_rows_by_name(self, name: str) -> tuple[int, int] | None:
        return self._find(lambda r: r[4] == name)

    def get_entity_rows_by_id(self, id: int, exact: bool = True) -> tuple[int, int] | None:
        if exact:
            row = self._rows.get(id)
            return (row[0], row[1]) if row is not None else None
        ids = (
            tl_utils.get_peer_id(tl_types.PeerUser(id)),
            tl_utils.get_peer_id(tl_types.PeerChat(id)),
            tl_utils.get_peer_id(tl_types.PeerChannel(id)),
        )
        for marked in ids:
            row = self._rows.get(marked)
            if row is not None:
                return row[0], row[1]
        return None

    def _find(self, match: Any) -> tuple[int, int] | None:
        for row in self._rows.values():
            if match(row):
                return row[0], row[1]
        return None

    def entity_rows(self) -> list[EntityRow]:
        """Every cached peer (for inspection and tests)."""
        return list(self._rows.values())

    def set_update_state(self, entity_id: int, state: Any) -> None:
        super().set_update_state(entity_id, state)
        date = state.date
        stamp = int(date.timestamp()) if isinstance(date, datetime.datetime) else int(date or 0)
        self._dirty_states[entity_id] = (
            entity_id,
            int(state.pts),
            int(state.qts),
            stamp,
            int(state.seq),
        )
        self._kick()

    def cache_file(self, md5_digest: bytes, file_size: int, instance: Any) -> None:
        super().cache_file(md5_digest, file_size, instance)
        kind = 1 if isinstance(instance, tl_types.InputPhoto) else 0
        self._dirty_files.append(
            (md5_digest, file_size, kind, int(instance.id), int(instance.access_hash))
        )
        self._kick()

    def save(self) -> None:
        """Telethon's save point: starts a background flush (await :meth:`flush` to be sure)."""
        self._kick()

    def close(self) -> None:
        self._kick()

    def delete(self) -> None:
        """Forget the session (Telethon calls this after ``auth.logOut``); the rows are deleted
        in the background (await :meth:`forget` to be sure)."""
        self._deleted = True
        self._auth_key = None
        self._rows.clear()
        self._update_states.clear()
        with contextlib.suppress(RuntimeError):
            self._flusher = asyncio.get_running_loop().create_task(self._background_forget())

    async def _background_forget(self) -> None:
        try:
            await self.forget()
        except Exception as exc:
            log.warning("session %d: forgetting failed: %s", self.session_id, type(exc).__name__)

    async def forget(self) -> None:
        """Delete the session from its backend, now."""
        self._deleted = True
        async with self._lock:
            await self.backend.delete(self.session_id)

    # --- write-behind ----------------------------------------------------------------------

    def _kick(self) -> None:
        if self._deleted or (self._flusher is not None and not self._flusher.done()):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # flushed by the next save()
        self._flusher = loop.create_task(self._background_flush())

    async def _background_flush(self) -> None:
        with contextlib.suppress(StorageError):  # logged by flush(); kept for the next one
            while self.has_pending() and not self._deleted:
                await self.flush()

    def _take(self) -> WriteBatch:
        batch = WriteBatch()
        if self._dirty_header:
            raw = self._auth_key.key if self._auth_key is not None else None
            sealed = self._box.seal(raw, auth_key_aad(self.session_id)) if raw else None
            batch.header = (self._dc_id, self._server_address, self._port, sealed)
            self._dirty_header = False
        batch.entities = list(self._dirty_entities.values())
        batch.states = list(self._dirty_states.values())
        batch.files = self._dirty_files
        self._dirty_entities = {}
        self._dirty_states = {}
        self._dirty_files = []
        return batch

    def _restore(self, batch: WriteBatch) -> None:
        if batch.header is not None:
            self._dirty_header = True
        for row in batch.entities:
            self._dirty_entities.setdefault(row[0], row)
        for state in batch.states:
            self._dirty_states.setdefault(state[0], state)
        self._dirty_files.extend(batch.files)

    async def flush(self) -> None:
        """Write every pending change; StorageError (pending changes kept) when it fails."""
        async with self._lock:
            if self._deleted:
                return
            batch = self._take()
            if batch.empty():
                return
            try:
                await self.backend.write(self.session_id, batch)
            except Exception as exc:
                self._restore(batch)
                log.warning(
                    "session %d: writing to the %s session store failed: %s",
                    self.session_id,
                    self.backend.kind.value,
                    type(exc).__name__,
                )
                raise StorageError(f"cannot write session {self.session_id}: {exc}") from exc

    def has_pending(self) -> bool:
        return bool(
            self._dirty_header or self._dirty_entities or self._dirty_states or self._dirty_files
        )


def _file_kind(kind: int) -> Any:
    from telethon.sessions.memory import _SentFileType  # type: ignore[import-untyped]

    return _SentFileType.PHOTO if kind == 1 else _SentFileType.DOCUMENT
