"""SIP message parsing, validation and serialization (RFC 3261 §7, §8.2, §20, §25).

Sans-I/O: functions take bytes and return message objects; nothing reads a clock or a socket.
Every malformed input raises :class:`SipParseError`, never another exception type.

Header values are kept as a list of ``(canonical name, raw value)`` pairs (folding removed,
compact forms expanded); typed views (:attr:`_Message.via`, :attr:`_Message.cseq`, ...) are
parsed on first access and cached. :func:`parse_message` validates what a UAS must check
before acting on a message (RFC 4475 §3.1.2, §3.3): Request-URI, single-valued headers,
Via, From, To, Contact, CSeq and its method, scalar ranges, Content-Length.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, overload

import msgspec

from tgsip.sip.headers import (
    CSeq,
    HeaderError,
    MediaType,
    NameAddr,
    Via,
    parse_contacts,
    parse_cseq,
    parse_delta_seconds,
    parse_max_forwards,
    parse_media_type,
    parse_name_addr,
    parse_via,
    split_list,
)
from tgsip.sip.uri import Uri, UriError, parse_uri

__all__ = [
    "COMPACT_FORMS",
    "Request",
    "Response",
    "SipParseError",
    "canonical_name",
    "check_request",
    "find_message_end",
    "make_response",
    "new_branch",
    "new_request",
    "new_tag",
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
_KNOWN = (
    *COMPACT_FORMS.values(),
    "Accept",
    "Accept-Encoding",
    "Accept-Language",
    "Alert-Info",
    "Allow",
    "Authentication-Info",
    "Authorization",
    "CSeq",
    "Call-Info",
    "Content-Disposition",
    "Content-Language",
    "Date",
    "Error-Info",
    "Expires",
    "In-Reply-To",
    "MIME-Version",
    "Max-Forwards",
    "Min-Expires",
    "Min-SE",
    "Organization",
    "P-Asserted-Identity",
    "P-Preferred-Identity",
    "Path",
    "Priority",
    "Privacy",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "Proxy-Require",
    "RAck",
    "RSeq",
    "Reason",
    "Record-Route",
    "Replaces",
    "Reply-To",
    "Require",
    "Retry-After",
    "Route",
    "Server",
    "Subscription-State",
    "Timestamp",
    "Unsupported",
    "User-Agent",
    "WWW-Authenticate",
    "Warning",
)
_CANONICAL: dict[str, str] = {n.lower(): n for n in _KNOWN}
_CANONICAL.update(COMPACT_FORMS)
_KNOWN_SET = frozenset(_KNOWN)
# Headers that may appear at most once (RFC 3261 §7.3.1, RFC 4475 §3.3.8, §3.3.9).
_SINGLE = frozenset(
    ("Call-ID", "CSeq", "From", "To", "Max-Forwards", "Content-Length", "Content-Type", "Expires")
)
_REQUIRED = ("Via", "From", "To", "Call-ID", "CSeq")
_REQUIRED_SET = frozenset(_REQUIRED)
_TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+\Z")
_FOLD = re.compile(r"\r?\n[ \t]+")
_STATUS = re.compile(r"[1-6]\d\d\Z")
_CLEN = re.compile(rb"(?im)^(?:content-length|l)[ \t]*:[ \t]*(\S*)[ \t]*\r?$")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*\Z")
_SUPPORTED_SCHEMES = frozenset(("sip", "sips", "tel"))
_name_cache: dict[str, str] = {}


_T = TypeVar("_T")


class cached_property(Generic[_T]):
    """A lock-free cached property: the first access stores the value in the instance dict.

    (functools.cached_property takes a lock on every first access in Python 3.11.)
    """

    def __init__(self, func: Callable[[Any], _T]) -> None:
        self.func = func
        self.name = func.__name__
        self.__doc__ = func.__doc__

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> cached_property[_T]: ...
    @overload
    def __get__(self, obj: object, owner: type[Any]) -> _T: ...
    def __get__(self, obj: object | None, owner: type[Any]) -> _T | cached_property[_T]:
        if obj is None:
            return self
        value = self.func(obj)
        obj.__dict__[self.name] = value
        return value


class SipParseError(Exception):
    """A message could not be parsed or fails validation.

    ``status`` is the response a UAS should send (400, 416, 505, ...), or ``None`` to drop the
    message silently (any malformed response, RFC 4475 §3.1.2.5, §3.1.2.19); ``reason`` is
    the reason phrase to use.
    """

    def __init__(self, reason: str, status: int | None = 400) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def canonical_name(name: str) -> str:
    """Expand a compact form and normalise case for well-known header names.

    Unknown names are returned unchanged (they compare case-insensitively in lookups).
    """
    return _CANONICAL.get(name.lower(), name)


def _header_name(raw: str) -> str:
    """Canonical name for a raw header name from the wire, validating the token syntax."""
    name = _name_cache.get(raw)
    if name is not None:
        return name
    stripped = raw.rstrip(" \t")
    if not _TOKEN.match(stripped):
        raise SipParseError("Malformed header line")
    name = canonical_name(stripped)
    if len(_name_cache) < 4096:
        _name_cache[raw] = name
    return name


def _hdr_error(exc: HeaderError | UriError, name: str) -> SipParseError:
    return SipParseError(f"Bad {name} header: {exc}")


@dataclass(eq=True)
class _Message:
    """Fields and header access shared by requests and responses.

    Typed properties parse on first access and are cached: build a new message rather than
    editing ``headers`` after reading them. Names in ``headers`` are canonical.
    """

    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def get(self, name: str) -> str | None:
        """First value of header ``name`` (compact forms and any case accepted), or None.

        Known headers are looked up in an index built on first use; :meth:`add` keeps it
        current (edit ``headers`` directly only before the first lookup).
        """
        want = _CANONICAL.get(name.lower(), name)
        if want in _KNOWN_SET:
            index: dict[str, str] | None = self.__dict__.get("_index")
            if index is None:
                index = dict(reversed(self.headers))
                self.__dict__["_index"] = index
            return index.get(want)
        if want not in _KNOWN_SET:
            low = want.lower()
            for n, v in self.headers:
                if n.lower() == low:
                    return v
        return None

    def get_all(self, name: str) -> list[str]:
        """All values of header ``name`` in order (one entry per header line)."""
        want = canonical_name(name)
        if want in _KNOWN_SET:
            return [v for n, v in self.headers if n == want]
        low = want.lower()
        return [v for n, v in self.headers if n.lower() == low]

    def add(self, name: str, value: str) -> None:
        """Append a header (name canonicalised)."""
        self.headers.append((canonical_name(name), value))
        self.__dict__.pop("_index", None)

    def _list(self, name: str) -> list[str]:
        out: list[str] = []
        for v in self.get_all(name):
            out += split_list(v)
        return out

    def _required(self, name: str) -> str:
        v = self.get(name)
        if v is None:
            raise SipParseError(f"Missing {name}")
        return v

    @cached_property
    def via(self) -> list[Via]:
        """All Via values, top first (RFC 3261 §20.42)."""
        try:
            out: list[Via] = []
            for v in self.get_all("Via"):
                out += parse_via(v)
        except HeaderError as exc:
            raise _hdr_error(exc, "Via") from None
        if not out:
            raise SipParseError("Missing Via")
        return out

    @property
    def top_via(self) -> Via:
        """The topmost Via."""
        return self.via[0]

    @cached_property
    def from_(self) -> NameAddr:
        """The From header (RFC 3261 §20.20)."""
        try:
            return parse_name_addr(self._required("From"))
        except HeaderError as exc:
            raise _hdr_error(exc, "From") from None

    @cached_property
    def to(self) -> NameAddr:
        """The To header (RFC 3261 §20.39)."""
        try:
            return parse_name_addr(self._required("To"))
        except HeaderError as exc:
            raise _hdr_error(exc, "To") from None

    @property
    def call_id(self) -> str:
        """The Call-ID value."""
        return self._required("Call-ID")

    @cached_property
    def cseq(self) -> CSeq:
        """The CSeq header (RFC 3261 §20.16)."""
        try:
            return parse_cseq(self._required("CSeq"))
        except HeaderError as exc:
            raise _hdr_error(exc, "CSeq") from None

    @cached_property
    def contacts(self) -> list[NameAddr] | None:
        """Contact values (empty when absent), or None for ``Contact: *``."""
        values = self.get_all("Contact")
        try:
            if len(values) == 1:
                return parse_contacts(values[0])
            out: list[NameAddr] = []
            for v in values:
                got = parse_contacts(v)
                if got is None:
                    raise HeaderError("'*' mixed with other contacts")
                out += got
            return out
        except HeaderError as exc:
            raise _hdr_error(exc, "Contact") from None

    def _name_addrs(self, name: str) -> list[NameAddr]:
        try:
            return [parse_name_addr(v) for v in self._list(name)]
        except HeaderError as exc:
            raise _hdr_error(exc, name) from None

    @cached_property
    def routes(self) -> list[NameAddr]:
        """Route values in order (RFC 3261 §20.34)."""
        return self._name_addrs("Route")

    @cached_property
    def record_routes(self) -> list[NameAddr]:
        """Record-Route values in order (RFC 3261 §20.30)."""
        return self._name_addrs("Record-Route")

    @cached_property
    def max_forwards(self) -> int | None:
        """Max-Forwards (0..255) or None when absent."""
        v = self.get("Max-Forwards")
        try:
            return None if v is None else parse_max_forwards(v)
        except HeaderError as exc:
            raise _hdr_error(exc, "Max-Forwards") from None

    @cached_property
    def expires(self) -> int | None:
        """Expires (delta-seconds) or None when absent."""
        v = self.get("Expires")
        try:
            return None if v is None else parse_delta_seconds(v)
        except HeaderError as exc:
            raise _hdr_error(exc, "Expires") from None

    @cached_property
    def content_type(self) -> MediaType | None:
        """Content-Type or None when absent."""
        v = self.get("Content-Type")
        try:
            return None if v is None else parse_media_type(v)
        except HeaderError as exc:
            raise _hdr_error(exc, "Content-Type") from None

    def header_list(self, name: str) -> list[str]:
        """All comma-separated elements of header ``name`` (quotes and ``<>`` respected)."""
        try:
            return self._list(name)
        except HeaderError as exc:
            raise _hdr_error(exc, name) from None

    def _serialize(self, start: str) -> bytes:
        clen = str(len(self.body))
        lines = [start]
        seen_clen = False
        for n, v in self.headers:
            if n == "Content-Length":
                if seen_clen:
                    continue
                seen_clen = True
                v = clen
            lines.append(f"{n}: {v}")
        if not seen_clen:
            lines.append(f"Content-Length: {clen}")
        lines.append("\r\n")
        return "\r\n".join(lines).encode("utf-8", "surrogateescape") + self.body


@dataclass(eq=True)
class Request(_Message):
    """A SIP request (RFC 3261 §7.1). ``uri`` is the Request-URI text."""

    method: str = "OPTIONS"
    uri: str = ""

    @cached_property
    def request_uri(self) -> Uri:
        """The parsed Request-URI (400 if malformed, 416 for an unsupported scheme)."""
        try:
            uri = parse_uri(self.uri)
        except UriError as exc:
            raise SipParseError(f"Bad Request-URI: {exc.reason}") from None
        if uri.scheme not in _SUPPORTED_SCHEMES:
            raise SipParseError("Unsupported URI Scheme", 416)
        return uri

    def to_bytes(self) -> bytes:
        """Serialize with a recomputed Content-Length."""
        return self._serialize(f"{self.method} {self.uri} SIP/2.0")


@dataclass(eq=True)
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
    streams) gives the body size. Leading CRLFs (keep-alives, RFC 5626 §3.5.1) count as part
    of the message. Raises :class:`SipParseError` when Content-Length is missing, repeated or
    malformed.
    """
    start = len(buf) - len(buf.lstrip(b"\r\n"))
    end = buf.find(b"\r\n\r\n", start)
    if end < 0:
        return None
    found = _CLEN.findall(buf, start, end + 2)
    if not found:
        raise SipParseError("Missing Content-Length on stream", None)
    if len(found) > 1 or not found[0].isdigit() or len(found[0]) > 9:
        raise SipParseError("Bad Content-Length on stream", None)
    total = end + 4 + int(found[0])
    return total if len(buf) >= total else None


