"""SIP, SIPS and tel URIs (RFC 3261 §19.1, RFC 3966) and other absolute URIs.

Sans-I/O value objects. Components are kept in their escaped (wire) form so that
``str(parse_uri(s)) == s`` for every well-formed ``s``; :meth:`Uri.equivalent` compares per
RFC 3261 §19.1.4 after unescaping. Malformed input raises :class:`UriError`.
"""

from __future__ import annotations

import ipaddress
import re

import msgspec

__all__ = ["Uri", "UriError", "check_host", "escape", "parse_uri", "unescape"]


class UriError(ValueError):
    """A URI is malformed. ``unsupported`` is true when only the scheme is unknown."""

    def __init__(self, reason: str, *, unsupported: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.unsupported = unsupported


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*\Z")
_ESC = r"%[0-9A-Fa-f]{2}"
# RFC 3261 §25.1: user = 1*( unreserved / escaped / user-unreserved )
_USER = re.compile(rf"(?:[A-Za-z0-9\-_.!~*'()&=+$,;?/]|{_ESC})+\Z")
_PASSWORD = re.compile(rf"(?:[A-Za-z0-9\-_.!~*'()&=+$,]|{_ESC})*\Z")
_HOSTNAME = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?\.)*[A-Za-z][A-Za-z0-9\-]*\.?\Z"
)
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|[01]?[0-9]?[0-9])"
_IPV4_OK = re.compile(rf"(?:{_OCTET}\.){{3}}{_OCTET}\Z")
_IPV4 = re.compile(r"(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\Z")
_PARAMCHAR = re.compile(rf"(?:[A-Za-z0-9\-_.!~*'()\[\]/:&+$]|{_ESC})+\Z")
_HNV = re.compile(rf"(?:[A-Za-z0-9\-_.!~*'()\[\]/?:+$]|{_ESC})*\Z")
_TEL = re.compile(r"\+?[0-9A-Fa-f*#\-.()pPwW]+\Z")
_OPAQUE = re.compile(r"[^\s<>\"]+\Z")
_HEX = "0123456789ABCDEFabcdef"

# Parameters that must match when present in either URI (RFC 3261 §19.1.4).
_STRICT_PARAMS = ("user", "ttl", "method", "maddr", "transport")


def unescape(text: str) -> str:
    """Decode %HH escapes (RFC 3261 §19.1.2) into characters (UTF-8, lossless for bytes)."""
    if "%" not in text:
        return text
    out = bytearray()
    i = 0
    raw = text.encode("utf-8")
    while i < len(raw):
        c = raw[i]
        if c == 0x25 and i + 2 < len(raw) and chr(raw[i + 1]) in _HEX and chr(raw[i + 2]) in _HEX:
            out.append(int(raw[i + 1 : i + 3], 16))
            i += 3
        else:
            out.append(c)
            i += 1
    return out.decode("utf-8", "surrogateescape")


def escape(text: str, safe: str = "-_.!~*'()&=+$,;?/") -> str:
    """Escape every character outside unreserved and ``safe`` (default: user-unreserved)."""
    out = []
    for ch in text:
        if ch.isascii() and (ch.isalnum() or ch in safe):
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8", "surrogateescape"))
    return "".join(out)


def check_host(host: str) -> str:
    """Validate a host (hostname, IPv4address or IPv6reference); returns it unchanged."""
    if host.startswith("["):
        if not host.endswith("]"):
            raise UriError("Unterminated IPv6 reference")
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise UriError("Bad IPv6 reference") from None
        return host
    if _IPV4_OK.match(host) or _HOSTNAME.match(host):
        return host
    raise UriError("Bad IPv4 address" if _IPV4.match(host) else "Bad host")


