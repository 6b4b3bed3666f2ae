"""A session's SIP lines: the three connection types and their settings, plus the parsers that
turn what an administrator types into validated values.

One model serves everyone: the admin bot edits it, the configuration store persists it and
the SIP service runs it. Every parser takes raw text as typed in the bot (one pair of
surrounding backticks is stripped first, because administrators wrap values in backticks so
Telegram leaves them alone) and returns a normalised value or raises :class:`ValidationError`
whose message is fit to show the administrator unchanged.
"""

from __future__ import annotations

import enum
import ipaddress
import re
import secrets
import string
from collections.abc import Iterable
from typing import TypeVar

import msgspec


class ValidationError(ValueError):
    """A typed value is invalid; ``str(error)`` tells the administrator what to fix."""


class LineKind(enum.StrEnum):
    """The three connection types (product spec section 7)."""

    PBX_TO_GATEWAY = "pbx_to_gateway"
    """The PBX registers to the gateway with a generated login and password."""
    GATEWAY_TO_PBX = "gateway_to_pbx"
    """The gateway registers to the PBX with the PBX's Login, Password, Domain and Proxy."""
    IP_IP = "ip_ip"
    """Static peering: no registration, the PBX's Address:port, optional Field:Value."""


class Transport(enum.StrEnum):
    UDP = "udp"
    TCP = "tcp"
    TLS = "tls"

    def next(self) -> Transport:
        """The bot's transport button cycles UDP -> TCP -> TLS -> UDP."""
        order = list(Transport)
        return order[(order.index(self) + 1) % len(order)]


class Codec(enum.StrEnum):
    ALAW = "alaw"
    MULAW = "mulaw"
    OPUS = "opus"


class DtmfMethod(enum.StrEnum):
    RFC2833 = "rfc2833"
    INFO = "info"
    INBAND = "inband"


_T = TypeVar("_T")

DEFAULT_CODECS: tuple[Codec, ...] = (Codec.ALAW, Codec.MULAW)
DEFAULT_DTMF: tuple[DtmfMethod, ...] = (DtmfMethod.RFC2833,)
NO_FREE_DIALLING: tuple[str, ...] = (".*=",)
"""Default dial rules of gateway->PBX and IP<->IP lines: chat text never becomes a number, so
calls go to Number on PBX (product spec 8.3; toll-fraud protection)."""

LOGIN_LENGTH = 10
PASSWORD_LENGTH = 24
MAX_TRUSTED = 64


class SipLine(msgspec.Struct, frozen=True, kw_only=True):
    """One SIP connection of a session. ``password`` is a secret: the store encrypts it at rest
    and ``repr`` never shows it."""

    id: int = 0
    session_id: int
    kind: LineKind
    enabled: bool = True
    transport: Transport = Transport.UDP
    codecs: tuple[Codec, ...] = DEFAULT_CODECS
    dtmf_methods: tuple[DtmfMethod, ...] = DEFAULT_DTMF
    dial_rules: tuple[str, ...] = ()
    caller_phone: tuple[str, ...] = ("+{phone}", "0{userid}")
    caller_name: tuple[str, ...] = ("{name_ascii}",)
    priority: int = 0
    number_on_pbx: str = ""
    login: str = ""
    password: str = ""
    trusted_ips: tuple[str, ...] = ()
    domain: str = ""
    proxy: str = ""
    address: str = ""
    field_value: str = ""

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{name}={getattr(self, name)!r}"
            for name in self.__struct_fields__
            if name != "password"
        )
        return f"SipLine({shown}, password={'***' if self.password else ''!r})"

    __str__ = __repr__

    def trusts(self, ip: str) -> bool:
        """Whether ``ip`` may use this line. An empty list trusts every address (the PBX is
        still digest-authenticated); an unparsable address is never trusted."""
        if not self.trusted_ips:
            return True
        try:
            addr = ipaddress.ip_address(ip.split("%", 1)[0])
        except ValueError:
            return False
        for net in self.trusted_ips:
            network = ipaddress.ip_network(net, strict=False)
            if addr.version == network.version and addr in network:
                return True
            mapped = getattr(addr, "ipv4_mapped", None)
            if mapped is not None and mapped.version == network.version and mapped in network:
                return True
        return False

    def missing_params(self) -> list[str]:
        """The labels of required fields that are empty (the bot answers "Invalid parameters
        (…)" and the SIP service does not start the line)."""
        missing: list[str] = []
        if self.kind is LineKind.PBX_TO_GATEWAY:
            if not self.login:
                missing.append("Login")
            if not self.password:
                missing.append("Password")
        elif self.kind is LineKind.GATEWAY_TO_PBX:
            if not self.login:
                missing.append("Login")
            if not self.password:
                missing.append("Password")
            if not self.domain:
                missing.append("Domain")
        elif not self.address:
            missing.append("Address:port")
        return missing

    def field_header(self) -> tuple[str, str] | None:
        """``Field:Value`` split into a header name and value, or None."""
        if not self.field_value:
            return None
        name, _, value = self.field_value.partition(":")
        return name.strip(), value.strip()


