"""Typed seam to Telethon's TL schema (layer as shipped by the installed Telethon).

Every request the sandbox accepts is parsed with Telethon's own generated classes and every
answer is serialized with them, so each wire message is checked against that schema. Telethon
is untyped: the few functions here are the only places the sandbox touches its internals.
"""

from __future__ import annotations

import struct
from typing import Any

from telethon.extensions import BinaryReader  # type: ignore[import-untyped]
from telethon.tl.alltlobjects import LAYER as _LAYER  # type: ignore[import-untyped]
from telethon.tl.tlobject import TLObject, TLRequest  # type: ignore[import-untyped]

LAYER: int = int(_LAYER)

BOOL_TRUE = 0x997275B5
BOOL_FALSE = 0xBC799737
VECTOR = 0x1CB5C415


class TLDecodeError(Exception):
    """A body could not be decoded; ``rpc_name`` is the Telegram error name to answer with."""

    def __init__(self, rpc_name: str, detail: str) -> None:
        super().__init__(f"{rpc_name}: {detail}")
        self.rpc_name = rpc_name


def parse_object(body: bytes) -> Any:
    """Parse one boxed TL object (type or function) with Telethon's schema.

    Raises TLDecodeError with INPUT_CONSTRUCTOR_INVALID for an unknown constructor and
    INPUT_FETCH_ERROR for truncated or malformed data.
    """
    if len(body) < 4:
        raise TLDecodeError("INPUT_FETCH_ERROR", "body shorter than a constructor id")
    reader = BinaryReader(body)
    try:
        obj = reader.tgread_object()
    except Exception as exc:  # Telethon raises TypeNotFoundError, struct.error, ...
        if type(exc).__name__ == "TypeNotFoundError":
            cid = struct.unpack_from("<I", body)[0]
            raise TLDecodeError("INPUT_CONSTRUCTOR_INVALID", f"{cid:#010x}") from exc
        raise TLDecodeError("INPUT_FETCH_ERROR", type(exc).__name__) from exc
    finally:
        reader.close()
    return obj


def is_request(obj: object) -> bool:
    """True when ``obj`` is a TL function (a method call), not a plain type."""
    return isinstance(obj, TLRequest)


def is_tl_object(obj: object) -> bool:
    """True when ``obj`` is any Telethon TL object."""
    return isinstance(obj, TLObject)


def serialize(value: object) -> bytes:
    """Serialize a TL result: a Telethon object, a bool, or a list of objects (a Vector)."""
    if value is True:
        return struct.pack("<I", BOOL_TRUE)
    if value is False:
        return struct.pack("<I", BOOL_FALSE)
    if isinstance(value, list):
        return struct.pack("<Ii", VECTOR, len(value)) + b"".join(serialize(v) for v in value)
    if isinstance(value, bytes):
        return value
    if isinstance(value, TLObject):
        data: bytes = value._bytes()
        return data
    raise TypeError(f"cannot serialize {type(value).__name__}")


def serialize_long_vector(values: list[int]) -> bytes:
    """Serialize a ``Vector<long>`` result."""
    return struct.pack("<Ii", VECTOR, len(values)) + b"".join(struct.pack("<q", v) for v in values)


def tl_bytes(data: bytes) -> bytes:
    """Serialize a TL ``bytes``/``string`` field."""
    out: bytes = TLObject.serialize_bytes(data)
    return out


def read_bytes_field(data: bytes, offset: int) -> tuple[bytes, int]:
    """Read a TL ``bytes`` field at ``offset``; returns (value, new offset)."""
    reader = BinaryReader(data[offset:])
    try:
        value: bytes = reader.tgread_bytes()
        return value, offset + int(reader.tell_position())
    except Exception as exc:
        raise TLDecodeError("INPUT_FETCH_ERROR", "bad bytes field") from exc
    finally:
        reader.close()


def constructor_name(obj: object) -> str:
    """The TL name of a parsed object, for logs (never its contents)."""
    return type(obj).__name__
