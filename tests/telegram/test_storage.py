"""Session storage: embedded SQLite and PostgreSQL, sealed auth keys, no key in logs, wrong key,
no moving between storages."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import asyncpg
import pytest
from telethon.crypto import AuthKey
from telethon.tl import types

from tgsip.config.sessions import SessionRecord, SessionState, StorageKind
from tgsip.sandbox import Sandbox
from tgsip.storage.secretbox import SecretBox
from tgsip.telegram.login import Failed, LoginFailure
from tgsip.telegram.storage import (
    EMBEDDED_FILE,
    SessionStorages,
    SqliteSessionBackend,
    StorageError,
    StoredSession,
    WriteBatch,
    auth_key_aad,
)

from .conftest import TIMEOUT, PgCluster, connect_session, stop_gateway

KEY_A = bytes(range(32))
KEY_B = bytes(range(1, 33))


def _raw_key(sandbox: Sandbox, user_id: int) -> bytes:
    [auth] = [a for a in sandbox.world.authorizations(user_id) if a.device_model == "tgsip gateway"]
    return auth.auth_key


def _files_bytes(directory: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file())


async def test_auth_key_sealed_at_rest_and_never_logged(
    sandbox: Sandbox, make_gateway, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    alice = sandbox.create_user("15552001", "Alice")
    data = tmp_path / "gw"
    gw = await make_gateway(data_dir=data, key=KEY_A)
    rec = (await connect_session(gw, sandbox, "+15552001")).session
    raw = _raw_key(sandbox, alice.id)
    assert len(raw) == 256
    await stop_gateway(gw)  # every write is in the files now (the WAL files are read too)
    stored = _files_bytes(data)
    assert (data / EMBEDDED_FILE).exists()
    for needle in (raw, raw[:32], raw[-32:], raw.hex().encode(), raw.hex()[:64].encode()):
        assert needle not in stored
    logged = caplog.text
    assert raw.hex()[:32] not in logged
    assert raw.hex()[:32].upper() not in logged
    assert repr(raw)[2:40] not in logged
    # What is stored opens with the right key and binds to the session id.
    backend = SqliteSessionBackend(data / EMBEDDED_FILE)
    await backend.open()
    snap = await backend.load(rec.id)
    assert snap is not None
    assert snap.sealed_key is not None
    assert SecretBox(KEY_A).open(snap.sealed_key, auth_key_aad(rec.id)) == raw
    # A sealed key copied onto another session does not open there.
    await backend.write(rec.id + 1, WriteBatch(header=(2, "127.0.0.1", 1, snap.sealed_key)))
    with pytest.raises(StorageError, match="secret key"):
        await StoredSession.load(rec.id + 1, backend, SecretBox(KEY_A))
    await backend.close()


async def test_wrong_secret_key_is_a_clear_error(
    sandbox: Sandbox, make_gateway, tmp_path: Path
) -> None:
    sandbox.create_user("15552011", "Alice")
    data = tmp_path / "gw"
    gw = await make_gateway(data_dir=data, key=KEY_A)
    rec = (await connect_session(gw, sandbox, "+15552011")).session
    await stop_gateway(gw)
    other = await make_gateway(data_dir=data, key=KEY_B)
    await other.wait_for(lambda: "error" in other.kinds(rec.id))
    assert not other.manager.is_online(rec.id)
    stored = await other.store.get_session(rec.id)
    assert stored is not None
    assert stored.state is SessionState.ERROR
    assert "secret key" in stored.last_error
    assert "TGSIP_SECRET_KEY" in stored.last_error


async def test_stored_session_round_trip(tmp_path: Path) -> None:
    """Every part of Telethon's session state survives a reload (real SQLite)."""
    box = SecretBox(KEY_A)
    storages = SessionStorages(tmp_path, box)
    session = await storages.new_session(5, StorageKind.EMBEDDED)
    session.set_dc(2, "127.0.0.1", 4444)
    session.auth_key = AuthKey(bytes(range(256)))
    user = types.User(
        id=1234, access_hash=-99, username="Zed", phone="15550000", first_name="Zed", last_name="Q"
    )
    session.process_entities(types.contacts.ResolvedPeer(peer=None, chats=[], users=[user]))
    state = types.updates.State(pts=17, qts=3, date=1_700_000_000, seq=5, unread_count=0)
    session.set_update_state(0, state)
    await session.flush()
    assert not session.has_pending()
    assert (tmp_path / EMBEDDED_FILE).stat().st_mode & 0o777 == 0o600
    again = await storages.load(5, StorageKind.EMBEDDED)
    assert again is not None
    assert (again.dc_id, again.server_address, again.port) == (2, "127.0.0.1", 4444)
    assert again.auth_key.key == bytes(range(256))
    assert again.get_input_entity("zed") == types.InputPeerUser(1234, -99)
    assert again.get_input_entity("+15550000") == types.InputPeerUser(1234, -99)
    assert again.get_input_entity(1234) == types.InputPeerUser(1234, -99)
    assert again.entity_rows() == [(1234, -99, "zed", "15550000", "Zed Q")]
    [(entity_id, loaded)] = list(again.get_update_states())
    assert entity_id == 0
    assert (loaded.pts, loaded.qts, loaded.seq, int(loaded.date.timestamp())) == (
        17,
        3,
        5,
        1_700_000_000,
    )
    assert await storages.load(6, StorageKind.EMBEDDED) is None
    await again.forget()
    assert await storages.load(5, StorageKind.EMBEDDED) is None
    await storages.close()


