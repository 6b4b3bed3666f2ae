"""Exceptions raised by the media core.

The classes are created by the native module (its ``py/errors.rs`` is the one place where Rust
errors become Python exceptions); they are re-exported here so callers never import the native
module. Each subclass also derives from the built-in a caller would naturally catch:

* :class:`InvalidArgumentError` (``ValueError``): an argument outside its documented range.
* :class:`CodecError` (``ValueError``): a codec could not be created or failed on a frame.
* :class:`PacketError` (``ValueError``): bytes that do not form a valid packet.
* :class:`ClosedError` (``RuntimeError``): the line or engine is already closed.
* :class:`EngineIOError` (``OSError``): a socket or file error inside the engine.
"""

from tgsip.media._core import native

MediaCoreError = native.MediaCoreError
InvalidArgumentError = native.InvalidArgumentError
CodecError = native.CodecError
PacketError = native.PacketError
ClosedError = native.ClosedError
EngineIOError = native.EngineIOError

__all__ = [
    "ClosedError",
    "CodecError",
    "EngineIOError",
    "InvalidArgumentError",
    "MediaCoreError",
    "PacketError",
]
