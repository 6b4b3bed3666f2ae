"""``[sip] digest_algorithms``: what the registrar's challenges offer, and in which order."""

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
