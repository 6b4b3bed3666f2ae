"""The request policy hook of the user agent and the gateway's response codes.

:class:`tgsip.sip.ua.UserAgent` consults ``ua.request_policy`` (any object with the
:class:`RequestPolicy` methods) for every incoming request:

* :meth:`RequestPolicy.admit` first, before the transaction layer sees the request: False drops
  it silently (banned source, unknown source: ``sip.md`` §8.1 "no response to unknown IPs").
* :meth:`RequestPolicy.decide` for out-of-dialog requests other than ACK and CANCEL, once their
  server transaction exists: a :class:`Reply` is sent as the final response (401 challenge,
  403, 404 "No lines for call", the registrar's 200...); :class:`Accept` lets the UA go on
  handling the request for the line ``line_id``.

The constants name the responses of ``product.md`` §14 so that the call layer uses the exact
reason phrases.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from tgsip.sip.message import Request
from tgsip.sip.transaction import Peer

__all__ = [
    "AMOUNT_OF_FAIL_CALLS_EXCEEDED",
    "CALLBACK_RESTRICTED",
    "DISALLOWED_SETTINGS",
    "FORBIDDEN",
    "NO_LINES",
    "RPC_TIMEOUT",
    "SERVICE_UNAVAILABLE",
    "TOTAL_DURATION_EXCEEDED",
    "Accept",
    "Reply",
    "RequestPolicy",
    "overloaded",
    "too_many_requests",
]


@dataclass(frozen=True, slots=True)
class Reply:
    """A final response: status, reason phrase and extra headers."""

    status: int
    reason: str
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Accept:
    """The request belongs to line ``line_id`` (None: allowed, no particular line)."""

    line_id: int | None = None


class RequestPolicy(Protocol):
    """What the user agent asks about each incoming request (see the module docstring)."""

    def admit(self, request: Request, source: Peer) -> bool:
        """False: drop silently, before any transaction or response."""
        ...

    def decide(self, request: Request, source: Peer) -> Reply | Accept:
        """The verdict on a new out-of-dialog request (not ACK/CANCEL)."""
        ...


NO_LINES = Reply(404, "No lines for call")
"""No line of the gateway takes the call (``product.md`` §14)."""
FORBIDDEN = Reply(403, "Forbidden")
SERVICE_UNAVAILABLE = Reply(503, "Service Unavailable")
CALLBACK_RESTRICTED = Reply(380, "Callback is restricted")
DISALLOWED_SETTINGS = Reply(402, "SIP account has disallowed settings")
TOTAL_DURATION_EXCEEDED = Reply(402, "Total calls duration is exceeded")
AMOUNT_OF_FAIL_CALLS_EXCEEDED = Reply(402, "Amount of fail calls is exceeded")
RPC_TIMEOUT = Reply(408, "Timeout of waiting RPC result")


def overloaded(seconds: int) -> Reply:
    """``503 Service Unavailable`` with ``Retry-After`` (gateway overloaded, CPS cap)."""
    return Reply(503, "Service Unavailable", (("Retry-After", str(max(0, int(seconds)))),))


def too_many_requests(seconds: int) -> Reply:
    """``503 Too Many Requests: retry after X`` with ``Retry-After: X`` (Telegram FLOOD_WAIT)."""
    seconds = max(0, int(seconds))
    return Reply(503, f"Too Many Requests: retry after {seconds}", (("Retry-After", str(seconds)),))