def parse_message(data: bytes, *, strict: bool = True) -> Request | Response:
    """Parse and validate one datagram or framed message (RFC 3261 §7).

    Always checked: framing, start line, header-name syntax, single-valued headers, required
    headers, Content-Length, CSeq (range, and method = request method) and the Request-URI
    scheme (416). With ``strict`` (the default; what a UAS uses before acting) every typed
    header a UA relies on is parsed too (Request-URI, Via, From, To, Contact, Max-Forwards,
    Expires, Date), so RFC 4475's invalid messages are rejected here; with ``strict=False``
    those are parsed lazily on access (and raise :class:`SipParseError` then).

    A datagram whose header block lacks the terminating empty line is accepted (the datagram
    boundary ends it; RFC 5118's messages are published that way). Raises
    :class:`SipParseError` with the status a UAS should answer (``None`` = drop).
    """
    data = data.lstrip(b"\r\n")
    sep = data.find(b"\r\n\r\n")
    if sep >= 0:
        head_b, body = data[:sep], data[sep + 4 :]
    else:
        sep = data.find(b"\n\n")
        if sep >= 0:
            head_b, body = data[:sep], data[sep + 2 :]
        else:
            head_b, body = data.rstrip(b"\r\n"), b""
    try:
        head = head_b.decode("utf-8")
    except UnicodeDecodeError:
        drop = data.startswith(b"SIP/")
        raise SipParseError("Invalid UTF-8 in headers", None if drop else 400) from None
    if "\n " in head or "\n\t" in head:
        head = _FOLD.sub(" ", head)
    nl = head.find("\n")
    start = head if nl < 0 else head[:nl]
    if start.endswith("\r"):
        start = start[:-1]
    is_response = start.startswith("SIP/")
    try:
        msg = _parse_start(start, is_response)
        if nl >= 0:
            rest = head[nl + 1 :]
            crlf = rest.count("\r\n")
            if crlf and crlf != rest.count("\n"):
                rest = rest.replace("\r\n", "\n")
                crlf = 0
            parts = [ln.partition(":") for ln in rest.split("\r\n" if crlf else "\n")]
        else:
            parts = []
        cache = _name_cache
        headers = [(cache.get(n) or _header_name(n), v.strip(" \t")) for n, c, v in parts if c]
        if len(headers) != len(parts):
            raise SipParseError("Malformed header line")
        msg.headers = headers
        names = [h[0] for h in headers]
        if len(set(names)) != len(names):
            for single in _SINGLE:
                if names.count(single) > 1:
                    raise SipParseError(f"Multiple {single} headers")
        if not _REQUIRED_SET.issubset(names):
            for req in _REQUIRED:
                if req not in names:
                    raise SipParseError(f"Missing {req}")
        if "Content-Length" in names:
            clen = headers[names.index("Content-Length")][1]
            if not clen.isdigit() or not clen.isascii():
                raise SipParseError("Bad Content-Length")
            n = int(clen)
            if n > len(body):
                raise SipParseError("Content-Length larger than body")
            body = body[:n]
        msg.body = body
        _validate(msg, strict)
    except SipParseError as exc:
        if is_response:
            exc.status = None
        raise
    return msg


