"""Typed SIP header values (RFC 3261 §20, §25.1): Via, name-addr, CSeq, media types, auth.

Every parser takes the header's raw value (already unfolded, outer whitespace stripped) and
raises :class:`HeaderError` on malformed input; nothing else escapes. Values are frozen
dataclasses with ``__str__`` giving the wire form.
"""

from __future__ import annotations

import re

import msgspec

from tgsip.sip.uri import Uri, UriError, check_host, parse_uri

__all__ = [
    "MAX_CSEQ",
    "MAX_DELTA_SECONDS",
    "AuthHeader",
    "CSeq",
    "HeaderError",
    "MediaType",
    "NameAddr",
    "Via",
    "format_auth",
    "parse_auth",
    "parse_contacts",
    "parse_cseq",
    "parse_delta_seconds",
    "parse_max_forwards",
    "parse_media_type",
    "parse_name_addr",
    "parse_params",
    "parse_via",
    "quote",
    "split_list",
]

MAX_CSEQ = 2**31 - 1  # RFC 3261 §8.1.1.5: the sequence number must be less than 2**31
MAX_DELTA_SECONDS = 2**32 - 1  # RFC 3261 §25.1 delta-seconds, RFC 4475 §3.1.2.4

_TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~")
_TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+\Z")
_WS = " \t"


_TOK = r"[A-Za-z0-9\-.!%*_+`'~]+"
_PARAMS_FAST = re.compile(
    rf"[ \t]*{_TOK}[ \t]*(?:=[ \t]*(?:{_TOK}|\[[0-9A-Fa-f:.]+\]|[0-9A-Fa-f:.]+)[ \t]*)?"
    rf"(?:;[ \t]*{_TOK}[ \t]*(?:=[ \t]*(?:{_TOK}|\[[0-9A-Fa-f:.]+\]|[0-9A-Fa-f:.]+)[ \t]*)?)*\Z"
)
# "display" <uri> ;params  |  token-words <uri> ;params  (the common, simple forms)
_NAME_ADDR_FAST = re.compile(
    rf'(?:"(?P<q>[^"\\]*)"[ \t]*|(?P<t>{_TOK}(?:[ \t]+{_TOK})*)[ \t]*)?'
    r"<(?P<uri>[^<>\s\"]+)>[ \t]*(?:;(?P<p>.*))?\Z",
    re.S,
)


class HeaderError(ValueError):
    """A header value is malformed."""


def _is_token(text: str) -> bool:
    return _TOKEN.match(text) is not None