async def test_postgresql_not_configured(sandbox: Sandbox, make_gateway) -> None:
    sandbox.create_user("15552021", "Alice")
    gw = await make_gateway()
    flow = gw.manager.begin_login(1, StorageKind.POSTGRESQL)
    step = await asyncio.wait_for(flow.submit_phone("+15552021"), TIMEOUT)
    assert isinstance(step, Failed)
    assert step.reason is LoginFailure.INTERNAL
    assert "postgresql session storage is not configured" in step.message
    assert await gw.store.list_sessions() == []


async def test_session_cannot_move_between_storages(
    sandbox: Sandbox, make_gateway, tmp_path: Path
) -> None:
    """A record kept in PostgreSQL is never looked for in the embedded store."""
    gw = await make_gateway(data_dir=tmp_path / "gw", start=False)
    rec = await gw.store.create_session(
        SessionRecord(
            admin_id=1,
            phone="+15552031",
            storage=StorageKind.POSTGRESQL,
            state=SessionState.ACTIVE,
        )
    )
    # Even with the same id present in the embedded store.
    embedded = await gw.storages.new_session(rec.id, StorageKind.EMBEDDED)
    embedded.auth_key = AuthKey(bytes(256))
    await embedded.flush()
    await gw.manager.start()
    stored = await gw.store.get_session(rec.id)
    assert stored is not None
    assert stored.state is SessionState.ERROR
    assert "postgresql session storage is not configured" in stored.last_error
    assert not gw.manager.is_online(rec.id)


@pytest.mark.peer
async def test_postgresql_storage(
    sandbox: Sandbox, make_gateway, tmp_path: Path, postgres: PgCluster
) -> None:
    alice = sandbox.create_user("15552041", "Alice", username="alice")
    caller = sandbox.create_user("15552042", "Carl", username="carl")
    data = tmp_path / "gw"
    gw = await make_gateway(data_dir=data, key=KEY_A, postgres_dsn=postgres.dsn)
    done = await connect_session(gw, sandbox, "+15552041", storage=StorageKind.POSTGRESQL)
    rec = done.session
    assert rec.storage is StorageKind.POSTGRESQL
    await caller.send_message(alice, "hi")
    raw = _raw_key(sandbox, alice.id)
    await stop_gateway(gw)

    conn = await asyncpg.connect(postgres.dsn)
    try:
        row = await conn.fetchrow(
            "SELECT dc_id, auth_key FROM tg_sessions WHERE session_id = $1", rec.id
        )
        assert row is not None
        sealed = bytes(row["auth_key"])
        assert raw not in sealed
        assert SecretBox(KEY_A).open(sealed, auth_key_aad(rec.id)) == raw
        entity = await conn.fetchrow(
            "SELECT hash, username FROM tg_entities WHERE session_id = $1 AND id = $2",
            rec.id,
            caller.id,
        )
        assert entity is not None
        assert entity["hash"] == caller.user.access_hash
        assert entity["username"] == "carl"
        state = await conn.fetchrow(
            "SELECT pts FROM tg_update_states WHERE session_id = $1 AND entity_id = 0", rec.id
        )
        assert state is not None
        assert state["pts"] > 0
    finally:
        await conn.close()
    # Nothing went to the embedded store.
    embedded = SqliteSessionBackend(data / EMBEDDED_FILE)
    await embedded.open()
    assert await embedded.session_ids() == []
    await embedded.close()

    again = await make_gateway(data_dir=data, key=KEY_A, postgres_dsn=postgres.dsn)
    await again.wait_for(lambda: again.manager.is_online(rec.id))
    me = await asyncio.wait_for(again.manager.client(rec.id).get_me(), TIMEOUT)
    assert me.id == alice.id
    await again.manager.disconnect(rec.id, clear_lines=True)
    conn = await asyncpg.connect(postgres.dsn)
    try:
        assert (
            await conn.fetchval("SELECT count(*) FROM tg_sessions WHERE session_id = $1", rec.id)
            == 0
        )
        assert (
            await conn.fetchval("SELECT count(*) FROM tg_entities WHERE session_id = $1", rec.id)
            == 0
        )
    finally:
        await conn.close()


async def test_postgresql_unreachable_is_a_clear_error(tmp_path: Path) -> None:
    storages = SessionStorages(
        tmp_path, SecretBox(KEY_A), "postgresql://nobody@127.0.0.1:9/none?connect_timeout=2"
    )
    with pytest.raises(StorageError, match="cannot use the PostgreSQL session store"):
        await storages.backend(StorageKind.POSTGRESQL)
    await storages.close()
