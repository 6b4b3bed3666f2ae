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
    the local sandbox.

    ``postgres_dsn``: a PostgreSQL connection string (``postgresql://user:pass@host/db``).
    When set, the bot offers PostgreSQL as a session's storage at connection time besides the
    embedded SQLite one; sessions stored there need it from then on.
    """

    api_id: int | None = None
    api_hash: str | None = None
    postgres_dsn: str = ""


class SandboxConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Where the local Telegram sandbox listens when no credentials are configured."""

    host: str = "127.0.0.1"
    port: int = 8443
    bot_api_port: int = 8081
    print_codes: bool = False
    """Log the sandbox's login codes (fake accounts only; for trying the gateway out)."""


class SipSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``[sip]``: the gateway's SIP endpoint.

    * ``host``: the address to bind (default ``0.0.0.0``).
    * ``public_address``: the host (or host:port) PBXs use to reach the gateway, shown in the
      bot's Show account and put in Contact/Via; defaults to ``host`` (or 127.0.0.1 when
      ``host`` is a wildcard).
    * ``udp_port``/``tcp_port``: 5060 by default; 0 = any free port; -1 = transport off.
    * ``tls_port``: 5061 when ``tls_cert`` and ``tls_key`` (PEM files) are given, else off.
    * ``digest_algorithms``: what the registrar's challenges offer, most preferred first
      (``MD5``, ``SHA-256``, ``SHA-512-256``). MD5 comes first by default because many PBXs
      and softphones answer only the first challenge, or fail when a SHA-256 one is present;
      set ``["SHA-256", "MD5"]`` or ``["SHA-256"]`` when every PBX supports RFC 8760.
    """

    host: str = "0.0.0.0"
    public_address: str = ""
    udp_port: int = 5060
    tcp_port: int = 5060
    tls_port: int = 5061
    tls_cert: str = ""
    tls_key: str = ""
    digest_algorithms: tuple[str, ...] = ("MD5", "SHA-256")

    def __post_init__(self) -> None:
        known = ("MD5", "SHA-256", "SHA-512-256")
        if not self.digest_algorithms:
            raise ValueError("sip.digest_algorithms needs at least one algorithm")
        for name in self.digest_algorithms:
            if name not in known:
                raise ValueError(
                    f"sip.digest_algorithms: unknown {name!r} (known: {', '.join(known)})"
                )


class BotSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``[bot]``: the administrator bot's token from @BotFather. Against the local sandbox the
    gateway creates a sandbox bot (``sandbox_username``) when no token is given."""

    token: str = ""
    sandbox_username: str = "tgsip_admin_bot"


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
    * ``sip``: the SIP endpoint (bind address, ports, TLS, public address).
    * ``bot``: the administrator bot's token.
    """

    data_dir: str = "var"
    log_level: str = "INFO"
    media: EngineConfig = EngineConfig()
    telegram: TelegramConfig = TelegramConfig()
    sandbox: SandboxConfig = SandboxConfig()
    gateway: GatewaySection = GatewaySection()
    sip: SipSection = SipSection()
    bot: BotSection = BotSection()


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
    "BotSection",
    "ConfigError",
    "GatewayConfig",
    "GatewaySection",
    "SandboxConfig",
    "SipSection",
    "TelegramConfig",
    "load",
]