def _split_hostport(text: str) -> tuple[str, int | None]:
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise UriError("Unterminated IPv6 reference")
        host, rest = text[: end + 1], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise UriError("Bad host:port")
        portstr = rest[1:] if rest else None
    else:
        host, colon, portstr_ = text.partition(":")
        portstr = portstr_ if colon else None
    port = None
    if portstr is not None:
        if not portstr.isdigit() or not portstr.isascii() or len(portstr) > 5:
            raise UriError("Bad port")
        port = int(portstr)
        if port > 65535:
            raise UriError("Port out of range")
    return check_host(host), port


def _parse_params(text: str) -> tuple[tuple[str, str | None], ...]:
    out: list[tuple[str, str | None]] = []
    for item in text.split(";"):
        name, eq, value = item.partition("=")
        if not _PARAMCHAR.match(name) or (eq and not _PARAMCHAR.match(value)):
            raise UriError("Bad URI parameter")
        out.append((name, value if eq else None))
    return tuple(out)


def _parse_headers(text: str) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = []
    for item in text.split("&"):
        name, eq, value = item.partition("=")
        if not eq or not name or not _HNV.match(name) or not _HNV.match(value):
            raise UriError("Bad URI header")
        out.append((name, value))
    return tuple(out)


class Uri(msgspec.Struct, frozen=True, gc=False):
    """A parsed URI. ``scheme`` is lower-case; other fields keep their escaped wire form.

    For ``sip``/``sips``: ``user``, ``password``, ``host`` (IPv6 kept in brackets), ``port``,
    ``params`` (uri-parameters, value ``None`` for a flag) and ``headers``. For ``tel``:
    ``user`` holds the number and ``params`` its parameters. Any other scheme keeps the text
    after ``scheme:`` in ``opaque``.
    """

    scheme: str
    user: str | None = None
    password: str | None = None
    host: str = ""
    port: int | None = None
    params: tuple[tuple[str, str | None], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    opaque: str | None = None

    def __str__(self) -> str:
        if self.opaque is not None:
            return f"{self.scheme}:{self.opaque}"
        parts = [self.scheme, ":"]
        if self.scheme == "tel":
            parts.append(self.user or "")
        else:
            if self.user is not None:
                parts.append(self.user)
                if self.password is not None:
                    parts += (":", self.password)
                parts.append("@")
            parts.append(self.host)
            if self.port is not None:
                parts += (":", str(self.port))
        for name, value in self.params:
            parts += (";", name) if value is None else (";", name, "=", value)
        if self.headers:
            parts += ("?", "&".join(f"{n}={v}" for n, v in self.headers))
        return "".join(parts)

    @property
    def is_sip(self) -> bool:
        """True for ``sip:`` and ``sips:`` URIs."""
        return self.scheme in ("sip", "sips")

    @property
    def host_address(self) -> str:
        """The host without IPv6 brackets, lower-cased."""
        h = self.host[1:-1] if self.host.startswith("[") else self.host
        return h.lower()

    def param(self, name: str) -> str | None:
        """Value of uri-parameter ``name`` (case-insensitive), ``""`` for a flag, else None."""
        low = name.lower()
        for n, v in self.params:
            if n.lower() == low:
                return "" if v is None else v
        return None

    def with_params(self, **params: str | None) -> Uri:
        """A copy with the given parameters set (value None = flag), replacing same names."""
        low = {k.lower() for k in params}
        kept = tuple((n, v) for n, v in self.params if n.lower() not in low)
        return Uri(
            self.scheme,
            self.user,
            self.password,
            self.host,
            self.port,
            kept + tuple(params.items()),
            self.headers,
            self.opaque,
        )

    def equivalent(self, other: Uri) -> bool:
        """URI comparison per RFC 3261 §19.1.4 (sip/sips), RFC 3966 §4 basics for tel.

        User and password compare case-sensitively after unescaping; host case-insensitively
        (IPv6 by address value); a missing port differs from an explicit default port;
        ``user``/``ttl``/``method``/``maddr``/``transport`` must match when present in either;
        other parameters only when present in both; headers must match as sets.
        """
        if self.scheme != other.scheme:
            return False
        if self.opaque is not None or other.opaque is not None:
            return self.opaque == other.opaque
        if self.scheme == "tel":
            a = re.sub(r"[\-.()]", "", self.user or "")
            b = re.sub(r"[\-.()]", "", other.user or "")
            return a.lower() == b.lower() and _params_equal(self, other)
        if _unesc(self.user) != _unesc(other.user):
            return False
        if _unesc(self.password) != _unesc(other.password):
            return False
        if not _hosts_equal(self.host, other.host) or self.port != other.port:
            return False
        if not _params_equal(self, other):
            return False
        ha = {(unescape(n).lower(), unescape(v)) for n, v in self.headers}
        hb = {(unescape(n).lower(), unescape(v)) for n, v in other.headers}
        return ha == hb


def _unesc(text: str | None) -> str | None:
    return None if text is None else unescape(text)


def _hosts_equal(a: str, b: str) -> bool:
    if a.startswith("[") and b.startswith("["):
        return ipaddress.IPv6Address(a[1:-1]) == ipaddress.IPv6Address(b[1:-1])
    return a.lower() == b.lower()


def _params_equal(a: Uri, b: Uri) -> bool:
    pa = {unescape(n).lower(): unescape(v or "").lower() for n, v in a.params}
    pb = {unescape(n).lower(): unescape(v or "").lower() for n, v in b.params}
    for name in _STRICT_PARAMS:
        if (name in pa or name in pb) and pa.get(name) != pb.get(name):
            return False
    return all(pa[n] == pb[n] for n in pa.keys() & pb.keys())


def parse_uri(text: str) -> Uri:
    """Parse a URI. Raises :class:`UriError` (``unsupported`` set for unknown schemes only
    when the rest is syntactically an absolute URI)."""
    scheme, colon, rest = text.partition(":")
    if scheme == "sip" or scheme == "sips":
        return _parse_sip(scheme, rest)
    if not colon or not _SCHEME.match(scheme):
        raise UriError("Bad URI scheme")
    scheme = scheme.lower()
    if scheme in ("sip", "sips"):
        return _parse_sip(scheme, rest)
    if scheme == "tel":
        number, semi, ptext = rest.partition(";")
        if not _TEL.match(number):
            raise UriError("Bad telephone number")
        return Uri("tel", user=number, params=_parse_params(ptext) if semi else ())
    if not rest or not _OPAQUE.match(rest):
        raise UriError("Bad absolute URI")
    return Uri(scheme, opaque=rest)


# Escapes are checked separately (_BAD_ESC): a per-character alternation is slow in ``re``.
_SIP_FAST = re.compile(
    r"(?:(?P<user>[A-Za-z0-9\-_.!~*'()&=+$,;?/%]+)(?::(?P<pw>[A-Za-z0-9\-_.!~*'()&=+$,%]*))?@)?"
    r"(?P<host>[A-Za-z0-9\-.]+|\[[0-9A-Fa-f:.]+\])(?::(?P<port>[0-9]{1,5}))?"
    r"(?P<params>(?:;[A-Za-z0-9\-_.!~*'()\[\]/:&+$%]+(?:=[A-Za-z0-9\-_.!~*'()\[\]/:&+$%]+)?)*)"
    r"(?:\?(?P<headers>.*))?\Z",
    re.S,
)
_BAD_ESC = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _parse_sip(scheme: str, rest: str) -> Uri:
    m = _SIP_FAST.match(rest)
    if m is None:
        raise UriError("Bad SIP URI")
    if "%" in rest and _BAD_ESC.search(rest):
        raise UriError("Bad % escape")
    user, password, host, portstr, ptext, htext = m.group(
        "user", "pw", "host", "port", "params", "headers"
    )
    check_host(host)
    port = None
    if portstr is not None:
        port = int(portstr)
        if port > 65535:
            raise UriError("Port out of range")
    params = _parse_params(ptext[1:]) if ptext else ()
    headers = _parse_headers(htext) if htext is not None else ()
    return Uri(scheme, user, password, host, port, params, headers)
