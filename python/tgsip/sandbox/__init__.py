"""tgsip.sandbox: a local stand-in for Telegram that unmodified Telethon talks to.

See :class:`tgsip.sandbox.sandbox.Sandbox` for the scripting API and ``python -m
tgsip.sandbox --help`` for the standalone server.
"""

from tgsip.sandbox.calls import Call, CallEvent, CallState, DiscardReason
from tgsip.sandbox.cli import main
from tgsip.sandbox.client import point_client, trust_key
from tgsip.sandbox.sandbox import DEFAULT_API_HASH, DEFAULT_API_ID, Sandbox, ScriptedUser
from tgsip.sandbox.world import Button, Message, User, World, WorldError

__all__ = [
    "DEFAULT_API_HASH",
    "DEFAULT_API_ID",
    "Button",
    "Call",
    "CallEvent",
    "CallState",
    "DiscardReason",
    "Message",
    "Sandbox",
    "ScriptedUser",
    "User",
    "World",
    "WorldError",
    "main",
    "point_client",
    "trust_key",
]
