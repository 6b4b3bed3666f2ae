"""The gateway's configuration file.

Every key has a default, so ``tgsip run`` works without a file (embedded defaults: SQLite
under ``data_dir``, one process). A TOML file overrides what it names; unknown keys are errors,
so a typo never silently falls back to a default. ``TGSIP_CONFIG`` names the file when
``--config`` is not given.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import msgspec

from tgsip.config.media import EngineConfig


class TelegramConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Telegram API credentials (from my.telegram.org). Without them the gateway runs against
    the local sandbox."""

    api_id: int | None = None
    api_hash: str | None = None


class SandboxConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Where the local Telegram sandbox listens when no credentials are configured."""

    host: str = "127.0.0.1"
    port: int = 8443
    bot_api_port: int = 8081


class GatewaySection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``[gateway]``: who runs this gateway.

    * ``admins``: Telegram user ids of the operators, who may connect new sessions in the
      administrator bot and manage sessions that have no administrator.
    """

    admins: tuple[int, ...] = ()


class GatewayConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The root of the configuration.

    * ``data_dir``: where the embedded store and recordings live (default ``./var``).
    * ``log_level``: ``DEBUG``, ``INFO``, ``WARNING`` or ``ERROR``.
    * ``media``: the media engine (worker threads, RTP address and port range).
    * ``telegram``: API credentials; when absent the gateway starts the local ``sandbox``.
    * ``gateway``: its operators (``admins``).
    """

    data_dir: str = "var"
    log_level: str = "INFO"
    media: EngineConfig = EngineConfig()
    telegram: TelegramConfig = TelegramConfig()
    sandbox: SandboxConfig = SandboxConfig()
    gateway: GatewaySection = GatewaySection()


class ConfigError(ValueError):
    """The configuration file is unreadable or invalid; the message names the key."""


def load(path: str | Path | None = None) -> GatewayConfig:
    """Loads ``path`` (or ``$TGSIP_CONFIG``); defaults when neither is given."""
    path = path or os.environ.get("TGSIP_CONFIG")
    if not path:
        return GatewayConfig()
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"cannot read configuration {path}: {e}") from e
    try:
        return msgspec.convert(raw, GatewayConfig)
    except msgspec.ValidationError as e:
        raise ConfigError(f"invalid configuration {path}: {e}") from e


__all__ = [
    "ConfigError",
    "GatewayConfig",
    "GatewaySection",
    "SandboxConfig",
    "TelegramConfig",
    "load",
]