def generate_login() -> str:
    """10 random lowercase letters and digits, starting with a letter."""
    alphabet = string.ascii_lowercase + string.digits
    return secrets.choice(string.ascii_lowercase) + "".join(
        secrets.choice(alphabet) for _ in range(LOGIN_LENGTH - 1)
    )


def generate_password() -> str:
    """24 random characters from letters and digits (no characters a PBX form could mangle)."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(PASSWORD_LENGTH))


def new_pbx_to_gateway(session_id: int) -> SipLine:
    """A PBX->gateway line with a generated login and password."""
    return SipLine(
        session_id=session_id,
        kind=LineKind.PBX_TO_GATEWAY,
        login=generate_login(),
        password=generate_password(),
    )


def new_gateway_to_pbx(session_id: int) -> SipLine:
    return SipLine(session_id=session_id, kind=LineKind.GATEWAY_TO_PBX, dial_rules=NO_FREE_DIALLING)


def new_ip_ip(session_id: int) -> SipLine:
    return SipLine(session_id=session_id, kind=LineKind.IP_IP, dial_rules=NO_FREE_DIALLING)


def strip_backticks(text: str) -> str:
    """Trims whitespace and one pair of surrounding backticks (`` `x` `` or ```` ```x``` ````)."""
    text = text.strip()
    for fence in ("```", "`"):
        if len(text) >= 2 * len(fence) and text.startswith(fence) and text.endswith(fence):
            return text[len(fence) : -len(fence)].strip()
    return text


def _items(text: str) -> list[str]:
    return [item for item in re.split(r"[\s,;]+", strip_backticks(text)) if item]


_CODEC_NAMES = {
    "alaw": Codec.ALAW,
    "pcma": Codec.ALAW,
    "g711a": Codec.ALAW,
    "mulaw": Codec.MULAW,
    "ulaw": Codec.MULAW,
    "pcmu": Codec.MULAW,
    "g711u": Codec.MULAW,
    "opus": Codec.OPUS,
}

_DTMF_NAMES = {
    "rfc2833": DtmfMethod.RFC2833,
    "rfc4733": DtmfMethod.RFC2833,
    "info": DtmfMethod.INFO,
    "sipinfo": DtmfMethod.INFO,
    "inband": DtmfMethod.INBAND,
}


def _ordered_unique(values: Iterable[_T]) -> tuple[_T, ...]:
    out: list[_T] = []
    for value in values:
        if value not in out:
            out.append(value)
    return tuple(out)


def parse_codecs(text: str) -> tuple[Codec, ...]:
    """``"opus, alaw, mulaw"`` in priority order; empty restores ``alaw,mulaw``."""
    names = _items(text)
    if not names:
        return DEFAULT_CODECS
    codecs: list[Codec] = []
    for name in names:
        codec = _CODEC_NAMES.get(name.lower())
        if codec is None:
            known = ", ".join(c.value for c in Codec)
            raise ValidationError(f"Unknown codec “{name[:20]}”. Use a comma list of: {known}.")
        codecs.append(codec)
    return _ordered_unique(codecs)


def parse_dtmf_methods(text: str) -> tuple[DtmfMethod, ...]:
    """``"rfc2833, info"`` in priority order; empty restores ``rfc2833``."""
    names = _items(text)
    if not names:
        return DEFAULT_DTMF
    methods: list[DtmfMethod] = []
    for name in names:
        method = _DTMF_NAMES.get(name.lower().replace("-", "").replace("_", ""))
        if method is None:
            known = ", ".join(m.value for m in DtmfMethod)
            raise ValidationError(
                f"Unknown DTMF method “{name[:20]}”. Use a comma list of: {known}."
            )
        methods.append(method)
    return _ordered_unique(methods)


def parse_trusted_ips(text: str) -> tuple[str, ...]:
    """IP addresses and subnets (CIDR), IPv4 and IPv6, separated by commas, spaces or lines.
    Host bits in a subnet are an error (``10.0.0.1/8`` is probably a typo). Empty = any."""
    out: list[str] = []
    for item in _items(text):
        try:
            net = ipaddress.ip_network(item, strict=True)
        except ValueError:
            if "/" in item:
                raise ValidationError(
                    f"“{item[:50]}” is not a valid subnet: use the network address, "
                    "e.g. 192.168.1.0/24."
                ) from None
            raise ValidationError(
                f"“{item[:50]}” is not an IP address or a subnet such as 10.0.0.0/8."
            ) from None
        out.append(str(net))
    result = _ordered_unique(out)
    if len(result) > MAX_TRUSTED:
        raise ValidationError(f"At most {MAX_TRUSTED} trusted addresses per line.")
    return result


_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*"
    r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?$"
)


def _split_host_port(text: str) -> tuple[str, int | None]:
    text = strip_backticks(text)
    for prefix in ("sip:", "sips:"):
        if text.lower().startswith(prefix):
            text = text[len(prefix) :]
    if not text:
        raise ValidationError("Enter an address such as pbx.example.com or 192.0.2.10:5060.")
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep:
            raise ValidationError("An IPv6 address in brackets needs the closing “]”.")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValidationError(f"“{host[:50]}” is not an IPv6 address.") from None
        if not rest:
            return f"[{host}]", None
        if not rest.startswith(":"):
            raise ValidationError("Write the port after the address as [v6]:port.")
        return f"[{host}]", _port(rest[1:])
    if text.count(":") > 1:
        try:
            ipaddress.IPv6Address(text)
        except ValueError:
            raise ValidationError(f"“{text[:50]}” is not a valid address.") from None
        return f"[{text}]", None
    host, sep, port = text.partition(":")
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        if not _HOSTNAME.match(host) or host.replace(".", "").isdigit():
            msg = f"“{host[:50]}” is not a valid host name or IP address."
            raise ValidationError(msg) from None
    return host.lower(), (_port(port) if sep else None)


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValidationError(f"“{text[:10]}” is not a port number (1-65535).")
    return int(text)


def parse_address_port(text: str, default_port: int = 5060) -> str:
    """``host[:port]`` or ``[v6]:port``, normalised to ``host:port`` (port always present)."""
    host, port = _split_host_port(text)
    return f"{host}:{port or default_port}"


def parse_host(text: str) -> str:
    """A Domain or Proxy: host name or IP with an optional port, normalised."""
    host, port = _split_host_port(text)
    return host if port is None else f"{host}:{port}"


_TOKEN = re.compile(r"^[A-Za-z0-9!%*_+`'~.-]+$")
_RESERVED_HEADERS = {
    "via",
    "v",
    "from",
    "f",
    "to",
    "t",
    "call-id",
    "i",
    "cseq",
    "contact",
    "m",
    "content-length",
    "l",
    "content-type",
    "c",
    "max-forwards",
    "route",
    "record-route",
    "authorization",
    "proxy-authorization",
}


def parse_field_value(text: str) -> str:
    """``Header-Name: value`` added to INVITEs to tell trunks between the same IPs apart.
    Empty clears it. Headers that carry SIP routing or authentication are refused."""
    text = strip_backticks(text)
    if not text:
        return ""
    name, sep, value = text.partition(":")
    name, value = name.strip(), value.strip()
    if not sep or not name or not value:
        raise ValidationError("Write the header as Field:Value, e.g. X-Trunk: office2.")
    if not _TOKEN.match(name):
        raise ValidationError(f"“{name[:40]}” is not a valid SIP header name.")
    if name.lower() in _RESERVED_HEADERS:
        raise ValidationError(f"The {name} header is used by SIP itself; choose another name.")
    if len(value) > 128 or any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValidationError("The value must be at most 128 printable characters.")
    return f"{name}: {value}"


def parse_priority(text: str) -> int:
    """0-99; lower is called earlier, equal priorities ring together."""
    text = strip_backticks(text)
    if not text.isdigit() or int(text) > 99:
        raise ValidationError("Priority is a whole number from 0 to 99 (lower rings first).")
    return int(text)


_NUMBER = re.compile(r"^[0-9A-Za-z+*#._-]{1,64}$")


def parse_number(text: str) -> str:
    """Number on PBX or a SIP login: 1-64 characters of digits, letters and ``+*#._-``."""
    text = strip_backticks(text)
    if not _NUMBER.match(text):
        raise ValidationError(
            "Use 1-64 characters: digits, Latin letters and + * # . _ - (no spaces)."
        )
    return text


