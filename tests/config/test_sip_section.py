"""The `[sip]` and `[telegram]` sections: digest algorithms and the PostgreSQL session storage."""

from __future__ import annotations

from pathlib import Path

import pytest

from tgsip.config.settings import ConfigError, GatewayConfig, load


def test_md5_first_by_default() -> None:
    assert GatewayConfig().sip.digest_algorithms == ("MD5", "SHA-256")


def test_order_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "tgsip.toml"
    path.write_text('[sip]\ndigest_algorithms = ["SHA-256", "MD5"]\n', encoding="utf-8")
    assert load(path).sip.digest_algorithms == ("SHA-256", "MD5")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[sip]\ndigest_algorithms = ["SHA-1"]\n', "unknown 'SHA-1'"),
        ("[sip]\ndigest_algorithms = []\n", "at least one"),
    ],
)
def test_bad_algorithms_are_refused(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "tgsip.toml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load(path)


def test_postgres_dsn_offers_the_external_storage(tmp_path: Path) -> None:
    from tgsip.config.sessions import StorageKind
    from tgsip.storage import SecretBox
    from tgsip.telegram.storage import SessionStorages

    path = tmp_path / "tgsip.toml"
    path.write_text('[telegram]\npostgres_dsn = "postgresql://gw@127.0.0.1/gw"\n')
    config = load(path)
    assert config.telegram.postgres_dsn == "postgresql://gw@127.0.0.1/gw"
    assert GatewayConfig().telegram.postgres_dsn == ""
    box = SecretBox(b"k" * 32)
    with_pg = SessionStorages(tmp_path, box, config.telegram.postgres_dsn or None)
    assert with_pg.available() == [StorageKind.EMBEDDED, StorageKind.POSTGRESQL]
    without = SessionStorages(tmp_path, box, GatewayConfig().telegram.postgres_dsn or None)
    assert without.available() == [StorageKind.EMBEDDED]