def _parse_start(start: str, is_response: bool) -> Request | Response:
    if is_response:
        parts = start.split(" ", 2)
        if parts[0] != "SIP/2.0":
            raise SipParseError("Version Not Supported", None)
        if len(parts) < 2 or not _STATUS.match(parts[1]):
            raise SipParseError("Bad status line", None)
        return Response(status=int(parts[1]), reason=parts[2] if len(parts) > 2 else "")
    parts = start.split(" ")
    if len(parts) != 3 or not _TOKEN.match(parts[0]) or not parts[1]:
        raise SipParseError("Bad Request-Line")
    if parts[2] != "SIP/2.0":
        if parts[2].startswith("SIP/"):
            raise SipParseError("Version Not Supported", 505)
        raise SipParseError("Bad Request-Line")
    return Request(method=parts[0], uri=parts[1])


def _validate(msg: Request | Response, strict: bool) -> None:
    """Checks a UAS must make before acting (RFC 3261 §8.2, RFC 4475 §3.1.2, §3.3)."""
    cseq = msg.cseq
    if isinstance(msg, Request):
        if cseq.method != msg.method:
            raise SipParseError("CSeq method does not match the request method")
        scheme = msg.uri.partition(":")[0].lower()
        if scheme not in _SUPPORTED_SCHEMES and _SCHEME.match(scheme):
            raise SipParseError("Unsupported URI Scheme", 416)  # RFC 4475 §3.3.2, §3.3.3
        if not strict:
            return
        if msg.request_uri.headers:
            # RFC 3261 §19.1.1: headers are not allowed in a Request-URI (RFC 4475 §3.1.2.11).
            raise SipParseError("Headers in Request-URI")
        _ = msg.max_forwards, msg.expires
    elif not strict:
        return
    date = msg.get("Date")
    if date is not None and not date.endswith(" GMT"):
        raise SipParseError("Date must be in GMT")  # RFC 3261 §20.17, RFC 4475 §3.1.2.12
    _ = msg.via, msg.from_, msg.to, msg.contacts  # Contact expires/q checked while parsing


