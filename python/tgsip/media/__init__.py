"""The media plane: a typed facade over the Rust media core.

This package is the only part of tgsip that talks to the native module ``tgsip._media_core``
(through :mod:`tgsip.media._core`). The core owns its sockets and threads; Python configures lines
once and receives events, and never touches an RTP packet.
"""

from tgsip.media import g711
from tgsip.media.config import EngineConfig, LineConfig, OpusSettings
from tgsip.media.engine import Line, MediaEngine
from tgsip.media.errors import (
    ClosedError,
    CodecError,
    EngineIOError,
    InvalidArgumentError,
    MediaCoreError,
    PacketError,
)

__all__ = [
    "ClosedError",
    "CodecError",
    "EngineConfig",
    "EngineIOError",
    "InvalidArgumentError",
    "Line",
    "LineConfig",
    "MediaCoreError",
    "MediaEngine",
    "OpusSettings",
    "PacketError",
    "g711",
]