def ip_ip_conflicts(lines: Iterable[SipLine]) -> list[tuple[int, int]]:
    """Pairs of IP<->IP line ids that share an Address without distinct Field:Value, so the
    gateway could not tell their incoming calls apart (refused at configuration time)."""
    seen: list[SipLine] = []
    conflicts: list[tuple[int, int]] = []
    for line in lines:
        if line.kind is not LineKind.IP_IP or not line.address:
            continue
        host = line.address.rsplit(":", 1)[0]
        for other in seen:
            if other.address.rsplit(":", 1)[0] != host:
                continue
            mine, theirs = line.field_header(), other.field_header()
            if mine is None or theirs is None or mine == theirs:
                conflicts.append((other.id, line.id))
        seen.append(line)
    return conflicts


__all__ = [
    "DEFAULT_CODECS",
    "DEFAULT_DTMF",
    "NO_FREE_DIALLING",
    "Codec",
    "DtmfMethod",
    "LineKind",
    "SipLine",
    "Transport",
    "ValidationError",
    "generate_login",
    "generate_password",
    "ip_ip_conflicts",
    "new_gateway_to_pbx",
    "new_ip_ip",
    "new_pbx_to_gateway",
    "parse_address_port",
    "parse_codecs",
    "parse_dtmf_methods",
    "parse_field_value",
    "parse_host",
    "parse_number",
    "parse_priority",
    "parse_trusted_ips",
    "strip_backticks",
]
