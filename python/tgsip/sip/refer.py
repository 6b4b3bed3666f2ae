"""Call transfer with REFER (RFC 3515), Referred-By (RFC 3892) and the implicit subscription.

Sans-I/O helpers used by :class:`tgsip.sip.call.SipCall`:

* the transferor sends REFER with ``Refer-To`` (and ``Referred-By``); the peer answers 202 and
  reports the progress of the referenced call in NOTIFYs (``Event: refer``,
  ``Content-Type: message/sipfrag``, a status line such as ``SIP/2.0 180 Ringing``,
  ``Subscription-State: active`` until a final status, then ``terminated;reason=noresource``);
* the transferee parses ``Refer-To`` (:func:`parse_refer_to`), answers 202, and builds the
  NOTIFY bodies with :func:`sipfrag` / :func:`subscription_state`.

REFER is accepted only inside an established dialog (sip.md §8.1: the target must pass the same
dial rules as any outbound call; that check belongs to the call layer, which receives the
``transfer_requested`` event and decides).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tgsip.sip.headers import HeaderError, NameAddr, parse_name_addr
from tgsip.sip.uri import UriError

__all__ = [
    "ReferError",
    "SipFrag",
    "parse_refer_to",
    "parse_sipfrag",
    "sipfrag",
    "subscription_state",
]

SIPFRAG = "message/sipfrag"
_STATUS_LINE = re.compile(r"SIP/2\.0 ([1-6]\d\d)(?: ([^\r\n]*))?\Z")


class ReferError(ValueError):
    """A REFER or NOTIFY that cannot be used; the message says why."""


@dataclass(frozen=True, slots=True)
class SipFrag:
    """The status line of a ``message/sipfrag`` NOTIFY body (RFC 3420, RFC 3515 §2.4.5)."""

    status: int
    reason: str

    @property
    def final(self) -> bool:
        """A final status ends the implicit subscription."""
        return self.status >= 200


def parse_refer_to(value: str | None) -> NameAddr:
    """The transfer target of a ``Refer-To`` header (RFC 3515 §2.1); one value exactly."""
    if value is None or not value.strip():
        raise ReferError("REFER without Refer-To")
    try:
        target = parse_name_addr(value.strip())
    except (HeaderError, UriError, ValueError) as exc:
        raise ReferError(f"bad Refer-To: {exc}") from None
    if target.uri.scheme not in ("sip", "sips", "tel"):
        raise ReferError(f"unsupported Refer-To scheme {target.uri.scheme!r}")
    return target


def sipfrag(status: int, reason: str) -> bytes:
    """A ``message/sipfrag`` body carrying only a status line."""
    if not 100 <= status <= 699:
        raise ValueError("status out of range")
    clean = reason.replace("\r", " ").replace("\n", " ")
    return f"SIP/2.0 {status} {clean}\r\n".encode()


def parse_sipfrag(body: bytes) -> SipFrag:
    """The status line of a NOTIFY's sipfrag body."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ReferError("sipfrag is not UTF-8") from None
    first = text.split("\n", 1)[0].rstrip("\r").strip()
    m = _STATUS_LINE.match(first)
    if m is None:
        raise ReferError(f"sipfrag without a status line: {first[:40]!r}")
    return SipFrag(int(m.group(1)), m.group(2) or "")


def subscription_state(final: bool, expires: int = 60) -> str:
    """The ``Subscription-State`` for a NOTIFY of the implicit refer subscription."""
    return "terminated;reason=noresource" if final else f"active;expires={expires}"
