"""The gateway registering to a PBX for gateway → PBX lines (RFC 3261 §10.2, ``product.md`` §7.2).

:class:`Registration` is the sans-I/O client of one line: it builds each REGISTER (to Domain,
sent via Proxy when set), answers 401/407 digest challenges with the line's Login/Password
(:class:`tgsip.sip.auth.DigestClient`: SHA-512-256 > SHA-256 > MD5), follows ``423 Interval
Too Brief`` (Min-Expires), refreshes at a random 50-80 % of the granted expiry and, on failure,
retries after an exponential back-off with jitter (``min_backoff * 2**n``, capped at
``max_backoff``, times a random factor in [0.5, 1]; ``Retry-After`` of a 503 is honoured).
Each registration has a random Contact user: INVITEs are accepted only when their
Request-URI user is that user (``sip.md`` §8.1, against "ghost calls" from scanners).

States (:class:`RegState`): ``unregistered`` → ``registering`` → ``registered``, ``failed`` with
the last error; every change is reported to ``on_change`` with a :class:`RegistrationStatus`.
:meth:`Registration.stop` sends ``Expires: 0`` when registered (line deleted or changed).

:class:`RegistrationClient` is the thin asyncio shell: it resolves the registrar (A/AAAA via
``getaddrinfo``; no DNS SRV/NAPTR) and sends through a :class:`tgsip.sip.ua.UserAgent`.
Time is injected into :class:`Registration`; only the shell reads the loop clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from tgsip.config.lines import SipLine, Transport
from tgsip.sip.auth import AuthError, DigestClient
from tgsip.sip.headers import HeaderError, parse_delta_seconds
from tgsip.sip.message import Request, Response, SipParseError, new_branch, new_request
from tgsip.sip.transaction import Peer

__all__ = [
    "RegState",
    "Registration",
    "RegistrationClient",
    "RegistrationStatus",
    "split_hostport",
]

log = logging.getLogger(__name__)

INF = float("inf")
REQUEST_LIMIT = 40.0
"""Seconds one REGISTER may take, connection set-up included (above Timer F = 64*T1 = 32 s)."""


class RegState(StrEnum):
    """Registration state shown to the administrator."""

    UNREGISTERED = "unregistered"
    REGISTERING = "registering"
    REGISTERED = "registered"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class RegistrationStatus:
    """A snapshot of one line's registration for the bot and notifications."""

    line_id: int
    state: RegState
    last_error: str = ""
    expires_at: float | None = None
    """When the registrar's binding ends (REGISTERED only)."""
    contact_user: str = ""


