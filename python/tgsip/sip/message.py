"""SIP message parsing and serialization (RFC 3261 §7, §20, §25).

Sans-I/O: functions take bytes and return message objects; nothing reads a clock or a socket.
Every malformed input raises :class:`SipParseError`, never another exception type.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = [
    "COMPACT_FORMS",
    "Request",
    "Response",
    "SipParseError",
    "find_message_end",
    "make_response",
    "parse_message",
]

COMPACT_FORMS: dict[str, str] = {
    "i": "Call-ID",
    "m": "Contact",
    "f": "From",
    "t": "To",
    "v": "Via",
    "l": "Content-Length",
    "c": "Content-Type",
    "k": "Supported",
    "s": "Subject",
    "e": "Content-Encoding",
    "o": "Event",
    "u": "Allow-Events",
    "r": "Refer-To",
    "b": "Referred-By",
    "x": "Session-Expires",
    "y": "Identity",
}
_CANONICAL = {
    n.lower(): n
    for n in (*COMPACT_FORMS.values(), "CSeq", "Max-Forwards", "Route", "Record-Route", "Expires")
}
_TOKEN = re.compile(rb"^[A-Za-z0-9\-.!%*_+`'~]+$")
_FOLD = re.compile(rb"\r?\n[ \t]+")


class SipParseError(Exception):
    """A message could not be parsed.

    ``status`` is the response a UAS should send (e.g. 400, 505), or ``None`` to drop silently;
    ``reason`` is the reason phrase to use.
    """

    def __init__(self, reason: str, status: int | None = 400) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def canonical_name(name: str) -> str:
    """Expand a compact form and normalise case for well-known header names."""
    low = name.lower()
    if low in COMPACT_FORMS:
        return COMPACT_FORMS[low]
    return _CANONICAL.get(low, name)


@dataclass
class _Message:
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def get(self, name: str) -> str | None:
        """First value of header ``name`` (compact forms accepted), or ``None``."""
        want = canonical_name(name).lower()
        for n, v in self.headers:
            if n.lower() == want:
                return v
        return None

    def get_all(self, name: str) -> list[str]:
        """All values of header ``name`` in order."""
        want = canonical_name(name).lower()
        return [v for n, v in self.headers if n.lower() == want]

    def _serialize(self, start: str) -> bytes:
        clen = str(len(self.body))
        lines = [start]
        lines += [f"{n}: {clen if n == 'Content-Length' else v}" for n, v in self.headers]
        if self.get("Content-Length") is None:
            lines.append(f"Content-Length: {clen}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + self.body


@dataclass
class Request(_Message):
    """A SIP request (RFC 3261 §7.1)."""

    method: str = "OPTIONS"
    uri: str = ""

    def to_bytes(self) -> bytes:
        """Serialize with a recomputed Content-Length."""
        return self._serialize(f"{self.method} {self.uri} SIP/2.0")


@dataclass
class Response(_Message):
    """A SIP response (RFC 3261 §7.2)."""

    status: int = 200
    reason: str = "OK"

    def to_bytes(self) -> bytes:
        """Serialize with a recomputed Content-Length."""
        return self._serialize(f"SIP/2.0 {self.status} {self.reason}")


def find_message_end(buf: bytes) -> int | None:
    """Length of the first complete message in a stream buffer, or ``None`` if incomplete.

    Framing per RFC 3261 §18.3: headers end at the first blank line; Content-Length (required on
    streams) gives the body size. Leading CRLFs (keep-alives) count as part of the message.
    Raises :class:`SipParseError` when Content-Length is missing or malformed.
    """
    start = len(buf) - len(buf.lstrip(b"\r\n"))
    end = buf.find(b"\r\n\r\n", start)
    if end < 0:
        return None
    head = buf[start:end]
    m = re.search(rb"(?im)^(?:content-length|l)[ \t]*:[ \t]*(\d+)[ \t]*$", head)
    if m is None:
        raise SipParseError("Missing Content-Length on stream", None)
    total = end + 4 + int(m.group(1))
    return total if len(buf) >= total else None


def parse_message(data: bytes) -> Request | Response:
    """Parse one datagram/framed message (RFC 3261 §7). Raises :class:`SipParseError`."""
    data = data.lstrip(b"\r\n")
    sep = data.find(b"\r\n\r\n")
    seplen = 4
    if sep < 0:
        sep = data.find(b"\n\n")
        seplen = 2
    if sep < 0:
        raise SipParseError("Missing end of headers")
    head, body = data[:sep], data[sep + seplen :]
    lines = _FOLD.sub(b" ", head).split(b"\n")
    lines = [ln.rstrip(b"\r") for ln in lines]
    start = lines[0]
    msg: Request | Response
    try:
        if start.startswith(b"SIP/"):
            parts = start.split(b" ", 2)
            if parts[0] != b"SIP/2.0":
                raise SipParseError("Version Not Supported", None)
            if len(parts) < 2 or not re.fullmatch(rb"[1-6]\d\d", parts[1]):
                raise SipParseError("Bad status line", None)
            msg = Response(status=int(parts[1]), reason=parts[2].decode() if len(parts) > 2 else "")
        else:
            parts = start.split(b" ")
            if len(parts) != 3 or not _TOKEN.match(parts[0]):
                raise SipParseError("Bad Request-Line")
            if parts[2] != b"SIP/2.0":
                raise SipParseError("Version Not Supported", 505)
            msg = Request(method=parts[0].decode(), uri=parts[1].decode())
        for raw in lines[1:]:
            name, colon, value = raw.partition(b":")
            name = name.strip(b" \t")
            if not colon or not _TOKEN.match(name):
                raise SipParseError("Malformed header line")
            msg.headers.append((canonical_name(name.decode()), value.strip(b" \t").decode()))
    except UnicodeDecodeError as exc:
        raise SipParseError("Invalid UTF-8") from exc
    clen = msg.get("Content-Length")
    if clen is not None:
        if not clen.isdigit():
            raise SipParseError("Bad Content-Length")
        n = int(clen)
        if n > len(body):
            raise SipParseError("Content-Length larger than body")
        body = body[:n]
    msg.body = body
    for req in ("Via", "From", "To", "Call-ID", "CSeq"):
        if msg.get(req) is None:
            raise SipParseError(f"Missing {req}")
    return msg


def make_response(
    request: Request, status: int, reason: str, to_tag: str | None = None
) -> Response:
    """Build a response per RFC 3261 §8.2.6.

    Copies Via, From, To (adding ``to_tag`` if To has none), Call-ID and CSeq.
    """
    resp = Response(status=status, reason=reason)
    for name, value in request.headers:
        if name in ("Via", "From", "Call-ID", "CSeq"):
            resp.headers.append((name, value))
        elif name == "To":
            has_tag = ";tag=" in value.lower()
            resp.headers.append((name, value if has_tag or not to_tag else f"{value};tag={to_tag}"))
    return resp
