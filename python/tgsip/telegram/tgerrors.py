"""Telegram's error name (``PHONE_CODE_INVALID``, ``FLOOD_WAIT_X``...) of a Telethon exception.

Telethon raises one class per known error and keeps the name only in its class table; unknown
errors carry it in ``message``.
"""

from __future__ import annotations

from telethon import errors  # type: ignore[import-untyped]
from telethon.errors.rpcerrorlist import (  # type: ignore[import-untyped]
    rpc_errors_dict,
    rpc_errors_re,
)

__all__ = ["error_name"]

_NAMES: dict[type, str] = {cls: name for name, cls in rpc_errors_dict.items()}
_NAMES.update({cls: pattern.replace(r"(\d+)", "X") for pattern, cls in rpc_errors_re})


def error_name(exc: BaseException) -> str:
    """The Telegram error name of ``exc`` (its class name for non-RPC exceptions)."""
    name = _NAMES.get(type(exc))
    if name is not None:
        return name
    if isinstance(exc, errors.RPCError) and exc.message:
        return str(exc.message)
    return type(exc).__name__