def split_hostport(text: str, default_port: int) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]``, ``[v6]:port`` or a bare IPv6 → (host, port).

    Raises :class:`ValueError` for an empty host or a bad port.
    """
    text = text.strip()
    try:
        if text.startswith("["):
            end = text.find("]")
            if end < 0:
                raise ValueError("no closing bracket")
            host, rest = text[1:end], text[end + 1 :]
            port = int(rest[1:]) if rest.startswith(":") else default_port
        elif text.count(":") == 1:
            host, _, p = text.partition(":")
            port = int(p)
        else:
            host, port = text, default_port
    except ValueError:
        raise ValueError(f"bad address {text!r}") from None
    if not host or not 0 < port < 65536:
        raise ValueError(f"bad address {text!r}")
    return host, port


def _uri_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class Registration:
    """Sans-I/O REGISTER client of one gateway → PBX line.

    The driver calls :meth:`start`, then whenever ``now >= deadline`` calls :meth:`build` and
    sends the request to :attr:`target` (``(host, port, transport)``), then feeds the final
    response to :meth:`on_response` or a transport error to :meth:`on_error`. ``rng`` makes the
    refresh point and the jitter reproducible in tests.
    """

    def __init__(
        self,
        line: SipLine,
        *,
        expires: int = 3600,
        min_backoff: float = 5.0,
        max_backoff: float = 600.0,
        rng: random.Random | None = None,
        on_change: Callable[[RegistrationStatus], None] | None = None,
    ) -> None:
        self.line = line
        self.line_id = line.id
        dom_host, dom_port = split_hostport(line.domain, 5061 if _is_tls(line) else 5060)
        self.domain_host = dom_host
        self.request_uri = f"sip:{_uri_host(dom_host)}" + (
            f":{dom_port}" if dom_port not in (5060, 5061) else ""
        )
        if line.proxy:
            host, port = split_hostport(line.proxy, 5061 if _is_tls(line) else 5060)
        else:
            host, port = dom_host, dom_port
        self.target: tuple[str, int, str] = (host, port, line.transport.value.upper())
        self.aor = f"sip:{line.login}@{_uri_host(dom_host)}"
        self.contact_user = "g" + secrets.token_hex(8)
        self.call_id = new_branch()[7:] + "@tgsip"
        self.requested = expires
        self.expires = expires
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self._rng = rng or random.Random()
        self._client = DigestClient(line.login, line.password)
        self.on_change = on_change
        self.state = RegState.UNREGISTERED
        self.last_error = ""
        self.expires_at: float | None = None
        self.deadline = INF
        self.cseq = 0
        self.failures = 0
        self.stopping = False
        self.done = False
        self._auth: tuple[str, str] | None = None  # (header name, value) for the next request
        self._auth_tries = 0
        self._interval_tries = 0
        self._in_flight = False
        self._sent_unregister = False

    def __repr__(self) -> str:
        return f"Registration(line={self.line_id}, state={self.state.value})"

    @property
    def last_algorithm(self) -> str | None:
        """The digest algorithm of the last answered challenge (SHA-512-256, SHA-256, MD5)."""
        return self._client.last_algorithm

    @property
    def status(self) -> RegistrationStatus:
        """The current snapshot."""
        return RegistrationStatus(
            self.line_id, self.state, self.last_error, self.expires_at, self.contact_user
        )

    def _set(self, state: RegState, error: str = "") -> None:
        if (state, error) == (self.state, self.last_error):
            return
        self.state, self.last_error = state, error
        if self.on_change is not None:
            self.on_change(self.status)

    # -- driver API ----------------------------------------------------------------------

    def start(self, now: float) -> None:
        """Begin registering now."""
        self.deadline = now
        self._set(RegState.REGISTERING, self.last_error)

    def stop(self, now: float) -> bool:
        """Unregister: True when an ``Expires: 0`` REGISTER is or will be due (then
        :attr:`done` follows its response); False when nothing was registered (done now).

        A REGISTER still in flight is awaited: if it succeeds, the unregister follows.
        """
        self.stopping = True
        if self._in_flight:
            return True
        self._auth = None
        self._auth_tries = 0
        if self.state is RegState.REGISTERED or self.expires_at is not None:
            self.deadline = now
            return True
        self._finish()
        return False

    def abandon(self) -> None:
        """Stop without unregistering (shutdown without network)."""
        self.stopping = True
        self._finish()

    def _finish(self) -> None:
        self.done = True
        self.deadline = INF
        self.expires_at = None
        self._set(RegState.UNREGISTERED)

    def build(self, now: float, *, via_host: str, via_port: int | None, contact: str) -> Request:
        """The next REGISTER. ``contact`` is our ``host:port`` (IPv6 in brackets) as the PBX
        should reach us; the Contact user is :attr:`contact_user`."""
        self.cseq += 1
        self.deadline = INF
        self._in_flight = True
        transport = self.target[2]
        t = "" if transport == "UDP" else f";transport={transport.lower()}"
        expires = 0 if self.stopping else self.expires
        self._sent_unregister = expires == 0
        extra: list[tuple[str, str]] = [("Expires", str(expires))]
        if self._auth is not None:
            extra.append(self._auth)
        extra.append(("User-Agent", "tgsip"))
        routes: tuple[str, ...] = ()
        if self.line.proxy:
            host, port, _ = self.target
            routes = (f"<sip:{_uri_host(host)}:{port};lr{t}>",)
        return new_request(
            "REGISTER",
            self.request_uri,
            f"<{self.aor}>",
            f"<{self.aor}>",
            self.call_id,
            self.cseq,
            via_host,
            via_port=via_port,
            transport=transport,
            contact=f"<sip:{self.contact_user}@{contact}{t}>",
            routes=routes,
            extra_headers=extra,
        )

    def on_response(self, resp: Response, now: float) -> None:
        """Feed the final response to the last REGISTER (provisional ones are ignored)."""
        if resp.status < 200:
            return
        self._in_flight = False
        if self.stopping:
            if not self._sent_unregister:  # stop() came while a REGISTER was in flight
                self._auth = None
                self._auth_tries = 0
                if 200 <= resp.status < 300:
                    self.deadline = now  # bound now: unregister next
                else:
                    self._finish()
                return
            if resp.status in (401, 407) and self._auth_tries == 0 and self._answer(resp):
                self.deadline = now
                return
            self._finish()
            return
        if 200 <= resp.status < 300:
            self._registered(resp, now)
        elif resp.status in (401, 407):
            if self._answer(resp):
                self.deadline = now
            else:
                self._fail(now, f"{resp.status} {resp.reason} (wrong Login or Password?)")
        elif resp.status == 423 and self._interval_tries < 3:
            self._interval_tries += 1
            try:
                minimum = parse_delta_seconds(resp.get("Min-Expires") or "")
            except HeaderError:
                self._fail(now, "423 without a valid Min-Expires")
                return
            self.expires = max(self.expires, minimum)
            self._auth = None
            self._auth_tries = 0
            self.deadline = now
        else:
            retry_after = None
            if resp.status == 503:
                with contextlib.suppress(HeaderError):
                    ra = resp.get("Retry-After")
                    retry_after = parse_delta_seconds(ra.split(";")[0].strip()) if ra else None
            self._fail(now, f"{resp.status} {resp.reason}", retry_after)

    def on_error(self, now: float, error: str) -> None:
        """The REGISTER could not be sent or got no answer (DNS, refused connection)."""
        self._in_flight = False
        if self.stopping:
            self._finish()
            return
        self._fail(now, error)

    # -- internals -----------------------------------------------------------------------

    def _answer(self, resp: Response) -> bool:
        """Prepare credentials for a challenge; False when they already failed."""
        name = "WWW-Authenticate" if resp.status == 401 else "Proxy-Authenticate"
        challenges = resp.get_all(name)
        try:
            chosen = DigestClient.select(challenges)
        except AuthError:
            return False
        if self._auth_tries >= 1 and not chosen.stale:
            return False
        try:
            value = self._client.authorize([chosen], "REGISTER", self.request_uri)
        except AuthError:
            return False
        self._auth_tries += 1
        header = "Authorization" if resp.status == 401 else "Proxy-Authorization"
        self._auth = (header, value)
        return True

    def _granted(self, resp: Response) -> int:
        try:
            for c in resp.contacts or ():
                if c.uri.user == self.contact_user and c.expires is not None:
                    return c.expires
            if resp.expires is not None:
                return resp.expires
        except (SipParseError, ValueError):
            pass
        return self.expires

    def _registered(self, resp: Response, now: float) -> None:
        granted = self._granted(resp)
        self._auth = None
        self._auth_tries = 0
        self._interval_tries = 0
        if granted <= 0:
            self._fail(now, "registrar granted no binding")
            return
        self.failures = 0
        self.expires_at = now + granted
        self.deadline = now + granted * self._rng.uniform(0.5, 0.8)
        self._set(RegState.REGISTERED)

    def _fail(self, now: float, error: str, retry_after: int | None = None) -> None:
        self._auth = None
        self._auth_tries = 0
        self._interval_tries = 0
        delay = min(self.max_backoff, self.min_backoff * 2.0 ** min(self.failures, 30))
        delay *= self._rng.uniform(0.5, 1.0)
        if retry_after is not None:
            delay = max(delay, float(retry_after))
        self.failures += 1
        self.deadline = now + delay
        if self.expires_at is not None and now >= self.expires_at:
            self.expires_at = None
        self._set(RegState.FAILED, error)


def _is_tls(line: SipLine) -> bool:
    return line.transport is Transport.TLS


class _Sender(Protocol):
    """What the shell needs from the user agent (a :class:`tgsip.sip.ua.UserAgent`)."""

    host: str
    ports: dict[str, int]

    async def request(self, req: Request, peer: Peer) -> Response:
        """Send in a client transaction; the final response (408 on timeout)."""
        ...


class RegistrationClient:
    """Runs one :class:`Registration` over a user agent (asyncio task).

    ``ua`` needs ``request(req, peer)``, ``ports`` and ``host``; ``advertised_host`` is the
    address put in Contact (defaults to the UA's host). :attr:`resolved` holds the registrar's
    (or proxy's) IP addresses once resolved, for line matching.
    """

    def __init__(
        self,
        ua: _Sender,
        reg: Registration,
        *,
        advertised_host: str | None = None,
        on_resolved: Callable[[int, frozenset[str]], None] | None = None,
    ) -> None:
        self.ua = ua
        self.reg = reg
        self.advertised_host = advertised_host or ua.host
        self.resolved: frozenset[str] = frozenset()
        self.on_resolved = on_resolved
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the task (registering immediately)."""
        loop = asyncio.get_running_loop()
        self.reg.start(loop.time())
        self._task = loop.create_task(self._run(), name=f"register-line-{self.reg.line_id}")

    async def stop(self, *, unregister: bool = True, timeout: float = 5.0) -> None:
        """Unregister (when registered and ``unregister``) and end the task, bounded."""
        loop = asyncio.get_running_loop()
        if unregister:
            self.reg.stop(loop.time())
        else:
            self.reg.abandon()
        self._wake.set()
        if self._task is None:
            return
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(self._task)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _resolve(self) -> Peer:
        host, port, transport = self.reg.target
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        addrs = [str(i[4][0]) for i in infos]
        if not addrs:
            raise OSError(f"{host} has no address")
        resolved = frozenset(addrs)
        if resolved != self.resolved:
            self.resolved = resolved
            if self.on_resolved is not None:
                self.on_resolved(self.reg.line_id, resolved)
        return Peer(transport, addrs[0], port)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        reg = self.reg
        while not reg.done:
            wait = reg.deadline - loop.time()
            if wait > 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(None if wait == INF else wait):
                        await self._wake.wait()
                continue
            try:
                peer = await self._resolve()
                port = self.ua.ports.get(peer.transport)
                host = self.advertised_host
                contact = f"{_uri_host(host)}:{port}" if port else _uri_host(host)
                req = reg.build(loop.time(), via_host=host, via_port=port, contact=contact)
                async with asyncio.timeout(REQUEST_LIMIT):
                    resp = await self.ua.request(req, peer)
            except TimeoutError:
                reg.on_error(loop.time(), "no answer from the registrar")
                continue
            except (OSError, ValueError) as exc:
                reg.on_error(loop.time(), f"{type(exc).__name__}: {exc}")
                continue
            reg.on_response(resp, loop.time())
            if resp.status == 408 and not reg.done:
                log.info("line %d: registrar did not answer", reg.line_id)
