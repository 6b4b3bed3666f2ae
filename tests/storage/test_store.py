"""The configuration store on real SQLite, and the secret box."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from tgsip.config.lines import Codec, new_gateway_to_pbx, new_pbx_to_gateway
from tgsip.config.sessions import SessionRecord, SessionSettings, SessionState, StorageKind
from tgsip.storage import ConfigChange, ConfigStore, SecretBox, SecretError, StoreError


def test_secret_box_roundtrip_and_failures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TGSIP_SECRET_KEY", raising=False)
    monkeypatch.delenv("TGSIP_SECRET_KEY_FILE", raising=False)
    box = SecretBox.from_environment(tmp_path)
    key_file = tmp_path / "secret.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    blob = box.seal(b"s3cret", b"line:1")
    assert b"s3cret" not in blob
    assert box.open(blob, b"line:1") == b"s3cret"
    assert SecretBox.from_environment(tmp_path).open(blob, b"line:1") == b"s3cret"  # same file
    with pytest.raises(SecretError, match="tampered or moved"):
        box.open(blob, b"line:2")
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(SecretError, match="tampered"):
        box.open(tampered, b"line:1")
    other = SecretBox(os.urandom(32))
    with pytest.raises(SecretError, match="another key"):
        other.open(blob, b"line:1")
    with pytest.raises(SecretError, match="truncated"):
        box.open(blob[:10])
    monkeypatch.setenv("TGSIP_SECRET_KEY", "not base64!")
    with pytest.raises(SecretError, match="base64"):
        SecretBox.from_environment(tmp_path)
    monkeypatch.setenv("TGSIP_SECRET_KEY", SecretBox.generate_key())
    env_box = SecretBox.from_environment(tmp_path)
    with pytest.raises(SecretError, match="another key"):
        env_box.open(blob, b"line:1")
    assert "key_id" in repr(env_box)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ConfigStore]:
    s = ConfigStore.open_sqlite(tmp_path / "gateway.db", SecretBox(b"k" * 32))
    yield s
    s.close()


async def test_sessions_and_lines(store: ConfigStore, tmp_path: Path) -> None:
    changes: list[ConfigChange] = []
    store.add_listener(changes.append)
    rec = await store.create_session(SessionRecord(admin_id=42, phone="15550001"))
    assert rec.id > 0
    assert rec.created_at > 0
    other = await store.create_session(SessionRecord(admin_id=7, phone="15550002"))
    assert [s.id for s in await store.list_sessions(42)] == [rec.id]
    assert len(await store.list_sessions()) == 2
    updated = msgspec.structs.replace(
        rec,
        state=SessionState.ACTIVE,
        tg_user_id=1001,
        settings=SessionSettings(callback=True, autoreply_text="calls only"),
    )
    await store.update_session(updated)
    assert await store.get_session(rec.id) == updated
    with pytest.raises(StoreError, match="cannot move between storages"):
        await store.update_session(msgspec.structs.replace(updated, storage=StorageKind.POSTGRESQL))

    line = await store.create_line(new_pbx_to_gateway(rec.id))
    out = await store.create_line(
        msgspec.structs.replace(
            new_gateway_to_pbx(rec.id), password="pbx-pass", codecs=(Codec.OPUS,)
        )
    )
    assert (await store.get_line(line.id)) == line
    assert [x.id for x in await store.list_lines(rec.id)] == [line.id, out.id]
    await store.update_line(msgspec.structs.replace(out, domain="pbx.example.com"))
    got = await store.get_line(out.id)
    assert got is not None
    assert got.domain == "pbx.example.com"
    assert got.password == "pbx-pass"
    with pytest.raises(StoreError, match="another session"):
        await store.update_line(msgspec.structs.replace(out, session_id=other.id))
    with pytest.raises(StoreError, match="no session"):
        await store.create_line(new_pbx_to_gateway(999))

    # passwords are sealed, never in the file in clear
    raw = sqlite3.connect(tmp_path / "gateway.db")
    bodies = raw.execute("SELECT body, password FROM lines").fetchall()
    raw.close()
    for body, sealed in bodies:
        assert line.password not in body
        assert "pbx-pass" not in body
        assert line.password.encode() not in sealed
        assert b"pbx-pass" not in sealed

    # a sealed password copied onto another row does not open
    raw = sqlite3.connect(tmp_path / "gateway.db")
    raw.execute(
        "UPDATE lines SET password = (SELECT password FROM lines WHERE id = ?) WHERE id = ?",
        (line.id, out.id),
    )
    raw.commit()
    raw.close()
    with pytest.raises(SecretError):
        await store.get_line(out.id)

    assert await store.delete_lines(rec.id) == 2
    assert await store.list_lines(rec.id) == []
    await store.create_line(new_pbx_to_gateway(other.id))
    await store.delete_session(other.id)
    assert await store.get_session(other.id) is None
    assert await store.list_lines() == []
    assert ConfigChange("line", line.id, deleted=True) in changes
    assert changes[-1] == ConfigChange("session", other.id, deleted=True)


async def test_reopen_keeps_everything(tmp_path: Path) -> None:
    box = SecretBox(b"z" * 32)
    first = ConfigStore.open_sqlite(tmp_path / "g.db", box)
    rec = await first.create_session(SessionRecord(admin_id=1, phone="1"))
    line = await first.create_line(new_pbx_to_gateway(rec.id))
    first.close()
    second = ConfigStore.open_sqlite(tmp_path / "g.db", box)
    assert await second.get_line(line.id) == line
    assert await second.get_session(rec.id) == rec
    second.close()
    third = ConfigStore.open_sqlite(tmp_path / "g.db", SecretBox(b"y" * 32))
    try:
        with pytest.raises(SecretError, match="another key"):
            await third.get_line(line.id)
    finally:
        third.close()


def test_newer_schema_refused(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "g.db")
    db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(StoreError, match="newer tgsip"):
        ConfigStore.open_sqlite(tmp_path / "g.db", SecretBox(b"k" * 32))
