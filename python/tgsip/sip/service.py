"""The SIP side of the gateway: transports, user agent, lines, registrar, registrations, bans.

:class:`SipService` is the I/O shell that joins the sans-I/O parts:

* the :class:`tgsip.sip.ua.UserAgent` (UDP/TCP/TLS) with this service installed as its
  request policy (:mod:`tgsip.sip.policy`);
* :class:`tgsip.sip.registrar.Registrar` for PBX → gateway lines;
* one :class:`tgsip.sip.registration.RegistrationClient` per gateway → PBX line;
* :class:`tgsip.sip.lines.LineTable` deciding which line a request belongs to;
* :class:`tgsip.sip.bans.BanList` (optionally persisted in SQLite): banned sources are dropped
  silently; failed digest answers, untrusted and unknown sources count as failures
  (``product.md`` §15); configured peers of lines (registrar/proxy addresses, IP ⇿ IP
  addresses, explicit Trusted IPs) are exempt.

Lines are applied live with :meth:`SipService.set_lines`, :meth:`SipService.update_line` and
:meth:`SipService.remove_line`, or taken from the configuration store and kept in step with
it by :meth:`SipService.follow`; a gateway → PBX line re-registers when its Login, Password,
Domain, Proxy or transport changes and unregisters when removed or disabled.

Incoming calls: an out-of-dialog INVITE that the policy accepts for a line is handed to
``on_invite(line_id, request, source)`` (``source`` is where responses go). That callback is
called synchronously from the user agent's receive path and must not block; the call layer
answers through the user agent. Outgoing calls: :meth:`SipService.call_target` says where an
INVITE for a line goes (Request-URI, transport peer, Route, extra headers such as Field:Value).

Clock: bans and registrar bindings use wall-clock epoch seconds (bans are persisted).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import ssl
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tgsip.config.lines import LineKind, SipLine, Transport
from tgsip.sip.auth import DigestClient
from tgsip.sip.bans import Ban, BanList, BanStore
from tgsip.sip.headers import quote
from tgsip.sip.lines import LineTable, field_header
from tgsip.sip.message import Request, SipParseError, new_branch, new_request
from tgsip.sip.policy import FORBIDDEN, Accept, Reply
from tgsip.sip.ratelimit import RateLimiter
from tgsip.sip.registrar import Binding, Registrar
from tgsip.sip.registration import (
    Registration,
    RegistrationClient,
    RegistrationStatus,
    RegState,
    split_hostport,
)
from tgsip.sip.transaction import Peer, Timers
from tgsip.sip.ua import UserAgent
from tgsip.sip.uri import UriError, parse_uri

__all__ = ["CallTarget", "LineSource", "LineStatus", "OnInvite", "SipService"]

log = logging.getLogger(__name__)


class LineSource(Protocol):
    """Where lines come from: :class:`tgsip.storage.store.ConfigStore`'s line API."""

    async def list_lines(self, session_id: int | None = None) -> list[SipLine]:
        """Every stored line."""
        ...

    async def get_line(self, line_id: int) -> SipLine | None:
        """One line, None when deleted."""
        ...

    def add_listener(self, callback: Callable[[Any], None]) -> None:
        """``callback(change)`` after each commit; change has ``kind``, ``id``, ``deleted``."""
        ...


OnInvite = Callable[[int, Request, Peer], None]
"""``on_invite(line_id, request, source)``: a new INVITE accepted for ``line_id``."""


@dataclass(frozen=True, slots=True)
class LineStatus:
    """Registration/binding state of one line for the bot.

    PBX → gateway: ``registered`` when the PBX has a live binding, with its ``contact``,
    ``source`` and ``expires_at`` (epoch seconds). Gateway → PBX: ``state`` and
    ``last_error`` of our registration, ``contact`` is our Contact user. IP ⇿ IP: nothing
    to register (``registered`` False, ``state`` None).
    """

    line_id: int
    kind: LineKind
    registered: bool = False
    state: RegState | None = None
    last_error: str = ""
    contact: str = ""
    source: Peer | None = None
    expires_at: float | None = None

    def key(self) -> tuple[object, ...]:
        """What a change notification compares (not the expiry, which moves on refresh)."""
        return (self.registered, self.state, self.last_error, self.contact, self.source)