def new_branch() -> str:
    """A fresh RFC 3261 branch (magic cookie + 64 random bits)."""
    return "z9hG4bK" + secrets.token_hex(8)


def new_tag() -> str:
    """A fresh From/To tag (64 random bits, RFC 3261 §19.3)."""
    return secrets.token_hex(8)


def _as_name_addr(value: NameAddr | Uri | str) -> NameAddr:
    if isinstance(value, NameAddr):
        return value
    if isinstance(value, Uri):
        return NameAddr(value)
    return parse_name_addr(value)


def new_request(
    method: str,
    uri: Uri | str,
    from_: NameAddr | Uri | str,
    to: NameAddr | Uri | str,
    call_id: str,
    cseq: int,
    via_host: str,
    *,
    via_port: int | None = None,
    transport: str = "UDP",
    branch: str | None = None,
    rport: bool = True,
    from_tag: str | None = None,
    contact: NameAddr | Uri | str | None = None,
    routes: Sequence[NameAddr | Uri | str] = (),
    max_forwards: int = 70,
    body: bytes = b"",
    content_type: str | None = None,
    extra_headers: Iterable[tuple[str, str]] = (),
) -> Request:
    """Build a request per RFC 3261 §8.1.1.

    A From tag is generated when ``from_`` has none and ``from_tag`` is not given; a branch is
    generated unless given; ``rport`` adds the RFC 3581 flag. Headers of ``uri``
    (``?...``) are dropped from the Request-URI (RFC 3261 §19.1.5). ``via_host`` may be an IPv6
    address (brackets added).
    """
    if not _TOKEN.match(method):
        raise ValueError("method must be a token")
    if not 0 < cseq <= 2**31 - 1:
        raise ValueError("cseq out of range")
    req_uri = uri if isinstance(uri, Uri) else parse_uri(uri)
    if req_uri.headers:  # RFC 3261 §19.1.5: not part of the Request-URI
        req_uri = msgspec.structs.replace(req_uri, headers=())
    frm = _as_name_addr(from_)
    if frm.tag is None or from_tag is not None:
        frm = frm.with_tag(from_tag or new_tag())
    host = f"[{via_host}]" if ":" in via_host and not via_host.startswith("[") else via_host
    params: list[tuple[str, str | None]] = [("branch", branch or new_branch())]
    if rport:
        params.append(("rport", None))
    via = Via(transport.upper(), host, via_port, tuple(params))
    req = Request(method=method, uri=str(req_uri))
    req.headers.append(("Via", str(via)))
    req.headers.append(("Max-Forwards", str(max_forwards)))
    for r in routes:
        req.headers.append(("Route", str(_as_name_addr(r))))
    req.headers.append(("From", str(frm)))
    req.headers.append(("To", str(_as_name_addr(to))))
    req.headers.append(("Call-ID", call_id))
    req.headers.append(("CSeq", f"{cseq} {method}"))
    if contact is not None:
        req.headers.append(("Contact", str(_as_name_addr(contact))))
    for name, value in extra_headers:
        req.add(name, value)
    if body:
        req.headers.append(("Content-Type", content_type or "application/sdp"))
    req.body = body
    return req


