"""Settings of the media engine (the ``[media]`` table of the configuration)."""

from __future__ import annotations

import msgspec


class EngineConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How the media engine runs.

    ``workers`` defaults to the number of cores; each worker thread serves many lines on one
    10 ms tick. RTP sockets bind to ``bind_ip`` on even ports of ``port_min..port_max``.
    """

    workers: int | None = None
    bind_ip: str = "127.0.0.1"
    port_min: int = 20000
    port_max: int = 39999


__all__ = ["EngineConfig"]
