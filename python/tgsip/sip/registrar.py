"""The gateway as registrar for PBX → gateway lines (RFC 3261 §10.3, ``product.md`` §7.1), sans-I/O.

A PBX registers to the gateway with the generated login and password of its line. Every
REGISTER is digest-challenged alike (401 with one WWW-Authenticate per algorithm, SHA-256 then
MD5, RFC 8760 §2.4), so user names cannot be enumerated; a wrong answer gets ``403 Forbidden``
and is reported as a failure for the ban table (``sip.md`` §8.1, §8.3). An expired nonce with a
correct answer is re-challenged with ``stale=true``.

Bindings: the authenticated login selects the line; the To user must be that login. Per
contact: ``expires`` parameter, else the ``Expires`` header, else :attr:`Registrar.default_expires`;
0 removes the contact; below :attr:`Registrar.min_expires` answers ``423 Interval Too Brief``
with ``Min-Expires``; above :attr:`Registrar.max_expires` is cut down. ``Contact: *`` with
``Expires: 0`` removes every binding of the line (§10.3 step 6). A REGISTER with the same
Call-ID and a CSeq not above the stored one is ignored with 500 (§10.3 step 7).

Each binding keeps the *source* the REGISTER arrived from (transport, address and port as seen
on the socket): calls towards the PBX go there, which honours RFC 3581 ``rport``/``received``
behind NAT and reuses the TCP/TLS flow the PBX opened.

Persistence: bindings are kept in memory only. After a restart a PBX re-registers on its own
refresh (``max_expires`` defaults to 600 s so it does so within 10 minutes); until then calls
towards that line find no binding. Persisting them would let calls go to a stale flow that
died with the process anyway (TCP/TLS), so it buys little.

Time is injected (``now``, seconds); nothing here reads a clock. Passwords are never logged.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from tgsip.config.lines import LineKind, SipLine
from tgsip.sip.auth import AuthResult, DigestServer, compute_ha1
from tgsip.sip.headers import AuthHeader, HeaderError, parse_auth
from tgsip.sip.message import Request, SipParseError
from tgsip.sip.transaction import Peer
from tgsip.sip.uri import UriError, parse_uri

__all__ = ["AuthCheck", "Binding", "RegisterResult", "Registrar"]

Headers = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Binding:
    """One registered contact of a line (RFC 3261 §10.3)."""

    line_id: int
    aor: str
    contact: str
    """The Contact URI as registered (the Request-URI of calls towards the PBX)."""
    source: Peer
    """Where the REGISTER came from: calls are sent here (NAT, TCP/TLS flow)."""
    expires_at: float
    call_id: str
    cseq: int
    registered_at: float
    user_agent: str = ""

    def remaining(self, now: float) -> int:
        """Whole seconds until the binding expires (0 when it has)."""
        return max(0, int(self.expires_at - now))


@dataclass(frozen=True, slots=True)
class AuthCheck:
    """Outcome of a digest check on a request from a PBX → gateway line.

    ``line_id`` is set when the request is authenticated; otherwise ``status``/``reason`` and
    ``headers`` form the response (401 challenge or 403), and ``failure`` (when not empty) is
    the reason to count against the source IP.
    """

    line_id: int | None
    status: int = 0
    reason: str = ""
    headers: Headers = ()
    failure: str = ""
    target: int | None = None
    """On failure: the line the attempt claimed (its login), to notify its administrator."""


@dataclass(frozen=True, slots=True)
class RegisterResult:
    """The response to a REGISTER and what changed.

    ``failure`` (not empty) is counted against the source IP; ``changed`` names the line whose
    binding set changed (for state listeners), or None.
    """

    status: int
    reason: str
    headers: Headers = ()
    line_id: int | None = None
    failure: str = ""
    changed: int | None = None
    target: int | None = None
    """On failure: the line the attempt claimed, to notify its administrator."""


def _uri_matches(authorization: AuthHeader, req: Request) -> bool:
    """The digest-uri must name the Request-URI (RFC 3261 §22.4 item 5, RFC 7616 §3.4.6).

    Accepted: the exact Request-URI, or a SIP URI with the same host and port and either no
    user or the same user (SIPp 3.6 puts ``sip:host:port`` there for every request; measured).
    The nonce-count check still stops replays of the same credentials.
    """
    try:
        duri = authorization.get("uri")
        if duri is None:
            return False
        if duri == req.uri:
            return True
        a, b = parse_uri(duri), req.request_uri
    except (HeaderError, UriError, SipParseError):
        return False
    return (
        a.scheme == b.scheme
        and a.host_address == b.host_address
        and a.port == b.port
        and a.user in (None, b.user)
    )


class Registrar:
    """Bindings and digest policy of every PBX → gateway line.

    ``secret`` signs nonces (at least 16 bytes); ``realm`` is shown to the PBX;
    ``algorithms`` is the challenge order; ``max_bindings`` caps contacts per line.
    """

    def __init__(
        self,
        secret: bytes,
        realm: str = "tgsip",
        *,
        algorithms: Iterable[str] = ("SHA-256", "MD5"),
        nonce_ttl: float = 300.0,
        min_expires: int = 60,
        max_expires: int = 600,
        default_expires: int = 600,
        max_bindings: int = 10,
    ) -> None:
        if not 0 < min_expires <= max_expires:
            raise ValueError("need 0 < min_expires <= max_expires")
        self.digest = DigestServer(secret, realm, algorithms=tuple(algorithms), nonce_ttl=nonce_ttl)
        self.min_expires = min_expires
        self.max_expires = max_expires
        self.default_expires = min(max(default_expires, min_expires), max_expires)
        self.max_bindings = max_bindings
        self._lines: dict[int, SipLine] = {}
        self._by_login: dict[str, int] = {}
        self._bindings: dict[int, dict[str, Binding]] = {}
        self._sources: dict[str, int] | None = None  # binding source host -> line (lazy index)
        self._open_lines = 0
        self._nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []

    # -- lines ---------------------------------------------------------------------------

    def set_line(self, line: SipLine) -> bool:
        """Add or replace a PBX → gateway line; returns True when its bindings were dropped.

        Bindings survive an update unless the login or password changed (the PBX must then
        authenticate again). A disabled line or another kind removes the line.
        """
        if line.kind is not LineKind.PBX_TO_GATEWAY or not line.enabled or not line.login:
            return self.remove_line(line.id)
        old = self._lines.get(line.id)
        dropped = False
        if old is not None:
            self._by_login.pop(old.login, None)
            if (old.login, old.password) != (line.login, line.password):
                dropped = bool(self._bindings.pop(line.id, None))
        self._lines[line.id] = line
        self._by_login[line.login] = line.id
        self._sources = None
        self._reindex_trust()
        return dropped

    def remove_line(self, line_id: int) -> bool:
        """Forget a line and its bindings; returns True when it had bindings."""
        old = self._lines.pop(line_id, None)
        if old is not None and self._by_login.get(old.login) == line_id:
            del self._by_login[old.login]
        self._sources = None
        self._reindex_trust()
        return bool(self._bindings.pop(line_id, None))

    @property
    def lines(self) -> dict[int, SipLine]:
        """The registrar's lines by id (do not mutate)."""
        return self._lines

    def _reindex_trust(self) -> None:
        self._open_lines = sum(1 for line in self._lines.values() if not line.trusted_ips)
        self._nets = [
            ipaddress.ip_network(n, strict=False)
            for line in self._lines.values()
            for n in line.trusted_ips
        ]

    def serves(self, ip: str) -> bool:
        """True when some line might accept requests from ``ip``: a line trusts it (an empty
        Trusted IPs list trusts every address) or one of its bindings came from it.

        Per-packet check: indexes, no per-line parsing.
        """
        if self._open_lines:
            return True
        try:
            addr = ipaddress.ip_address(ip.split("%", 1)[0])
        except ValueError:
            return False
        if any(addr.version == n.version and addr in n for n in self._nets):
            return True
        return self.line_bound_from(ip) is not None

    def line_bound_from(self, ip: str) -> int | None:
        """A line with a binding whose source address is ``ip`` (expiry not checked)."""
        index = self._sources
        if index is None:
            index = {b.source.host: lid for lid, bs in self._bindings.items() for b in bs.values()}
            self._sources = index
        return index.get(ip)

    # -- digest --------------------------------------------------------------------------

    def _ha1(self, username: str, algorithm: str) -> str | None:
        line_id = self._by_login.get(username)
        if line_id is None:
            return None
        line = self._lines[line_id]
        return compute_ha1(username, self.digest.realm, line.password, algorithm)

    def challenge_headers(self, now: float, *, stale: bool = False) -> Headers:
        """WWW-Authenticate headers, one per algorithm, one fresh nonce."""
        return tuple(("WWW-Authenticate", c) for c in self.digest.challenges(now, stale=stale))

    def authenticate(self, req: Request, source: Peer, now: float) -> AuthCheck:
        """Digest check of ``req`` (REGISTER or INVITE/other) for a line (RFC 3261 §22.4).

        No credentials → 401 challenge (not a failure). Correct credentials from an address
        the line does not trust and has no binding from → 403 and a failure ("untrusted
        source"). Wrong credentials, unknown login, replay → 403 and a failure.
        """
        value = req.get("Authorization")
        if value is None:
            return AuthCheck(None, 401, "Unauthorized", self.challenge_headers(now))
        try:
            parsed = parse_auth(value)
        except HeaderError:
            return AuthCheck(None, 403, "Forbidden", failure="auth failed: malformed credentials")
        if not _uri_matches(parsed, req):
            return AuthCheck(None, 403, "Forbidden", failure="auth failed: digest-uri mismatch")
        verdict = self.digest.verify(parsed, req.method, now, self._ha1)
        if verdict.result is AuthResult.STALE:
            return AuthCheck(None, 401, "Unauthorized", self.challenge_headers(now, stale=True))
        claimed = self._by_login.get(verdict.username or "")
        if verdict.result is not AuthResult.OK or claimed is None:
            failure = f"auth failed: {verdict.reason}"
            return AuthCheck(None, 403, "Forbidden", failure=failure, target=claimed)
        line_id = claimed
        line = self._lines[line_id]
        if not line.trusts(source.host) and not (
            req.method != "REGISTER" and self._bound_from(line_id, source.host, now)
        ):
            return AuthCheck(None, 403, "Forbidden", failure="untrusted source", target=line_id)
        return AuthCheck(line_id)

    def _bound_from(self, line_id: int, ip: str, now: float) -> bool:
        return any(
            b.source.host == ip and b.expires_at > now
            for b in self._bindings.get(line_id, {}).values()
        )

    # -- REGISTER ------------------------------------------------------------------------

    def register(self, req: Request, source: Peer, now: float) -> RegisterResult:
        """Process one REGISTER (RFC 3261 §10.3 steps 4-8)."""
        auth = self.authenticate(req, source, now)
        if auth.line_id is None:
            return RegisterResult(
                auth.status, auth.reason, auth.headers, failure=auth.failure, target=auth.target
            )
        line_id = auth.line_id
        line = self._lines[line_id]
        try:
            to_user = req.to.uri.user
            contacts = req.contacts
            expires_hdr = req.expires
            call_id, cseq = req.call_id, req.cseq.number
        except (SipParseError, ValueError):
            return RegisterResult(400, "Bad Request", line_id=line_id)
        if to_user != line.login:
            return RegisterResult(
                403, "Forbidden", line_id=line_id, failure="foreign AOR", target=line_id
            )
        aor = str(req.to.uri)
        self._purge(line_id, now)
        before = self._bindings.get(line_id, {})
        bindings = dict(before)  # all or nothing (RFC 3261 §10.3 step 6)
        if contacts is None:  # Contact: *
            if expires_hdr != 0:
                return RegisterResult(400, "Invalid Contact * without Expires: 0", line_id=line_id)
            bindings.clear()
        else:
            default = self.default_expires if expires_hdr is None else expires_hdr
            ua = req.get("User-Agent") or ""
            for c in contacts:
                try:
                    exp = c.expires if c.expires is not None else default
                except (ValueError, SipParseError):
                    return RegisterResult(400, "Bad Contact expires", line_id=line_id)
                key = str(c.uri)
                old = bindings.get(key)
                if old is not None and old.call_id == call_id and cseq <= old.cseq:
                    return RegisterResult(500, "Out of order REGISTER", line_id=line_id)
                if exp == 0:
                    bindings.pop(key, None)
                    continue
                if exp < self.min_expires:
                    mins = (("Min-Expires", str(self.min_expires)),)
                    return RegisterResult(423, "Interval Too Brief", mins, line_id=line_id)
                exp = min(exp, self.max_expires)
                if key not in bindings and len(bindings) >= self.max_bindings:
                    oldest = min(bindings.values(), key=lambda b: b.registered_at)
                    del bindings[oldest.contact]
                bindings[key] = Binding(
                    line_id, aor, key, source, now + exp, call_id, cseq, now, ua
                )
        if bindings:
            self._bindings[line_id] = bindings
        else:
            self._bindings.pop(line_id, None)
        self._sources = None
        headers = tuple(
            ("Contact", f"<{b.contact}>;expires={b.remaining(now)}")
            for b in sorted(bindings.values(), key=lambda b: b.registered_at)
        )
        changed = line_id if set(bindings) != set(before) or contacts else None
        return RegisterResult(200, "OK", headers, line_id=line_id, changed=changed)

    # -- state ---------------------------------------------------------------------------

    def _purge(self, line_id: int, now: float) -> bool:
        bs = self._bindings.get(line_id)
        if not bs:
            return False
        dead = [k for k, b in bs.items() if b.expires_at <= now]
        for k in dead:
            del bs[k]
        if dead:
            self._sources = None
        return bool(dead)

    def bindings(self, line_id: int, now: float) -> list[Binding]:
        """Live bindings of a line, oldest first."""
        self._purge(line_id, now)
        return sorted(self._bindings.get(line_id, {}).values(), key=lambda b: b.registered_at)

    def binding(self, line_id: int, now: float) -> Binding | None:
        """The most recently registered live binding of a line (where calls go), or None."""
        bs = self.bindings(line_id, now)
        return bs[-1] if bs else None

    def is_registered(self, line_id: int, now: float) -> bool:
        """True when the line has a live binding."""
        return self.binding(line_id, now) is not None

    def expire(self, now: float) -> list[int]:
        """Drop expired bindings; returns the lines left with none (for state listeners)."""
        gone: list[int] = []
        for line_id in list(self._bindings):
            if self._purge(line_id, now) and not self._bindings[line_id]:
                del self._bindings[line_id]
                gone.append(line_id)
        return gone

    def next_expiry(self) -> float | None:
        """The earliest binding expiry, or None without bindings."""
        times = [b.expires_at for bs in self._bindings.values() for b in bs.values()]
        return min(times) if times else None
