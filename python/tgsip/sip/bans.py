"""Per-source-IP failure counting and bans for the SIP stack (``sip.md`` §8.3), sans-I/O.

``sip.md`` §8.3 and ``product.md`` §15 ask tgsip to be safe on its own, without a fail2ban or
Kamailio edge in front: failed authentications and requests from untrusted addresses are counted
per source IP, and an IP that fails too often is banned (its packets are then dropped silently
by the caller), with the ban growing on each repeat, trusted networks exempt.

:class:`BanList` is the in-memory table. Time is injected (``now``, seconds); nothing here reads a
clock. When a :class:`BanStore` is attached, ``now`` must be wall-clock epoch seconds, because ban
expiry times are persisted across restarts.

Persistence contract: only bans are persisted, and only when a ban starts or ends (never per
failure). Failure counts live only in memory, so a restart loses partial counts (an attacker gets
at most one fresh window) but keeps every active ban. The repeat count of an active ban is
persisted with it; the repeat history of an IP whose ban has already ended is not.
"""

from __future__ import annotations

import ipaddress
import sqlite3
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

__all__ = [
    "Ban",
    "BanList",
    "BanStore",
    "BanStoreError",
    "IPAddress",
    "IPNetwork",
    "normalize_ip",
    "normalize_network",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
_MAX_DOUBLINGS = 60  # 2**60 times any sane base exceeds any cap; avoids float overflow


def normalize_ip(ip: str | IPAddress) -> IPAddress:
    """Return the canonical address for *ip*.

    IPv4-mapped IPv6 (``::ffff:a.b.c.d``) becomes its IPv4 address, and an IPv6 zone index
    (``fe80::1%eth0``) is dropped, so one host is one table key however it reached us.
    Raises :class:`ValueError` for anything that is not an IP address.
    """
    if type(ip) is ipaddress.IPv4Address:
        return ip
    addr = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
    if isinstance(addr, ipaddress.IPv6Address):
        mapped = addr.ipv4_mapped
        if mapped is not None:
            return mapped
        if addr.scope_id is not None:
            return ipaddress.IPv6Address(addr.packed)
    return addr


def normalize_network(net: str | IPNetwork) -> IPNetwork:
    """Return the canonical network for *net* (IPv4-mapped IPv6 networks become IPv4).

    Host bits must be zero (``ipaddress`` strict parsing); raises :class:`ValueError` otherwise.
    """
    n = ipaddress.ip_network(net) if isinstance(net, str) else net
    if isinstance(n, ipaddress.IPv6Network) and n.prefixlen >= 96 and n.subnet_of(_MAPPED):
        base = ipaddress.IPv4Address(int(n.network_address) & 0xFFFFFFFF)
        return ipaddress.IPv4Network((base, n.prefixlen - 96))
    return n


@dataclass(frozen=True, slots=True)
class Ban:
    """An active ban: *ip* is dropped until *until* (seconds, same clock as ``now``).

    *count* is the repeat number (1 for the first ban since the history was last forgotten);
    *reason* is the reason given with the failure that triggered the ban.
    """

    ip: str
    until: float
    count: int
    reason: str


@dataclass(slots=True)
class _Entry:
    failures: deque[float]
    ban: Ban | None = None
    count: int = 0
    last_ban_end: float | None = None


class BanStoreError(Exception):
    """The ban database cannot be opened, read or written (corrupt file, wrong schema, I/O)."""


_SCHEMA_VERSION = 1


class BanStore:
    """SQLite persistence of active bans (``sip.md`` §8.3: a restart must keep bans).

    The database uses WAL journalling so a write (one row per ban start or end) does not block
    readers and survives a crash. Every :mod:`sqlite3` failure is raised as
    :class:`BanStoreError` naming the file, so a corrupt database is a clear start-up error.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None)
        except sqlite3.Error as exc:
            raise BanStoreError(f"cannot open ban database {self.path}: {exc}") from exc
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, _SCHEMA_VERSION):
                raise BanStoreError(
                    f"ban database {self.path} has schema version {version}, "
                    f"expected {_SCHEMA_VERSION}"
                )
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS bans ("
                "ip TEXT PRIMARY KEY, until REAL NOT NULL, "
                "count INTEGER NOT NULL, reason TEXT NOT NULL)"
            )
            self._db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            self._db.close()
            raise BanStoreError(f"ban database {self.path} is not usable: {exc}") from exc
        except BanStoreError:
            self._db.close()
            raise

    def load(self, now: float) -> list[Ban]:
        """Delete bans that ended at or before *now*, then return the remaining ones."""
        try:
            self._db.execute("DELETE FROM bans WHERE until <= ?", (now,))
            rows = self._db.execute("SELECT ip, until, count, reason FROM bans").fetchall()
        except sqlite3.Error as exc:
            raise BanStoreError(f"cannot read ban database {self.path}: {exc}") from exc
        bans: list[Ban] = []
        for ip, until, count, reason in rows:
            try:
                key = str(normalize_ip(str(ip)))
            except ValueError as exc:
                raise BanStoreError(f"ban database {self.path} holds a bad address {ip!r}") from exc
            if not isinstance(until, int | float) or not isinstance(count, int) or count < 1:
                raise BanStoreError(f"ban database {self.path} holds a bad row for {key}")
            bans.append(Ban(key, float(until), count, str(reason)))
        return bans

    def save(self, ban: Ban) -> None:
        """Insert or replace the row for ``ban.ip``."""
        try:
            self._db.execute(
                "INSERT OR REPLACE INTO bans (ip, until, count, reason) VALUES (?, ?, ?, ?)",
                (ban.ip, ban.until, ban.count, ban.reason),
            )
        except sqlite3.Error as exc:
            raise BanStoreError(f"cannot write ban database {self.path}: {exc}") from exc

    def remove(self, ip: str) -> None:
        """Delete the row for *ip* (no error when there is none)."""
        try:
            self._db.execute("DELETE FROM bans WHERE ip = ?", (ip,))
        except sqlite3.Error as exc:
            raise BanStoreError(f"cannot write ban database {self.path}: {exc}") from exc

    def close(self) -> None:
        """Close the database connection."""
        self._db.close()

    def __enter__(self) -> BanStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@dataclass(slots=True)
class _Params:
    threshold: int
    window: float
    ban_time: float
    max_ban_time: float
    forget_after: float
    max_tracked: int
    exempt: tuple[IPNetwork, ...] = field(default_factory=tuple)


class BanList:
    """Fail2ban-like ban table per source IP (``sip.md`` §8.3, ``product.md`` §15).

    Why: a SIP port on the internet is scanned and brute-forced within minutes; banning an IP
    after repeated failures makes password guessing and toll-fraud probing slow and cheap to
    reject, while trusted networks (a line's PBX, an operator's subnet) are never locked out.

    Contract:

    * :meth:`record_failure` counts one failure (wrong credentials, untrusted source, ...).
      *threshold* failures within a sliding *window* seconds ban the IP. The n-th ban of an IP
      lasts ``ban_time * 2**(n-1)`` seconds, capped at *max_ban_time*. The repeat count restarts
      when *forget_after* seconds passed since the IP's last ban ended. Failures of an IP that is
      banned, or inside an *exempt* network, are ignored.
    * :meth:`is_banned` is the per-packet check: one address normalisation and one dict lookup.
    * At most *max_tracked* IPs are held. A new IP beyond that evicts the least recently seen
      non-banned IP; only when every tracked IP is banned is the ban ending soonest dropped.
      So a flood of spoofed sources costs bounded memory.
    * With a *store*, a ban is written when it starts and deleted when it ends or is lifted
      (:meth:`unban`, expiry seen by :meth:`is_banned`, :meth:`active_bans` or :meth:`prune`).
      The in-memory state changes first, so a :class:`BanStoreError` from the store still leaves
      the ban in force. Call :meth:`restore` once at start-up to load persisted bans.
    """

    def __init__(
        self,
        *,
        threshold: int = 5,
        window: float = 600.0,
        ban_time: float = 3600.0,
        max_ban_time: float = 7 * 86400.0,
        forget_after: float = 7 * 86400.0,
        max_tracked: int = 100_000,
        exempt: Iterable[str | IPNetwork] = (),
        store: BanStore | None = None,
    ) -> None:
        if threshold < 1:
            raise ValueError("threshold must be at least 1")
        if window <= 0 or ban_time <= 0 or forget_after < 0:
            raise ValueError("window and ban_time must be positive, forget_after not negative")
        if max_ban_time < ban_time:
            raise ValueError("max_ban_time must be at least ban_time")
        if max_tracked < 1:
            raise ValueError("max_tracked must be at least 1")
        self._p = _Params(
            threshold=threshold,
            window=window,
            ban_time=ban_time,
            max_ban_time=max_ban_time,
            forget_after=forget_after,
            max_tracked=max_tracked,
            exempt=tuple(normalize_network(n) for n in exempt),
        )
        self._store = store
        # Non-banned entries in least-recently-seen order; banned entries separately, so that
        # eviction of the oldest non-banned entry is O(1).
        self._idle: OrderedDict[IPAddress, _Entry] = OrderedDict()
        self._banned: dict[IPAddress, _Entry] = {}

    # -- queries -------------------------------------------------------------------------

    def __len__(self) -> int:
        """Number of tracked IPs (banned or not); never more than *max_tracked*."""
        return len(self._idle) + len(self._banned)

    @property
    def max_tracked(self) -> int:
        """The configured bound on tracked IPs."""
        return self._p.max_tracked

    def is_exempt(self, ip: str | IPAddress) -> bool:
        """True when *ip* lies in one of the exempt (trusted) networks."""
        addr = normalize_ip(ip)
        return any(addr in net for net in self._p.exempt)

    def is_banned(self, ip: str | IPAddress, now: float) -> bool:
        """True while *ip* is banned at *now*. An expired ban is lifted here. O(1)."""
        addr = normalize_ip(ip)
        entry = self._banned.get(addr)
        if entry is None:
            return False
        ban = entry.ban
        if ban is not None and now < ban.until:
            return True
        self._end_ban(addr, entry, now)
        return False

    def active_bans(self, now: float) -> list[Ban]:
        """All bans in force at *now*, soonest-ending first; expired ones are lifted."""
        out: list[Ban] = []
        for addr, entry in list(self._banned.items()):
            ban = entry.ban
            if ban is not None and now < ban.until:
                out.append(ban)
            else:
                self._end_ban(addr, entry, now)
        out.sort(key=lambda b: (b.until, b.ip))
        return out

    def failures(self, ip: str | IPAddress, now: float) -> int:
        """Failures of *ip* counted inside the window ending at *now*."""
        entry = self._idle.get(normalize_ip(ip))
        if entry is None:
            return 0
        self._slide(entry, now)
        return len(entry.failures)

    # -- updates -------------------------------------------------------------------------

    def record_failure(self, ip: str | IPAddress, now: float, reason: str) -> Ban | None:
        """Count one failure of *ip* at *now*; return the new :class:`Ban` if this one bans it.

        Returns None when the IP is exempt, already banned, or still below the threshold.
        Raises :class:`ValueError` when *ip* is not an IP address.
        """
        addr = normalize_ip(ip)
        if self._p.exempt and any(addr in net for net in self._p.exempt):
            return None
        banned = self._banned.get(addr)
        if banned is not None:
            if banned.ban is not None and now < banned.ban.until:
                return None
            self._end_ban(addr, banned, now)
        entry = self._idle.get(addr)
        if entry is None:
            entry = _Entry(failures=deque(maxlen=self._p.threshold))
            self._make_room()
            self._idle[addr] = entry
        else:
            self._idle.move_to_end(addr)
            self._slide(entry, now)
        entry.failures.append(now)
        if len(entry.failures) < self._p.threshold:
            return None
        return self._start_ban(addr, entry, now, reason)

    def unban(self, ip: str | IPAddress) -> bool:
        """Lift any ban on *ip* and forget its failures and repeat history.

        Returns True when the IP was banned. The store row is deleted as well.
        """
        addr = normalize_ip(ip)
        entry = self._banned.pop(addr, None)
        self._idle.pop(addr, None)
        if entry is None:
            return False
        if self._store is not None:
            self._store.remove(str(addr))
        return True

    def prune(self, now: float) -> int:
        """Housekeeping: lift expired bans and drop idle entries that hold nothing useful.

        An idle entry is useless when it has no failure inside the window and its repeat history
        is forgotten (or it never had one). Returns the number of entries dropped. O(n); meant
        for a periodic timer, not the packet path.
        """
        self.active_bans(now)
        dropped = 0
        for addr, entry in list(self._idle.items()):
            self._slide(entry, now)
            self._forget_if_old(entry, now)
            if not entry.failures and entry.count == 0:
                del self._idle[addr]
                dropped += 1
        return dropped

    def restore(self, now: float) -> list[Ban]:
        """Load the store's bans still in force at *now* into the table (start-up).

        Expired rows are deleted by :meth:`BanStore.load`. A loaded ban keeps its repeat count,
        so the next ban of that IP doubles as if there had been no restart. Returns the bans
        loaded; without a store returns an empty list.
        """
        if self._store is None:
            return []
        loaded = self._store.load(now)
        for ban in loaded:
            addr = normalize_ip(ban.ip)
            if addr in self._banned:
                continue
            self._idle.pop(addr, None)
            self._make_room()
            entry = _Entry(failures=deque(maxlen=self._p.threshold), ban=ban, count=ban.count)
            self._banned[addr] = entry
        return loaded

    # -- internals -----------------------------------------------------------------------

    def _slide(self, entry: _Entry, now: float) -> None:
        horizon = now - self._p.window
        failures = entry.failures
        while failures and failures[0] <= horizon:
            failures.popleft()

    def _forget_if_old(self, entry: _Entry, now: float) -> None:
        if entry.last_ban_end is not None and now - entry.last_ban_end >= self._p.forget_after:
            entry.count = 0
            entry.last_ban_end = None

    def _duration(self, count: int) -> float:
        doublings = min(count - 1, _MAX_DOUBLINGS)
        return min(self._p.max_ban_time, self._p.ban_time * (2.0**doublings))

    def _start_ban(self, addr: IPAddress, entry: _Entry, now: float, reason: str) -> Ban:
        self._forget_if_old(entry, now)
        entry.count += 1
        ban = Ban(str(addr), now + self._duration(entry.count), entry.count, reason)
        entry.ban = ban
        entry.failures.clear()
        del self._idle[addr]
        self._banned[addr] = entry
        if self._store is not None:
            self._store.save(ban)
        return ban

    def _end_ban(self, addr: IPAddress, entry: _Entry, now: float) -> None:
        ban = entry.ban
        entry.last_ban_end = ban.until if ban is not None else now
        entry.ban = None
        del self._banned[addr]
        self._idle[addr] = entry  # most recently seen: keeps its repeat history
        if self._store is not None:
            self._store.remove(str(addr))

    def _make_room(self) -> None:
        """Free one slot if the table is full: oldest idle entry first, else the soonest ban."""
        if len(self) < self._p.max_tracked:
            return
        if self._idle:
            self._idle.popitem(last=False)
            return
        addr = min(self._banned, key=lambda a: _until(self._banned[a]))
        del self._banned[addr]
        if self._store is not None:
            self._store.remove(str(addr))


def _until(entry: _Entry) -> float:
    return entry.ban.until if entry.ban is not None else float("-inf")