def make_response(
    request: Request, status: int, reason: str, to_tag: str | None = None
) -> Response:
    """Build a response per RFC 3261 §8.2.6.

    Copies Via, From, To (adding ``to_tag`` if To has none), Call-ID, CSeq, and for
    100-199/2xx to dialog-creating requests nothing else (Record-Route copying is the dialog
    layer's job).
    """
    resp = Response(status=status, reason=reason)
    for name, value in request.headers:
        if name in ("Via", "From", "Call-ID", "CSeq"):
            resp.headers.append((name, value))
        elif name == "To":
            if to_tag and status != 100:
                try:
                    has_tag = request.to.tag is not None
                except SipParseError:
                    has_tag = ";tag=" in value.lower()
                if not has_tag:
                    value = f"{value};tag={to_tag}"
            resp.headers.append((name, value))
    return resp


def check_request(
    request: Request,
    *,
    supported: Collection[str] = (),
    accepted_types: Collection[str] = ("application/sdp",),
    response_types: Collection[str] = ("application/sdp",),
    to_tag: str | None = None,
) -> Response | None:
    """UAS capability checks of RFC 3261 §8.2.2.3 and §8.2.3; None when the request passes.

    * Require with an option tag not in ``supported`` -> 420 with Unsupported (ACK and
      CANCEL are exempt; Proxy-Require is for proxies and ignored) — RFC 4475 §3.3.5.
    * A body whose Content-Type is not in ``accepted_types`` -> 415 with Accept
      — RFC 4475 §3.3.6.
    * An Accept header (INVITE/OPTIONS) that admits none of ``response_types`` -> 406
      with Accept — RFC 4475 §3.3.15.
    """
    if request.method not in ("ACK", "CANCEL"):
        have = {t.lower() for t in supported}
        missing = [t for t in request.header_list("Require") if t.lower() not in have]
        if missing:
            resp = make_response(request, 420, "Bad Extension", to_tag)
            resp.add("Unsupported", ", ".join(missing))
            return resp
    if request.body:
        ct = request.content_type
        accepted = {t.lower() for t in accepted_types}
        if ct is None or ct.mime not in accepted:
            resp = make_response(request, 415, "Unsupported Media Type", to_tag)
            resp.add("Accept", ", ".join(accepted_types))
            return resp
    accept = request.header_list("Accept") if request.get("Accept") is not None else None
    if accept is not None and request.method in ("INVITE", "OPTIONS"):
        ok = {t.lower() for t in response_types}
        for item in accept:
            mime = item.partition(";")[0].strip().lower()
            if mime == "*/*" or mime in ok:
                return None
            if mime.endswith("/*") and any(r.startswith(mime[:-1]) for r in ok):
                return None
        resp = make_response(request, 406, "Not Acceptable", to_tag)
        resp.add("Accept", ", ".join(response_types))
        return resp
    return None
