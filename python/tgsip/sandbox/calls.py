"""Private (1:1) calls in the sandbox world: the server side of Telegram's call state machine.

Protocol-neutral (no TL objects) and clock-free: every transition takes ``now`` (unix seconds)
from the caller. Calls and their history live in the world's SQLite database (tables ``calls``
and ``call_events``), so a restarted sandbox still lists them; calls that were still ringing
or running when the database was closed are ended as ``disconnect`` on the next open.

States (spec telegram_calls.md §1.2): ``requested`` (the caller sees phoneCallWaiting, the
callee phoneCallRequested) -> ``accepted`` (the callee sent g_b) -> ``active`` (the caller
revealed g_a; both see phoneCall) -> ``discarded``. Failures raise :class:`CallError` carrying
Telegram's error name.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

from tgsip.sandbox import crypto

# Telegram's 2048-bit safe prime and g = 3 (spec §2), the same ones the SRP code uses.
DH_PRIME = crypto.DH_PRIME
DH_G = crypto.DH_G
DH_VERSION = 3

# Timeouts published in help.getConfig (milliseconds) and enforced here (ring, connect).
CALL_RECEIVE_TIMEOUT_MS = 20_000
CALL_RING_TIMEOUT_MS = 90_000
CALL_CONNECT_TIMEOUT_MS = 30_000
CALL_PACKET_TIMEOUT_MS = 10_000

MIN_LAYER = 65
"""The oldest call protocol layer Telegram still accepts (libtgvoip's first public layer)."""
MAX_SIGNALING_BYTES = 65_536
MAX_DEBUG_BYTES = 65_536
_RANGE_MARGIN = 1 << (2048 - 64)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, id INTEGER NOT NULL UNIQUE,
  access_hash INTEGER NOT NULL, admin_id INTEGER NOT NULL,
  participant_id INTEGER NOT NULL, admin_key INTEGER NOT NULL, participant_key INTEGER,
  random_id INTEGER NOT NULL, date INTEGER NOT NULL, state TEXT NOT NULL,
  video INTEGER NOT NULL, g_a_hash BLOB NOT NULL, g_a BLOB, g_b BLOB, key_fingerprint INTEGER,
  admin_protocol TEXT NOT NULL, participant_protocol TEXT, receive_date INTEGER,
  accept_date INTEGER, start_date INTEGER, end_date INTEGER, reason TEXT,
  duration INTEGER NOT NULL DEFAULT 0, discarded_by INTEGER, p2p_allowed INTEGER,
  peer_tag BLOB NOT NULL, admin_rating INTEGER, participant_rating INTEGER,
  admin_comment TEXT, participant_comment TEXT, UNIQUE (admin_id, random_id)
);
CREATE INDEX IF NOT EXISTS calls_admin ON calls (admin_id);
CREATE INDEX IF NOT EXISTS calls_participant ON calls (participant_id);
CREATE TABLE IF NOT EXISTS call_events (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, call_id INTEGER NOT NULL, at INTEGER NOT NULL,
  kind TEXT NOT NULL, actor INTEGER, detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS call_events_call ON call_events (call_id, seq);
"""


class CallState(StrEnum):
    REQUESTED = "requested"
    ACCEPTED = "accepted"
    ACTIVE = "active"
    DISCARDED = "discarded"


class DiscardReason(StrEnum):
    MISSED = "missed"
    DISCONNECT = "disconnect"
    HANGUP = "hangup"
    BUSY = "busy"


@dataclass(frozen=True)
class TurnServer:
    """A TURN server handed to callers as phoneConnectionWebrtc (configuration only)."""

    host: str
    port: int
    username: str
    password: str


class CallError(Exception):
    """A call request broke a rule; ``name`` and ``code`` are Telegram's rpc_error values."""

    def __init__(self, name: str, code: int = 400) -> None:
        super().__init__(f"{code} {name}")
        self.name = name
        self.code = code


@dataclass(frozen=True)
class CallProtocol:
    """phoneCallProtocol: layer range, UDP modes and tgcalls library versions (spec §3)."""

    min_layer: int
    max_layer: int
    library_versions: tuple[str, ...]
    udp_p2p: bool = True
    udp_reflector: bool = True

    def check(self) -> None:
        """Raise CALL_PROTOCOL_FLAGS_INVALID / CALL_PROTOCOL_LAYER_INVALID for a bad offer."""
        if not (self.udp_p2p or self.udp_reflector):
            raise CallError("CALL_PROTOCOL_FLAGS_INVALID")
        if self.min_layer > self.max_layer or self.max_layer < MIN_LAYER or self.min_layer < 0:
            raise CallError("CALL_PROTOCOL_LAYER_INVALID")

    def merge(self, other: CallProtocol) -> CallProtocol | None:
        """Both sides' common protocol (versions in this side's order), None if none."""
        versions = tuple(v for v in self.library_versions if v in other.library_versions)
        low = max(self.min_layer, other.min_layer)
        high = min(self.max_layer, other.max_layer)
        if not versions or low > high:
            return None
        return CallProtocol(
            low,
            high,
            versions,
            self.udp_p2p and other.udp_p2p,
            self.udp_reflector and other.udp_reflector,
        )

    def to_json(self) -> str:
        return json.dumps(
            [
                self.min_layer,
                self.max_layer,
                list(self.library_versions),
                self.udp_p2p,
                self.udp_reflector,
            ]
        )

    @staticmethod
    def from_json(raw: str) -> CallProtocol:
        low, high, versions, p2p, reflector = json.loads(raw)
        return CallProtocol(int(low), int(high), tuple(versions), bool(p2p), bool(reflector))


@dataclass(frozen=True)
class Call:
    """One private call as the server stores it. Dates are unix seconds (sandbox clock)."""

    id: int
    access_hash: int
    admin_id: int
    """The caller."""
    participant_id: int
    """The callee."""
    admin_key: int
    """The caller's auth key id (signed); only it receives the caller's updates."""
    participant_key: int | None
    """The callee's auth key that accepted (None while ringing)."""
    random_id: int
    date: int
    state: CallState
    video: bool
    g_a_hash: bytes
    g_a: bytes | None
    g_b: bytes | None
    key_fingerprint: int | None
    admin_protocol: CallProtocol
    participant_protocol: CallProtocol | None
    receive_date: int | None
    accept_date: int | None
    start_date: int | None
    end_date: int | None
    reason: DiscardReason | None
    duration: int
    discarded_by: int | None
    """Who hung up (a user id), or None when the server ended the call."""
    p2p_allowed: bool | None
    peer_tag: bytes
    """The 16-byte reflector tag of this call (phoneConnection.peer_tag)."""
    admin_rating: int | None
    participant_rating: int | None
    admin_comment: str | None
    participant_comment: str | None

    @property
    def protocol(self) -> CallProtocol | None:
        """The agreed protocol (caller's version order), once the callee has accepted."""
        if self.participant_protocol is None:
            return None
        return self.admin_protocol.merge(self.participant_protocol)

    @property
    def need_rating(self) -> bool:
        """Telegram asks for a rating after a call that actually started."""
        return self.start_date is not None

    def other(self, user_id: int) -> int:
        return self.participant_id if user_id == self.admin_id else self.admin_id

    def is_party(self, user_id: int) -> bool:
        return user_id in (self.admin_id, self.participant_id)


@dataclass(frozen=True)
class CallEvent:
    """One entry of a call's history (``kind`` such as requested, received, signaling)."""

    call_id: int
    at: int
    kind: str
    actor: int | None
    detail: str


def _signed64(value: int) -> int:
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


def check_dh_value(value: bytes) -> bool:
    """True for a 256-byte g_a / g_b within the safe range of spec §2 step 3."""
    if len(value) != 256:
        return False
    x = int.from_bytes(value, "big")
    return _RANGE_MARGIN < x < DH_PRIME - _RANGE_MARGIN


class CallStore:
    """The call table of one world database. Not thread-safe (asyncio only)."""

    def __init__(self, db: sqlite3.Connection, now: int) -> None:
        self._db = db
        self._db.executescript(_SCHEMA)
        for call in self._unfinished():
            self._end(call, DiscardReason.DISCONNECT, None, now, "restart")

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # --- reading -----------------------------------------------------------------------

    @staticmethod
    def _call(row: sqlite3.Row) -> Call:
        pp = row["participant_protocol"]
        return Call(
            id=row["id"],
            access_hash=row["access_hash"],
            admin_id=row["admin_id"],
            participant_id=row["participant_id"],
            admin_key=row["admin_key"],
            participant_key=row["participant_key"],
            random_id=row["random_id"],
            date=row["date"],
            state=CallState(row["state"]),
            video=bool(row["video"]),
            g_a_hash=bytes(row["g_a_hash"]),
            g_a=bytes(row["g_a"]) if row["g_a"] is not None else None,
            g_b=bytes(row["g_b"]) if row["g_b"] is not None else None,
            key_fingerprint=row["key_fingerprint"],
            admin_protocol=CallProtocol.from_json(row["admin_protocol"]),
            participant_protocol=CallProtocol.from_json(pp) if pp is not None else None,
            receive_date=row["receive_date"],
            accept_date=row["accept_date"],
            start_date=row["start_date"],
            end_date=row["end_date"],
            reason=DiscardReason(row["reason"]) if row["reason"] is not None else None,
            duration=row["duration"],
            discarded_by=row["discarded_by"],
            p2p_allowed=bool(row["p2p_allowed"]) if row["p2p_allowed"] is not None else None,
            peer_tag=bytes(row["peer_tag"]),
            admin_rating=row["admin_rating"],
            participant_rating=row["participant_rating"],
            admin_comment=row["admin_comment"],
            participant_comment=row["participant_comment"],
        )

    def get(self, call_id: int) -> Call | None:
        row = self._db.execute("SELECT * FROM calls WHERE id = ?", (call_id,)).fetchone()
        return self._call(row) if row else None

    def of_user(self, user_id: int) -> list[Call]:
        """Every call ``user_id`` made or received, newest first."""
        rows = self._db.execute(
            "SELECT * FROM calls WHERE admin_id = ? OR participant_id = ? ORDER BY seq DESC",
            (user_id, user_id),
        ).fetchall()
        return [self._call(r) for r in rows]

    def ongoing_of(self, user_id: int) -> list[Call]:
        """``user_id``'s calls that are ringing, being set up or running."""
        rows = self._db.execute(
            "SELECT * FROM calls WHERE (admin_id = ? OR participant_id = ?) AND state != ?",
            (user_id, user_id, CallState.DISCARDED.value),
        ).fetchall()
        return [self._call(r) for r in rows]

    def active_calls(self) -> list[Call]:
        """Calls whose media runs now (state ``active``)."""
        rows = self._db.execute(
            "SELECT * FROM calls WHERE state = ?", (CallState.ACTIVE.value,)
        ).fetchall()
        return [self._call(r) for r in rows]

    def _unfinished(self) -> list[Call]:
        rows = self._db.execute(
            "SELECT * FROM calls WHERE state != ?", (CallState.DISCARDED.value,)
        ).fetchall()
        return [self._call(r) for r in rows]

    def events(self, call_id: int) -> list[CallEvent]:
        """The call's history, oldest first."""
        rows = self._db.execute(
            "SELECT * FROM call_events WHERE call_id = ? ORDER BY seq", (call_id,)
        ).fetchall()
        return [CallEvent(r["call_id"], r["at"], r["kind"], r["actor"], r["detail"]) for r in rows]

    def log(self, call_id: int, now: int, kind: str, actor: int | None, detail: str = "") -> None:
        self._db.execute(
            "INSERT INTO call_events (call_id, at, kind, actor, detail) VALUES (?, ?, ?, ?, ?)",
            (call_id, now, kind, actor, detail),
        )

    def party_call(self, call_id: int, access_hash: int, user_id: int) -> Call:
        """The call ``inputPhoneCall(call_id, access_hash)`` names, if ``user_id`` is in it.

        Raises CALL_PEER_INVALID for an unknown id, a wrong access hash or someone else's call.
        """
        call = self.get(call_id)
        if call is None or call.access_hash != access_hash or not call.is_party(user_id):
            raise CallError("CALL_PEER_INVALID")
        return call

    # --- transitions -------------------------------------------------------------------

    def request(
        self,
        admin_id: int,
        admin_key: int,
        participant_id: int,
        random_id: int,
        g_a_hash: bytes,
        protocol: CallProtocol,
        video: bool,
        now: int,
    ) -> Call:
        """phone.requestCall after the caller-side checks; the new call rings (or is busy).

        A callee already in a call gets nothing: the new call is discarded at once as busy.
        """
        protocol.check()
        if len(g_a_hash) != 32:
            raise CallError("DH_G_A_INVALID")
        dup = self._db.execute(
            "SELECT 1 FROM calls WHERE admin_id = ? AND random_id = ?", (admin_id, random_id)
        ).fetchone()
        if dup is not None:
            raise CallError("RANDOM_ID_DUPLICATE", 500)
        busy = bool(self.ongoing_of(participant_id))
        call_id = _signed64(secrets.randbits(64)) or 1
        with self._transaction():
            self._db.execute(
                "INSERT INTO calls (id, access_hash, admin_id, participant_id, admin_key, "
                "random_id, date, state, video, g_a_hash, admin_protocol, peer_tag) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    call_id,
                    _signed64(secrets.randbits(64)),
                    admin_id,
                    participant_id,
                    _signed64(admin_key),
                    random_id,
                    now,
                    CallState.REQUESTED.value,
                    int(video),
                    g_a_hash,
                    protocol.to_json(),
                    secrets.token_bytes(16),
                ),
            )
            self.log(call_id, now, "requested", admin_id, ",".join(protocol.library_versions))
        call = self.get(call_id)
        assert call is not None
        if busy:
            call = self._end(call, DiscardReason.BUSY, None, now, "busy")
        return call

    def received(self, call: Call, user_id: int, now: int) -> tuple[Call, bool]:
        """phone.receivedCall by the callee; returns (call, whether receive_date was new)."""
        if user_id != call.participant_id:
            raise CallError("CALL_PEER_INVALID")
        if call.state is CallState.DISCARDED:
            raise CallError("CALL_ALREADY_DECLINED")
        if call.receive_date is not None or call.state is not CallState.REQUESTED:
            return call, False
        self._db.execute("UPDATE calls SET receive_date = ? WHERE id = ?", (now, call.id))
        self.log(call.id, now, "received", user_id)
        return self._reload(call), True

    def accept(
        self, call: Call, user_id: int, key_id: int, g_b: bytes, protocol: CallProtocol, now: int
    ) -> Call:
        """phone.acceptCall by the callee (g_b checked against the range of spec §2)."""
        if user_id != call.participant_id:
            raise CallError("CALL_PEER_INVALID")
        if call.state is CallState.DISCARDED:
            raise CallError("CALL_ALREADY_DECLINED")
        if call.state is not CallState.REQUESTED:
            raise CallError("CALL_ALREADY_ACCEPTED")
        protocol.check()
        if not check_dh_value(g_b):
            raise CallError("DH_G_B_INVALID")
        if call.admin_protocol.merge(protocol) is None:
            raise CallError("CALL_PROTOCOL_COMPAT_LAYER_INVALID", 406)
        if any(
            c.id != call.id and c.state is not CallState.REQUESTED for c in self.ongoing_of(user_id)
        ):
            raise CallError("CALL_OCCUPY_FAILED", 500)
        self._db.execute(
            "UPDATE calls SET state = ?, g_b = ?, participant_protocol = ?, participant_key = ?, "
            "accept_date = ?, receive_date = COALESCE(receive_date, ?) WHERE id = ?",
            (
                CallState.ACCEPTED.value,
                g_b,
                protocol.to_json(),
                _signed64(key_id),
                now,
                now,
                call.id,
            ),
        )
        self.log(call.id, now, "accepted", user_id, ",".join(protocol.library_versions))
        return self._reload(call)

    def confirm(
        self,
        call: Call,
        user_id: int,
        g_a: bytes,
        key_fingerprint: int,
        p2p_allowed: bool,
        now: int,
    ) -> Call:
        """phone.confirmCall by the caller: g_a must hash to the g_a_hash it sent (spec §2)."""
        if user_id != call.admin_id:
            raise CallError("CALL_PEER_INVALID")
        if call.state is CallState.DISCARDED:
            raise CallError("CALL_ALREADY_DECLINED")
        if call.state is CallState.ACTIVE:
            raise CallError("CALL_ALREADY_ACCEPTED")
        if call.state is not CallState.ACCEPTED:
            raise CallError("CALL_PEER_INVALID")
        if not check_dh_value(g_a) or hashlib.sha256(g_a).digest() != call.g_a_hash:
            raise CallError("DH_G_A_INVALID")
        self._db.execute(
            "UPDATE calls SET state = ?, g_a = ?, key_fingerprint = ?, p2p_allowed = ?, "
            "start_date = ? WHERE id = ?",
            (CallState.ACTIVE.value, g_a, key_fingerprint, int(p2p_allowed), now, call.id),
        )
        merged = self._reload(call).protocol
        versions = ",".join(merged.library_versions) if merged else ""
        self.log(call.id, now, "confirmed", user_id, f"versions={versions} p2p={p2p_allowed}")
        return self._reload(call)

    def discard(
        self, call: Call, user_id: int, reason: DiscardReason, claimed_duration: int, now: int
    ) -> Call:
        """phone.discardCall by either party. The stored duration is the server's measure."""
        if not call.is_party(user_id):
            raise CallError("CALL_PEER_INVALID")
        if call.state is CallState.DISCARDED:
            raise CallError("CALL_ALREADY_DECLINED")
        return self._end(call, reason, user_id, now, f"claimed_duration={claimed_duration}")

    def end(self, call: Call, reason: DiscardReason, now: int) -> Call:
        """End a call from the server side (no party hung up); a no-op when already over."""
        if call.state is CallState.DISCARDED:
            return call
        return self._end(call, reason, None, now, "server")

    def _end(
        self, call: Call, reason: DiscardReason, by: int | None, now: int, detail: str
    ) -> Call:
        duration = max(0, now - call.start_date) if call.start_date is not None else 0
        self._db.execute(
            "UPDATE calls SET state = ?, reason = ?, duration = ?, end_date = ?, "
            "discarded_by = ? WHERE id = ?",
            (CallState.DISCARDED.value, reason.value, duration, now, by, call.id),
        )
        self.log(call.id, now, f"discarded:{reason.value}", by, detail)
        return self._reload(call)

    def signaling(self, call: Call, user_id: int, size: int, now: int) -> None:
        """Record phone.sendSignalingData (the size only) after checking the call's state."""
        if call.state is CallState.DISCARDED:
            raise CallError("CALL_ALREADY_DECLINED")
        if call.state is CallState.REQUESTED:
            raise CallError("CALL_PEER_INVALID")
        if size > MAX_SIGNALING_BYTES:
            raise CallError("DATA_TOO_LONG")
        self.log(call.id, now, "signaling", user_id, str(size))

    def rate(self, call: Call, user_id: int, rating: int, comment: str, now: int) -> Call:
        """phone.setCallRating: 1..5 stars, allowed once the call is over."""
        if call.state is not CallState.DISCARDED:
            raise CallError("CALL_PEER_INVALID")
        if not 1 <= rating <= 5:
            raise CallError("RATING_INVALID")
        side = "admin" if user_id == call.admin_id else "participant"
        self._db.execute(
            f"UPDATE calls SET {side}_rating = ?, {side}_comment = ? WHERE id = ?",
            (rating, comment[:1024], call.id),
        )
        self.log(call.id, now, "rated", user_id, str(rating))
        return self._reload(call)

    def save_debug(self, call: Call, user_id: int, data: str, now: int) -> None:
        """phone.saveCallDebug: the JSON is checked and its size recorded, not its content."""
        if len(data.encode()) > MAX_DEBUG_BYTES:
            raise CallError("DATA_TOO_LONG")
        try:
            json.loads(data)
        except ValueError as exc:
            raise CallError("DATA_JSON_INVALID") from exc
        self.log(call.id, now, "debug", user_id, str(len(data)))

    def expire(self, now: int) -> list[Call]:
        """End calls whose server-side timeout passed; returns the calls just ended.

        Ringing longer than the ring timeout -> ``missed``; accepted but not confirmed within
        the connect timeout -> ``disconnect``.
        """
        ended = []
        for call in self._unfinished():
            if (
                call.state is CallState.REQUESTED
                and now - call.date >= CALL_RING_TIMEOUT_MS // 1000
            ):
                ended.append(self._end(call, DiscardReason.MISSED, None, now, "ring timeout"))
            elif (
                call.state is CallState.ACCEPTED
                and call.accept_date is not None
                and now - call.accept_date >= CALL_CONNECT_TIMEOUT_MS // 1000
            ):
                ended.append(
                    self._end(call, DiscardReason.DISCONNECT, None, now, "connect timeout")
                )
        return ended

    def _reload(self, call: Call) -> Call:
        fresh = self.get(call.id)
        assert fresh is not None
        return fresh
