"""Which line an incoming request belongs to (``sip.md`` §5, §8.1; ``product.md`` §7), sans-I/O.

Default deny: a request is taken for a line only when one of these holds, checked in order:

1. **gateway → PBX**: the source IP is one of the resolved registrar/proxy addresses of a
   registration (or in the line's Trusted IPs, for PBXs that send from other hosts), and the
   Request-URI user is that registration's random Contact user. From a registrar address
   with another user: ``404 No lines for call`` (not counted: the PBX is known).
2. **IP ⇿ IP**: the source IP is the line's Address (resolved) or in its extra Trusted IPs. When
   several lines match, the one whose ``Field:Value`` header is in the request wins; a line
   without Field:Value is the fallback only when it is the single such line. Otherwise
   ``404 No lines for call``.
3. **PBX → gateway**: some registrar line trusts the source or has a binding from it: the
   request must pass the line's digest challenge
   (:meth:`tgsip.sip.registrar.Registrar.authenticate`; 401, then 403 counted as a failure).
   OPTIONS from a binding source or an explicitly trusted address is accepted without a
   challenge (PBX keep-alives).
4. Anything else is dropped silently and counted as a failure for the ban table: the gateway
   never relays for strangers.

Time is injected (``now``); addresses are resolved by the caller (:meth:`LineTable.set_addresses`).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from tgsip.config.lines import LineKind, SipLine
from tgsip.sip.message import Request, SipParseError
from tgsip.sip.registrar import Registrar
from tgsip.sip.transaction import Peer

__all__ = ["LineTable", "Match", "field_header"]


@dataclass(frozen=True, slots=True)
class Match:
    """The verdict on a request.

    * accepted: ``line_id`` set, ``status`` 0;
    * answered: ``status`` with ``reason`` and ``headers`` (401 challenge, 403, 404);
    * dropped: ``line_id`` None and ``status`` 0.

    ``failure`` (not empty) is the reason to count against the source IP.
    """

    line_id: int | None
    status: int = 0
    reason: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    failure: str = ""
    target: int | None = None
    """On failure: the line the request claimed (a registrar line's login)."""

    @property
    def accepted(self) -> bool:
        """True when the request belongs to ``line_id``."""
        return self.line_id is not None and self.status == 0

    @property
    def dropped(self) -> bool:
        """True when nothing must be sent back."""
        return self.line_id is None and self.status == 0


_DROP_UNKNOWN = Match(None, failure="unknown source")


def field_header(field_value: str) -> tuple[str, str] | None:
    """``"X-Line: 2"`` → ``("X-Line", "2")``; None for "" or text without a colon."""
    name, sep, value = field_value.partition(":")
    if not sep or not name.strip():
        return None
    return name.strip(), value.strip()


def _explicitly_trusts(line: SipLine, ip: str) -> bool:
    return bool(line.trusted_ips) and line.trusts(ip)


@functools.lru_cache(maxsize=4096)
def _norm(ip: str) -> str:
    """Canonical text of an address (IPv4-mapped IPv6 → IPv4, no zone); cached per packet."""
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return ip
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(addr)


class LineTable:
    """The enabled lines of every session and what is known about their peers' addresses."""

    def __init__(self, registrar: Registrar) -> None:
        self.registrar = registrar
        self._lines: dict[int, SipLine] = {}
        self._addresses: dict[int, frozenset[str]] = {}
        self._contact_users: dict[int, str] = {}
        self._trusted_exact: frozenset[str] = frozenset()
        self._trusted_nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []

    # -- configuration -------------------------------------------------------------------

    def set_lines(self, lines: Iterable[SipLine]) -> None:
        """Replace every line (the registrar is updated too)."""
        new = {line.id: line for line in lines if line.enabled}
        for line_id in list(self._lines):
            if line_id not in new:
                self.remove_line(line_id)
        for line in new.values():
            self.update_line(line)

    def update_line(self, line: SipLine) -> None:
        """Add or replace one line; a disabled line is removed."""
        if not line.enabled:
            self.remove_line(line.id)
            return
        old = self._lines.get(line.id)
        if old is not None and (old.kind, old.address, old.domain, old.proxy) != (
            line.kind,
            line.address,
            line.domain,
            line.proxy,
        ):
            self._addresses.pop(line.id, None)
            self._contact_users.pop(line.id, None)
        self._lines[line.id] = line
        self.registrar.set_line(line)
        self._reindex()

    def remove_line(self, line_id: int) -> None:
        """Forget a line."""
        self._lines.pop(line_id, None)
        self._addresses.pop(line_id, None)
        self._contact_users.pop(line_id, None)
        self.registrar.remove_line(line_id)
        self._reindex()

    def set_addresses(self, line_id: int, ips: Iterable[str]) -> None:
        """The resolved peer addresses of a line: registrar/proxy (gateway → PBX) or Address
        (IP ⇿ IP)."""
        self._addresses[line_id] = frozenset(_norm(ip) for ip in ips)
        self._reindex()

    def set_contact_user(self, line_id: int, user: str) -> None:
        """The Contact user of a gateway → PBX line's current registration."""
        self._contact_users[line_id] = user

    @property
    def lines(self) -> dict[int, SipLine]:
        """The enabled lines by id (do not mutate)."""
        return self._lines

    def addresses(self, line_id: int) -> frozenset[str]:
        """The resolved peer addresses of a line (empty until resolved)."""
        return self._addresses.get(line_id, frozenset())

    # -- queries -------------------------------------------------------------------------

    def _reindex(self) -> None:
        self._trusted_exact = frozenset(a for addrs in self._addresses.values() for a in addrs)
        self._trusted_nets = [
            ipaddress.ip_network(n, strict=False)
            for line in self._lines.values()
            for n in line.trusted_ips
        ]

    def is_trusted(self, ip: str) -> bool:
        """True when ``ip`` is a configured peer of some line (registrar/proxy, IP ⇿ IP
        Address, an explicit Trusted IP): such sources are exempt from bans. Per-packet
        check on an index rebuilt when lines or addresses change."""
        ip = _norm(ip)
        if ip in self._trusted_exact:
            return True
        if not self._trusted_nets:
            return False
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(addr.version == n.version and addr in n for n in self._trusted_nets)

    def known_source(self, ip: str) -> bool:
        """True when requests from ``ip`` may reach the user agent at all (in-dialog requests,
        ACK, CANCEL): a trusted peer, a registrar binding's source, or any address when some
        registrar line trusts every address (digest then protects new requests)."""
        ip = _norm(ip)
        return self.is_trusted(ip) or self.registrar.serves(ip)

    def _ip_ip_candidates(self, ip: str) -> list[SipLine]:
        return [
            line
            for line in self._lines.values()
            if line.kind is LineKind.IP_IP
            and (ip in self._addresses.get(line.id, ()) or _explicitly_trusts(line, ip))
        ]

    def match(self, req: Request, source: Peer, now: float) -> Match:
        """The line of a new out-of-dialog request other than REGISTER, ACK and CANCEL."""
        ip = _norm(source.host)
        try:
            user = req.request_uri.user
        except (SipParseError, ValueError):
            return Match(None, 400, "Bad Request-URI")
        from_registrar = False
        for line_id, contact_user in self._contact_users.items():
            line = self._lines.get(line_id)
            if line is None or line.kind is not LineKind.GATEWAY_TO_PBX:
                continue
            if ip not in self._addresses.get(line_id, ()) and not _explicitly_trusts(line, ip):
                continue
            from_registrar = True
            if user is not None and user == contact_user:
                return Match(line_id)
        candidates = self._ip_ip_candidates(ip)
        if candidates:
            chosen = self._by_field(req, candidates)
            if chosen is not None:
                return Match(chosen)
            return Match(None, 404, "No lines for call")
        if from_registrar:
            return Match(None, 404, "No lines for call")
        if self.registrar.serves(ip):
            if req.method == "OPTIONS":
                return self._options_from_pbx(ip)
            auth = self.registrar.authenticate(req, source, now)
            if auth.line_id is not None:
                return Match(auth.line_id)
            return Match(None, auth.status, auth.reason, auth.headers, auth.failure, auth.target)
        return _DROP_UNKNOWN

    def _options_from_pbx(self, ip: str) -> Match:
        bound = self.registrar.line_bound_from(ip)
        if bound is not None:
            return Match(bound)
        for line in self.registrar.lines.values():
            if _explicitly_trusts(line, ip):
                return Match(line.id)
        return _DROP_UNKNOWN

    @staticmethod
    def _by_field(req: Request, candidates: list[SipLine]) -> int | None:
        plain: list[SipLine] = []
        for line in candidates:
            fv = field_header(line.field_value)
            if fv is None:
                plain.append(line)
                continue
            values = [v.strip() for v in req.get_all(fv[0])]
            if fv[1] in values:
                return line.id
        return plain[0].id if len(plain) == 1 else None