@dataclass(frozen=True, slots=True)
class CallTarget:
    """Where an INVITE towards a line goes.

    ``request_uri`` and ``to_uri`` for the request, ``peer`` for the transport (the binding's
    flow for PBX → gateway), ``routes`` to put as Route headers, ``headers`` to add (the
    IP ⇿ IP Field:Value), ``from_uri`` the identity to use, ``credentials`` to answer a
    401/407 from the PBX (gateway → PBX lines).
    """

    line_id: int
    request_uri: str
    to_uri: str
    from_uri: str
    peer: Peer
    routes: tuple[str, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    credentials: DigestClient | None = field(default=None, repr=False)


def _reg_params(line: SipLine) -> tuple[object, ...]:
    return (line.login, line.password, line.domain, line.proxy, line.transport, line.enabled)


_TRANSPORT = {Transport.UDP: "UDP", Transport.TCP: "TCP", Transport.TLS: "TLS"}


class SipService:
    """The gateway's SIP endpoint (see the module docstring).

    ``host`` is the bind address, ``advertised_host`` the address put in Contact/Via (defaults
    to ``host``). Ports: ``None`` = transport off, 0 = any free port. ``ban_db`` persists bans.
    ``ban_options`` are passed to :class:`tgsip.sip.bans.BanList`. ``registrar_algorithms``
    is the digest challenge order for PBX → gateway lines: SHA-256 first follows RFC 8760, but
    clients that answer only the topmost challenge and know only MD5 (SIPp 3.6, measured)
    then fail; ``("MD5", "SHA-256")`` serves both kinds. ``rate_limit`` is ``(requests per
    second, burst)`` per untrusted source (:class:`tgsip.sip.ratelimit.RateLimiter`).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        *,
        advertised_host: str | None = None,
        udp_port: int | None = 5060,
        tcp_port: int | None = 5060,
        tls_port: int | None = None,
        tls_server: ssl.SSLContext | None = None,
        tls_client: ssl.SSLContext | None = None,
        realm: str = "tgsip",
        secret: bytes | None = None,
        ban_db: Path | None = None,
        ban_options: dict[str, float] | None = None,
        registration_expires: int = 3600,
        registration_backoff: tuple[float, float] = (5.0, 600.0),
        registrar_expires: tuple[int, int] = (60, 600),
        registrar_algorithms: tuple[str, ...] = ("SHA-256", "MD5"),
        rate_limit: tuple[float, float] | None = (50.0, 200.0),
        timers: Timers | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.host = host
        self.advertised_host = advertised_host or host
        self._ports = (udp_port, tcp_port, tls_port)
        self._tls = (tls_server, tls_client)
        self.clock = clock
        self.ua = UserAgent(host, timers=timers)
        self.ua.request_policy = self
        self.ua.on_invite = self._ua_invite
        self.registrar = Registrar(
            secret or secrets.token_bytes(32),
            realm,
            algorithms=registrar_algorithms,
            min_expires=registrar_expires[0],
            max_expires=registrar_expires[1],
            default_expires=registrar_expires[1],
        )
        self.table = LineTable(self.registrar)
        self._ban_store = BanStore(ban_db) if ban_db is not None else None
        opts = dict(ban_options or {})
        self.bans = BanList(
            threshold=int(opts.pop("threshold", 5)),
            window=opts.pop("window", 600.0),
            ban_time=opts.pop("ban_time", 1800.0),
            max_ban_time=opts.pop("max_ban_time", 86400.0),
            forget_after=opts.pop("forget_after", 86400.0),
            store=self._ban_store,
        )
        if opts:
            raise ValueError(f"unknown ban options {sorted(opts)}")
        self.registration_expires = registration_expires
        self.registration_backoff = registration_backoff
        self.on_invite: OnInvite | None = None
        self.stats: dict[str, int] = {
            "dropped_banned": 0,
            "rate_limited": 0,
            "failures": 0,
            "bans": 0,
        }
        self.limiter = RateLimiter(*rate_limit) if rate_limit is not None else None
        """Per-source request rate limit (None: off)."""
        self._registrations: dict[int, RegistrationClient] = {}
        self._accepted: OrderedDict[tuple[str, str], tuple[int, Peer]] = OrderedDict()
        self._failure_keys: OrderedDict[tuple[str, ...], None] = OrderedDict()
        self._line_listeners: list[Callable[[LineStatus], None]] = []
        self._ban_listeners: list[Callable[[Ban, int | None], None]] = []
        self._targets: OrderedDict[str, int] = OrderedDict()
        self._last: dict[int, tuple[object, ...]] = {}
        self._housekeeping: asyncio.Task[None] | None = None
        self._hk_wake = asyncio.Event()
        self._started = False
        self._store: LineSource | None = None
        self._changes: asyncio.Queue[tuple[int, bool]] = asyncio.Queue()
        self._follower: asyncio.Task[None] | None = None

    # -- life cycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Load persisted bans, open the transports and start housekeeping."""
        self.bans.restore(self.clock())
        udp, tcp, tls = self._ports
        await self.ua.start(
            udp_port=udp,
            tcp_port=tcp,
            tls_port=tls,
            tls_server=self._tls[0],
            tls_client=self._tls[1],
        )
        self._started = True
        self._housekeeping = asyncio.get_running_loop().create_task(self._housekeep())
        for client in self._registrations.values():
            if client.reg.state is RegState.UNREGISTERED and not client.reg.done:
                client.start()

    async def stop(self, *, unregister: bool = True) -> None:
        """Unregister every gateway → PBX line (bounded), close the transports and the ban
        database. A stopped service is not started again: make a new one (bans persist)."""
        await asyncio.gather(*(c.stop(unregister=unregister) for c in self._registrations.values()))
        self._registrations.clear()
        for task in (self._follower, self._housekeeping):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._follower = self._housekeeping = None
        await self.ua.close()
        if self._ban_store is not None:
            self._ban_store.close()
        self._started = False

    @property
    def ports(self) -> dict[str, int]:
        """Bound ports by transport name (``UDP``, ``TCP``, ``TLS``)."""
        return self.ua.ports

    # -- lines ---------------------------------------------------------------------------

    async def set_lines(self, lines: Iterable[SipLine]) -> None:
        """Apply the complete list of lines (removed ones are unregistered/forgotten)."""
        new = {line.id: line for line in lines}
        for line_id in list(self.table.lines):
            if line_id not in new or not new[line_id].enabled:
                await self.remove_line(line_id)
        for line in new.values():
            await self.update_line(line)

    async def update_line(self, line: SipLine) -> None:
        """Add or change one line, live."""
        if not line.enabled:
            await self.remove_line(line.id)
            return
        old = self.table.lines.get(line.id)
        if self.registrar.set_line(line):
            self._notify(line.id)
        self.table.update_line(line)
        if line.kind is LineKind.GATEWAY_TO_PBX:
            client = self._registrations.get(line.id)
            if client is None or old is None or _reg_params(old) != _reg_params(line):
                if client is not None:
                    await client.stop()
                self._start_registration(line)
        else:
            client = self._registrations.pop(line.id, None)
            if client is not None:
                await client.stop()
        if line.kind is LineKind.IP_IP:
            await self._resolve_address(line)
        self._notify(line.id)

    async def remove_line(self, line_id: int) -> None:
        """Forget a line; a gateway → PBX line unregisters first (bounded)."""
        client = self._registrations.pop(line_id, None)
        if client is not None:
            await client.stop()
        self.table.remove_line(line_id)
        self._last.pop(line_id, None)

    def _start_registration(self, line: SipLine) -> None:
        reg = Registration(
            line,
            expires=self.registration_expires,
            min_backoff=self.registration_backoff[0],
            max_backoff=self.registration_backoff[1],
            on_change=self._on_registration,
        )
        self.table.set_contact_user(line.id, reg.contact_user)
        client = RegistrationClient(
            self.ua, reg, advertised_host=self.advertised_host, on_resolved=self._on_resolved
        )
        self._registrations[line.id] = client
        if self._started:
            client.start()

    def _on_registration(self, status: RegistrationStatus) -> None:
        reg = self.registration(status.line_id)
        alg = reg.last_algorithm if reg is not None else None
        log.info(
            "line %d registration %s %s (digest %s)",
            status.line_id,
            status.state.value,
            status.last_error,
            alg or "none",
        )
        self._notify(status.line_id)

    def _on_resolved(self, line_id: int, addrs: frozenset[str]) -> None:
        self.table.set_addresses(line_id, addrs)

    async def _resolve_address(self, line: SipLine) -> None:
        try:
            host, port = split_hostport(line.address, 5060)
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        except (OSError, ValueError) as exc:
            log.warning("line %d: cannot resolve its Address: %s", line.id, exc)
            return
        self.table.set_addresses(line.id, (str(i[4][0]) for i in infos))

    async def follow(self, store: LineSource) -> None:
        """Apply every line of the configuration store now, then each committed change
        (created, updated, deleted line) live, in order, from a worker task.

        ``store`` is a :class:`tgsip.storage.store.ConfigStore` (or anything with the same
        ``list_lines``/``get_line``/``add_listener``).
        """
        self._store = store
        await self.set_lines(await store.list_lines())
        store.add_listener(self._on_config_change)
        if self._follower is None:
            self._follower = asyncio.get_running_loop().create_task(self._follow())

    def _on_config_change(self, change: Any) -> None:
        if getattr(change, "kind", None) == "line":
            self._changes.put_nowait((int(change.id), bool(change.deleted)))

    async def _follow(self) -> None:
        while True:
            line_id, deleted = await self._changes.get()
            try:
                line = (
                    None if deleted or self._store is None else await self._store.get_line(line_id)
                )
                if line is None:
                    await self.remove_line(line_id)
                else:
                    await self.update_line(line)
            except Exception:
                log.exception("applying the change of line %d failed", line_id)
            finally:
                self._changes.task_done()

    async def settled(self) -> None:
        """Wait until every configuration change seen so far is applied."""
        await self._changes.join()

    def registration(self, line_id: int) -> Registration | None:
        """The registration of a gateway → PBX line (for its state), or None."""
        client = self._registrations.get(line_id)
        return client.reg if client is not None else None

    # -- state for the bot ---------------------------------------------------------------

    def line_status(self, line_id: int) -> LineStatus | None:
        """The current state of a line, or None for an unknown/disabled line."""
        line = self.table.lines.get(line_id)
        if line is None:
            return None
        now = self.clock()
        if line.kind is LineKind.PBX_TO_GATEWAY:
            b: Binding | None = self.registrar.binding(line_id, now)
            if b is None:
                return LineStatus(line_id, line.kind)
            return LineStatus(
                line_id,
                line.kind,
                True,
                contact=b.contact,
                source=b.source,
                expires_at=b.expires_at,
            )
        if line.kind is LineKind.GATEWAY_TO_PBX:
            client = self._registrations.get(line_id)
            if client is None:
                return LineStatus(line_id, line.kind, state=RegState.UNREGISTERED)
            reg = client.reg
            exp = None
            if reg.expires_at is not None:
                exp = now + (reg.expires_at - asyncio.get_running_loop().time())
            return LineStatus(
                line_id,
                line.kind,
                reg.state is RegState.REGISTERED,
                reg.state,
                reg.last_error,
                reg.contact_user,
                expires_at=exp,
            )
        return LineStatus(line_id, line.kind)

    def add_line_listener(self, cb: Callable[[LineStatus], None]) -> None:
        """``cb(status)`` on every change of a line's registration/binding state."""
        self._line_listeners.append(cb)

    def add_ban_listener(self, cb: Callable[[Ban, int | None], None]) -> None:
        """``cb(ban, line_id)`` once when a source IP gets banned; ``line_id`` is the line its
        last failed attempt claimed (whose administrator to notify), or None (unknown)."""
        self._ban_listeners.append(cb)

    def _notify(self, line_id: int) -> None:
        try:
            status = self.line_status(line_id)
        except RuntimeError:  # no running loop (set up before start)
            return
        if status is None:
            return
        key = status.key()
        if self._last.get(line_id) == key:
            return
        self._last[line_id] = key
        for cb in self._line_listeners:
            try:
                cb(status)
            except Exception:
                log.exception("line listener failed")

    # -- policy (tgsip.sip.policy.RequestPolicy) ------------------------------------------

    def admit(self, request: Request, source: Peer) -> bool:
        """Drop banned, flooding and unknown sources silently (counting the unknown ones).

        Configured peers are never limited; nor are sources with a registrar binding (an
        authenticated PBX). Others above the request rate are dropped, and each second of
        flooding counts one failure towards a ban.
        """
        ip = source.host
        if self.table.is_trusted(ip):
            return True
        now = self.clock()
        if self.bans.is_banned(ip, now):
            self.stats["dropped_banned"] += 1
            return False
        limiter = self.limiter
        if (
            limiter is not None
            and not limiter.allow(ip, now)
            and self.registrar.line_bound_from(ip) is None
        ):
            self.stats["rate_limited"] += 1
            self._count_once((ip, "flood", str(int(now))), ip, "request flood")
            return False
        if request.method == "REGISTER":
            ok = self.registrar.serves(ip)
        else:
            ok = self.table.known_source(ip)
        if not ok:
            self._failure(request, ip, "untrusted source")
        return ok

    def decide(self, request: Request, source: Peer) -> Reply | Accept:
        """Registrar, digest challenge and line matching for a new out-of-dialog request."""
        now = self.clock()
        if request.method == "REGISTER":
            res = self.registrar.register(request, source, now)
            if res.failure:
                self._failure(request, source.host, res.failure, res.target)
            if res.changed is not None:
                self._hk_wake.set()  # a new expiry to watch
                self._notify(res.changed)
            return Reply(res.status, res.reason, res.headers)
        m = self.table.match(request, source, now)
        if m.failure:
            self._failure(request, source.host, m.failure, m.target)
        if m.accepted:
            assert m.line_id is not None
            if request.method == "INVITE":
                key = (request.call_id, request.from_.tag or "")
                self._accepted[key] = (m.line_id, source)
                while len(self._accepted) > 4096:
                    self._accepted.popitem(last=False)
            return Accept(m.line_id)
        if m.status:
            return Reply(m.status, m.reason, m.headers)
        return FORBIDDEN

    def _failure(self, request: Request, ip: str, reason: str, target: int | None = None) -> None:
        """Count one failure per request (UDP retransmissions are not counted again).

        ``target`` is the line the request claimed; the last one per IP goes with the ban.
        """
        if self.table.is_trusted(ip):
            return
        key: tuple[str, ...]
        try:
            key = (ip, request.call_id, str(request.cseq.number), request.method)
        except (SipParseError, ValueError):
            key = (ip, str(id(request)))
        self._count_once(key, ip, reason, target)

    def _count_once(
        self, key: tuple[str, ...], ip: str, reason: str, target: int | None = None
    ) -> None:
        """Record a failure of ``ip`` unless ``key`` was already counted (bounded memory)."""
        if key in self._failure_keys:
            return
        self._failure_keys[key] = None
        while len(self._failure_keys) > 4096:
            self._failure_keys.popitem(last=False)
        self.stats["failures"] += 1
        if target is not None:
            self._targets[ip] = target
            self._targets.move_to_end(ip)
            while len(self._targets) > 4096:
                self._targets.popitem(last=False)
        try:
            ban = self.bans.record_failure(ip, self.clock(), reason)
        except ValueError:
            return
        log.info("SIP failure from %s: %s", ip, reason)
        if ban is not None:
            self.stats["bans"] += 1
            log.warning("banned %s until %.0f (ban #%d: %s)", ban.ip, ban.until, ban.count, reason)
            line_id = self._targets.pop(ip, None)
            for cb in self._ban_listeners:
                try:
                    cb(ban, line_id)
                except Exception:
                    log.exception("ban listener failed")

    def line(self, line_id: int) -> SipLine | None:
        """The enabled line ``line_id`` (codecs, DTMF methods, dial rules for the call layer)."""
        return self.table.lines.get(line_id)

    def line_of(self, request: Request) -> int | None:
        """The line an accepted, not yet dispatched INVITE belongs to (for hooks that run
        before ``on_invite``, such as choosing the media policy), else None."""
        try:
            key = (request.call_id, request.from_.tag or "")
        except (SipParseError, ValueError):
            return None
        got = self._accepted.get(key)
        return got[0] if got is not None else None

    def _ua_invite(self, request: Request) -> None:
        try:
            key = (request.call_id, request.from_.tag or "")
        except (SipParseError, ValueError):
            return
        got = self._accepted.pop(key, None)
        if got is None or self.on_invite is None:
            return
        self.on_invite(got[0], request, got[1])

    # -- outgoing calls ------------------------------------------------------------------

    async def call_target(self, line_id: int, number: str) -> CallTarget | None:
        """Where an INVITE to ``number`` on a line goes; None when the line cannot be called
        now (unknown line, PBX not registered, address unresolvable)."""
        line = self.table.lines.get(line_id)
        if line is None:
            return None
        adv = f"[{self.advertised_host}]" if ":" in self.advertised_host else self.advertised_host
        ours = f"sip:tgsip@{adv}"
        if line.kind is LineKind.PBX_TO_GATEWAY:
            b = self.registrar.binding(line_id, self.clock())
            if b is None:
                return None
            try:
                c = parse_uri(b.contact)
                host = c.host + (f":{c.port}" if c.port is not None else "")
            except UriError:
                return None
            to = f"sip:{number}@{host}" if number else b.contact
            return CallTarget(line_id, b.contact, to, ours, b.source)
        transport = _TRANSPORT[line.transport]
        default_port = 5061 if transport == "TLS" else 5060
        try:
            if line.kind is LineKind.GATEWAY_TO_PBX:
                dom_host, _ = split_hostport(line.domain, default_port)
                hop = line.proxy or line.domain
                dom = line.domain
                creds: DigestClient | None = DigestClient(line.login, line.password)
                frm = f"sip:{line.login}@{dom_host}"
            else:
                hop = dom = line.address
                creds, frm = None, ours
            host, port = split_hostport(hop, default_port)
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        except (OSError, ValueError) as exc:
            log.warning("line %d: cannot reach its PBX: %s", line_id, exc)
            return None
        if not infos:
            return None
        peer = Peer(transport, str(infos[0][4][0]), port)
        t = "" if transport == "UDP" else f";transport={transport.lower()}"
        uri = f"sip:{number}@{dom}{t}"
        routes: tuple[str, ...] = ()
        if line.kind is LineKind.GATEWAY_TO_PBX and line.proxy:
            routes = (f"<sip:{line.proxy};lr{t}>",)
        headers: tuple[tuple[str, str], ...] = ()
        fv = field_header(line.field_value) if line.kind is LineKind.IP_IP else None
        if fv is not None:
            headers = (fv,)
        return CallTarget(line_id, uri, f"sip:{number}@{dom}", frm, peer, routes, headers, creds)

    def build_invite(
        self,
        target: CallTarget,
        body: bytes,
        *,
        display_name: str | None = None,
        caller: str | None = None,
        extra_headers: Iterable[tuple[str, str]] = (),
    ) -> Request:
        """An out-of-dialog INVITE for ``target``: its Request-URI, To, Route set and extra
        headers (the IP ⇿ IP Field:Value), our Via and Contact for its transport, From =
        ``target.from_uri`` (its user replaced by ``caller`` when given) with ``display_name``.
        Send it with ``self.ua.request(invite, target.peer)``.
        """
        transport = target.peer.transport
        port = self.ua.ports.get(transport)
        adv = f"[{self.advertised_host}]" if ":" in self.advertised_host else self.advertised_host
        t = "" if transport == "UDP" else f";transport={transport.lower()}"
        frm = target.from_uri
        if caller:
            frm = f"sip:{caller}@{frm.split('@', 1)[-1]}"
        from_ = f"<{frm}>" if display_name is None else f"{quote(display_name)} <{frm}>"
        return new_request(
            "INVITE",
            target.request_uri,
            from_,
            f"<{target.to_uri}>",
            new_branch()[7:] + "@tgsip",
            1,
            self.advertised_host,
            via_port=port,
            transport=transport,
            contact=f"<sip:tgsip@{adv}:{port}{t}>" if port else f"<sip:tgsip@{adv}{t}>",
            routes=target.routes,
            body=body,
            extra_headers=(*target.headers, *extra_headers),
        )

    # -- housekeeping --------------------------------------------------------------------

    async def _housekeep(self) -> None:
        """Expire bindings (notifying listeners) and prune the ban table."""
        while True:
            now = self.clock()
            for line_id in self.registrar.expire(now):
                self._notify(line_id)
            self.bans.prune(now)
            nxt = self.registrar.next_expiry()
            wait = 30.0 if nxt is None else min(30.0, max(0.05, nxt - now))
            self._hk_wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._hk_wake.wait()
