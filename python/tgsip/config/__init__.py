"""Gateway settings: a frozen msgspec tree loaded from TOML, with defaults for one machine."""

from tgsip.config.settings import GatewayConfig, load

__all__ = ["GatewayConfig", "load"]