def quote(text: str) -> str:
    """A quoted-string for ``text`` (RFC 3261 §25.1), escaping ``"`` and ``\\``."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _end_of_quoted(text: str, start: int) -> int:
    """Index just past the closing quote of the quoted-string opening at ``start``."""
    i = start + 1
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == '"':
            return i + 1
        i += 1
    raise HeaderError("Unterminated quoted string")


def split_list(value: str) -> list[str]:
    """Split a comma-separated header value, ignoring commas inside quotes and ``<...>``.

    Elements are stripped; an empty element is an error (RFC 3261 §7.3.1).
    """
    if "," not in value:
        v = value.strip(_WS)
        if not v:
            raise HeaderError("Empty header value")
        return [v]
    out: list[str] = []
    start = i = 0
    n = len(value)
    while i < n:
        c = value[i]
        if c == '"':
            i = _end_of_quoted(value, i)
            continue
        if c == "<":
            j = value.find(">", i)
            if j < 0:
                raise HeaderError("Unterminated <")
            i = j + 1
            continue
        if c == ",":
            out.append(value[start:i].strip(_WS))
            start = i + 1
        i += 1
    out.append(value[start:].strip(_WS))
    if any(not item for item in out):
        raise HeaderError("Empty list element")
    return out


def parse_params(text: str) -> tuple[tuple[str, str | None], ...]:
    """Parse ``;name[=value]`` generic-params (``text`` starts after the first ``;``).

    Values may be tokens, hosts (incl. ``[IPv6]``) or quoted strings (kept with quotes).
    """
    if '"' not in text:
        if _PARAMS_FAST.match(text) is None:
            raise HeaderError("Bad parameter")
        fast: list[tuple[str, str | None]] = []
        for item in text.split(";"):
            name, eq, value = item.partition("=")
            fast.append((name.strip(_WS), value.strip(_WS) if eq else None))
        return tuple(fast)
    out: list[tuple[str, str | None]] = []
    i = 0
    n = len(text)
    while True:
        j = i
        while j < n and text[j] not in "=;":
            if text[j] == '"':
                raise HeaderError("Quote in parameter name")
            j += 1
        name = text[i:j].strip(_WS)
        if not _is_token(name):
            raise HeaderError("Bad parameter name")
        if j < n and text[j] == "=":
            k = j + 1
            while k < n and text[k] in _WS:
                k += 1
            if k < n and text[k] == '"':
                e = _end_of_quoted(text, k)
                value = text[k:e]
                rest = text[e:].lstrip(_WS)
                if rest and not rest.startswith(";"):
                    raise HeaderError("Junk after quoted parameter")
                j = e + (len(text[e:]) - len(rest))
            else:
                e = text.find(";", k)
                e = n if e < 0 else e
                value = text[k:e].strip(_WS)
                if not value or not all(c in _TOKEN_CHARS or c in "[]:" for c in value):
                    raise HeaderError("Bad parameter value")
                j = e
            out.append((name, value))
        else:
            out.append((name, None))
        if j >= n:
            return tuple(out)
        i = j + 1


def _param(params: tuple[tuple[str, str | None], ...], name: str) -> str | None:
    low = name.lower()
    for n, v in params:
        if n.lower() == low:
            return "" if v is None else v
    return None


def _fmt_params(params: tuple[tuple[str, str | None], ...]) -> str:
    return "".join(f";{n}" if v is None else f";{n}={v}" for n, v in params)


def parse_delta_seconds(text: str) -> int:
    """delta-seconds (RFC 3261 §25.1) bounded by 2**32-1 (RFC 4475 §3.1.2.4)."""
    if not text.isdigit() or not text.isascii() or len(text) > 10:
        raise HeaderError("Bad delta-seconds")
    value = int(text)
    if value > MAX_DELTA_SECONDS:
        raise HeaderError("delta-seconds out of range")
    return value


def parse_max_forwards(text: str) -> int:
    """Max-Forwards (RFC 3261 §20.22): 0..255 (RFC 4475 §3.1.2.4 flags 300 as overlarge)."""
    if not text.isdigit() or not text.isascii() or len(text) > 5 or int(text) > 255:
        raise HeaderError("Bad Max-Forwards")
    return int(text)


# ---------------------------------------------------------------------------------------
# CSeq


class CSeq(msgspec.Struct, frozen=True, gc=False):
    """CSeq (RFC 3261 §20.16): ``number`` < 2**31 and a method token."""

    number: int
    method: str

    def __str__(self) -> str:
        return f"{self.number} {self.method}"


def parse_cseq(value: str) -> CSeq:
    """Parse ``1*DIGIT LWS Method``; the number must be below 2**31 (§8.1.1.5)."""
    num, _, method = value.partition(" ")
    method = method.strip(_WS)
    if not num.isdigit() or not num.isascii() or len(num) > 10 or not _is_token(method):
        raise HeaderError("Bad CSeq")
    n = int(num)
    if n > MAX_CSEQ:
        raise HeaderError("CSeq out of range")
    return CSeq(n, method)


# ---------------------------------------------------------------------------------------
# Via


class Via(msgspec.Struct, frozen=True, gc=False):
    """One Via value (RFC 3261 §20.42, RFC 3581 rport).

    ``host`` keeps IPv6 brackets; ``params`` in order (value None for a flag).
    """

    transport: str
    host: str
    port: int | None = None
    params: tuple[tuple[str, str | None], ...] = ()
    protocol: str = "SIP/2.0"

    def __str__(self) -> str:
        port = "" if self.port is None else f":{self.port}"
        return f"{self.protocol}/{self.transport} {self.host}{port}{_fmt_params(self.params)}"

    def param(self, name: str) -> str | None:
        """Parameter value, ``""`` for a flag, None if absent (case-insensitive name)."""
        return _param(self.params, name)

    @property
    def branch(self) -> str | None:
        """The branch parameter (RFC 3261 §8.1.1.7)."""
        return _param(self.params, "branch")

    @property
    def received(self) -> str | None:
        """The received parameter (brackets of an IPv6 value removed, RFC 5118 §4.5)."""
        r = _param(self.params, "received")
        return r[1:-1] if r and r.startswith("[") and r.endswith("]") else r

    @property
    def maddr(self) -> str | None:
        """The maddr parameter."""
        return _param(self.params, "maddr")

    @property
    def ttl(self) -> int | None:
        """The ttl parameter (0..255) or None."""
        t = _param(self.params, "ttl")
        return int(t) if t else None

    @property
    def has_rport(self) -> bool:
        """True when rport is present, with or without a value (RFC 3581 §4)."""
        return _param(self.params, "rport") is not None

    @property
    def rport(self) -> int | None:
        """The rport value filled in by a server, or None (absent or a bare flag)."""
        r = _param(self.params, "rport")
        return int(r) if r else None

    @property
    def is_rfc3261_branch(self) -> bool:
        """True when the branch carries the RFC 3261 magic cookie ``z9hG4bK``."""
        b = self.branch
        return b is not None and b.startswith("z9hG4bK")

    def with_params(self, **params: str | None) -> Via:
        """A copy with parameters set (replacing same names, value None = flag)."""
        low = {k.lower() for k in params}
        kept = tuple((n, v) for n, v in self.params if n.lower() not in low)
        return Via(
            self.transport, self.host, self.port, kept + tuple(params.items()), self.protocol
        )


_VIA_FAST = re.compile(
    rf"SIP[ \t]*/[ \t]*2\.0[ \t]*/[ \t]*({_TOK})[ \t]+([A-Za-z0-9\-.]+|\[[0-9A-Fa-f:.]+\])"
    r"(?:[ \t]*:[ \t]*([0-9]{1,5}))?[ \t]*(?:;(.*))?\Z",
    re.S,
)
_VIA_PROTO = re.compile(r"([^/\s]+)[ \t]*/[ \t]*([^/\s]+)[ \t]*/[ \t]*([^/\s]+)[ \t]+(.*)\Z", re.S)


def _check_via(v: Via) -> Via:
    for name, value in v.params:
        low = name.lower()
        if low in ("ttl", "rport") and value is not None:
            if not value.isdigit() or not value.isascii() or len(value) > 5:
                raise HeaderError(f"Bad Via {low}")
            if low == "ttl" and int(value) > 255:
                raise HeaderError("Bad Via ttl")
        elif low in ("received", "maddr", "branch") and not value:
            raise HeaderError(f"Via {low} without value")
    return v


def parse_via(value: str) -> list[Via]:
    """Parse a Via header value into one :class:`Via` per comma-separated element."""
    if "," not in value:
        m = _VIA_FAST.match(value)
        if m is not None:
            transport, host, port_s, ptext = m.groups()
            port = None
            if port_s is not None:
                port = int(port_s)
                if port > 65535:
                    raise HeaderError("Bad Via port")
            try:
                check_host(host)
            except UriError as exc:
                raise HeaderError(f"Bad Via sent-by: {exc.reason}") from None
            params = parse_params(ptext) if ptext is not None else ()
            via = Via(transport.upper(), host, port, params)
            return [_check_via(via) if params else via]
    out: list[Via] = []
    for item in split_list(value) if "," in value else [value]:
        m = _VIA_PROTO.match(item)
        if m is None:
            raise HeaderError("Bad Via")
        name, version, transport, rest = m.groups()
        if not _is_token(name) or not _is_token(version) or not _is_token(transport):
            raise HeaderError("Bad Via sent-protocol")
        hostport, semi, ptext = rest.partition(";")
        hostport = hostport.strip(_WS)
        try:
            host, port = _hostport(hostport)
        except UriError as exc:
            raise HeaderError(f"Bad Via sent-by: {exc.reason}") from None
        params = parse_params(ptext) if semi else ()
        proto = f"{name}/{version}"
        out.append(_check_via(Via(transport.upper(), host, port, params, proto)))
    return out


def _hostport(text: str) -> tuple[str, int | None]:
    # Reuse the URI host/port grammar; LWS around ':' is allowed in sent-by (§25.1 COLON).
    text = re.sub(r"[ \t]*:[ \t]*(\d+)\Z", r":\1", text) if " " in text else text
    uri = parse_uri("sip:" + text)
    if uri.params or uri.headers or uri.user is not None:
        raise UriError("Bad sent-by")
    return uri.host, uri.port


# ---------------------------------------------------------------------------------------
# name-addr / addr-spec (From, To, Contact, Route, Record-Route, Refer-To, ...)


class NameAddr(msgspec.Struct, frozen=True, gc=False):
    """A name-addr or addr-spec with header parameters (RFC 3261 §20.10, §20.20, §20.39).

    ``display_name`` is unquoted (None when absent); ``params`` are header parameters that
    follow the URI (``tag``, ``expires``, ``q``, ...).
    """

    uri: Uri
    display_name: str | None = None
    params: tuple[tuple[str, str | None], ...] = ()

    def __str__(self) -> str:
        dn = "" if self.display_name is None else quote(self.display_name) + " "
        return f"{dn}<{self.uri}>{_fmt_params(self.params)}"

    def param(self, name: str) -> str | None:
        """Header parameter value, ``""`` for a flag, None if absent."""
        return _param(self.params, name)

    @property
    def tag(self) -> str | None:
        """The tag parameter (RFC 3261 §19.3)."""
        return _param(self.params, "tag")

    @property
    def expires(self) -> int | None:
        """The Contact expires parameter (delta-seconds) or None."""
        e = _param(self.params, "expires")
        return None if e is None else parse_delta_seconds(e)

    @property
    def q(self) -> float | None:
        """The Contact q parameter (0..1) or None."""
        v = _param(self.params, "q")
        return None if v is None else float(v)

    def with_tag(self, tag: str) -> NameAddr:
        """A copy with ``tag`` set (replacing any existing tag)."""
        kept = tuple((n, v) for n, v in self.params if n.lower() != "tag")
        return NameAddr(self.uri, self.display_name, (*kept, ("tag", tag)))


_Q = re.compile(r"(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)\Z")


def _check_name_addr(na: NameAddr) -> NameAddr:
    for name, value in na.params:
        low = name.lower()
        if low == "expires":
            if value is None:
                raise HeaderError("expires without value")
            parse_delta_seconds(value)
        elif low == "q" and (value is None or not _Q.match(value)):
            raise HeaderError("Bad q value")
        elif low == "tag" and not value:
            raise HeaderError("tag without value")
    return na


def _uri(text: str) -> Uri:
    try:
        return parse_uri(text)
    except UriError as exc:
        raise HeaderError(f"Bad URI: {exc.reason}") from None


def parse_name_addr(value: str) -> NameAddr:
    """Parse one ``[display-name] <URI> *(;param)`` or ``addr-spec *(;param)``.

    An addr-spec (no ``<>``) ends at the first ``;`` and must not contain ``,``, ``?`` or
    ``;`` (RFC 3261 §20.10); no whitespace is allowed inside ``<>`` (RFC 4475 §3.1.2.14).
    """
    v = value.strip(_WS)
    m = _NAME_ADDR_FAST.match(v)
    if m is not None:
        q, t, u, p = m.group("q", "t", "uri", "p")
        disp = q if q is not None else (" ".join(t.split()) if t else None)
        na = NameAddr(_uri(u), disp, parse_params(p) if p is not None else ())
        return _check_name_addr(na) if na.params else na
    display: str | None = None
    if v.startswith('"'):
        e = _end_of_quoted(v, 0)
        display = re.sub(r"\\(.)", r"\1", v[1 : e - 1])
        v = v[e:].lstrip(_WS)
        if not v.startswith("<"):
            raise HeaderError("Quoted display name without <URI>")
    lt = v.find("<")
    if lt >= 0:
        if display is None and lt > 0:
            words = v[:lt].strip(_WS)
            if not all(_is_token(w) for w in words.split()):
                raise HeaderError("Non-token characters in display name")
            display = " ".join(words.split())
        gt = v.find(">", lt)
        if gt < 0:
            raise HeaderError("Missing >")
        inner = v[lt + 1 : gt]
        if not inner or inner[0] in _WS or inner[-1] in _WS:
            raise HeaderError("Whitespace inside <>")
        uri = _uri(inner)
        rest = v[gt + 1 :].lstrip(_WS)
        if rest and not rest.startswith(";"):
            raise HeaderError("Junk after >")
        params = parse_params(rest[1:]) if rest else ()
    else:
        spec, semi, ptext = v.partition(";")
        spec = spec.strip(_WS)
        if not spec or any(c in spec for c in ' \t,?"'):
            raise HeaderError("Bad addr-spec")
        uri = _uri(spec)
        params = parse_params(ptext) if semi else ()
    return _check_name_addr(NameAddr(uri, display, params))


def parse_contacts(value: str) -> list[NameAddr] | None:
    """Parse a Contact value: a list of name-addrs, or None for ``*`` (RFC 3261 §20.10)."""
    if value.strip(_WS) == "*":
        return None
    return [parse_name_addr(item) for item in split_list(value)]


# ---------------------------------------------------------------------------------------
# Content-Type


class MediaType(msgspec.Struct, frozen=True, gc=False):
    """A media type (RFC 3261 §20.15): lower-cased ``type``/``subtype`` and parameters."""

    type: str
    subtype: str
    params: tuple[tuple[str, str | None], ...] = ()

    @property
    def mime(self) -> str:
        """``type/subtype``."""
        return f"{self.type}/{self.subtype}"

    def param(self, name: str) -> str | None:
        """Parameter value (quotes removed) or None."""
        v = _param(self.params, name)
        return v[1:-1] if v and v.startswith('"') else v

    def __str__(self) -> str:
        return self.mime + _fmt_params(self.params)


def parse_media_type(value: str) -> MediaType:
    """Parse ``type "/" subtype *(;param)``."""
    mt, semi, ptext = value.partition(";")
    t, slash, s = mt.partition("/")
    t, s = t.strip(_WS), s.strip(_WS)
    if not slash or not _is_token(t) or not _is_token(s):
        raise HeaderError("Bad media type")
    return MediaType(t.lower(), s.lower(), parse_params(ptext) if semi else ())


# ---------------------------------------------------------------------------------------
# Authorization / WWW-Authenticate / Proxy-Authenticate / Proxy-Authorization


class AuthHeader(msgspec.Struct, frozen=True, gc=False):
    """A challenge or credentials (RFC 3261 §20.7, §20.27, §20.44, RFC 7616 §3.3-3.4).

    ``params`` maps lower-cased names to unquoted values.
    """

    scheme: str
    params: dict[str, str]

    def get(self, name: str) -> str | None:
        """Parameter ``name`` (case-insensitive) or None."""
        return self.params.get(name.lower())


def parse_auth(value: str) -> AuthHeader:
    """Parse ``scheme auth-param *(, auth-param)``; quoted values are unescaped."""
    v = value.strip(_WS)
    scheme, _, rest = v.partition(" ")
    if not _is_token(scheme):
        raise HeaderError("Bad auth scheme")
    params: dict[str, str] = {}
    i = 0
    n = len(rest)
    while i < n:
        while i < n and rest[i] in " \t,":
            i += 1
        if i >= n:
            break
        eq = rest.find("=", i)
        if eq < 0:
            raise HeaderError("Bad auth-param")
        name = rest[i:eq].strip(_WS).lower()
        if not _is_token(name):
            raise HeaderError("Bad auth-param name")
        k = eq + 1
        while k < n and rest[k] in _WS:
            k += 1
        if k < n and rest[k] == '"':
            e = _end_of_quoted(rest, k)
            val = re.sub(r"\\(.)", r"\1", rest[k + 1 : e - 1])
        else:
            e = rest.find(",", k)
            e = n if e < 0 else e
            val = rest[k:e].strip(_WS)
            if not val or not all(c in _TOKEN_CHARS or c in "/=:" for c in val):
                raise HeaderError("Bad auth-param value")
        if name in params:
            raise HeaderError("Duplicate auth-param")
        params[name] = val
        i = e
        while i < n and rest[i] in _WS:
            i += 1
        if i < n and rest[i] != ",":
            raise HeaderError("Missing comma between auth-params")
    return AuthHeader(scheme, params)


# Parameters sent as tokens (RFC 7616 §3.4: algorithm, nc, qop and stale are unquoted).
_UNQUOTED = frozenset({"algorithm", "nc", "qop", "stale"})


def format_auth(scheme: str, params: list[tuple[str, str]], *, challenge: bool = False) -> str:
    """Serialize an auth header value; token-typed parameters stay unquoted.

    In a challenge ``qop`` is a quoted list (RFC 7616 §3.3); in credentials a token.
    """
    unquoted = _UNQUOTED - {"qop"} if challenge else _UNQUOTED
    parts = [f"{n}={v}" if n.lower() in unquoted else f"{n}={quote(v)}" for n, v in params]
    return f"{scheme} " + ", ".join(parts)
