"""``[gateway] admins`` in the configuration file: who may connect sessions in the bot."""

from __future__ import annotations

from pathlib import Path

import pytest

from tgsip.config.settings import ConfigError, GatewayConfig, load


def test_admins_default_to_nobody() -> None:
    assert GatewayConfig().gateway.admins == ()


def test_admins_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "tgsip.toml"
    path.write_text("[gateway]\nadmins = [1000001, 42]\n", encoding="utf-8")
    assert load(path).gateway.admins == (1000001, 42)


@pytest.mark.parametrize("body", ['[gateway]\nadmins = ["alice"]\n', "[gateway]\nadmin = [1]\n"])
def test_bad_admins_are_refused(tmp_path: Path, body: str) -> None:
    path = tmp_path / "tgsip.toml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(ConfigError, match="gateway"):
        load(path)
