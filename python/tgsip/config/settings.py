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


class GatewayConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The root of the configuration.

    * ``data_dir``: where the embedded store and recordings live (default ``./var``).
    * ``log_level``: ``DEBUG``, ``INFO``, ``WARNING`` or ``ERROR``.
    * ``media``: the media engine (worker threads, RTP address and port range).
    """

    data_dir: str = "var"
    log_level: str = "INFO"
    media: EngineConfig = EngineConfig()


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


__all__ = ["ConfigError", "GatewayConfig", "load"]
