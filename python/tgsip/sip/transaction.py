"""RFC 3261 §17 transaction state machines (with the RFC 6026 corrections), sans-I/O.

Every machine takes ``now`` (seconds, any monotonic origin) and returns a list of actions:
:class:`Send` (put this message on the wire to ``peer``), :class:`Deliver` (hand this message to
the transaction user), :class:`TimedOut` (Timer B/F/H fired) and :class:`Terminated`. Each
machine exposes :attr:`Transaction.deadline`, the time its earliest running timer fires, and
:meth:`Transaction.on_timer` to be called at or after that time.

:class:`TransactionLayer` owns many transactions, matches incoming messages to them
(§17.1.3, §17.2.3, CANCEL per §9.2) and keeps ONE heap of deadlines for all of them (plus any
other :class:`Timed` object such as the UAS core's 2xx retransmitter), so a driver needs a
single timer: call :meth:`TransactionLayer.tick` at :meth:`TransactionLayer.next_deadline`.

Reliable transports (TCP, TLS) skip retransmissions and use zero for Timers D, I, J and K
(§17.1.1.2, §17.1.2.2, §17.2.1, §17.2.2).
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from tgsip.sip.message import Request, Response, SipParseError, make_response

__all__ = [
    "Deliver",
    "InviteClient",
    "InviteServer",
    "NonInviteClient",
    "NonInviteServer",
    "Peer",
    "Send",
    "State",
    "Terminated",
    "Timed",
    "TimedOut",
    "Timers",
    "Transaction",
    "TransactionLayer",
    "build_ack_for_non2xx",
    "client_key",
    "server_key",
]


@dataclass(frozen=True, slots=True)
class Timers:
    """Timer base values (RFC 3261 §17.1.1.1, Table 4). Seconds."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0


@dataclass(frozen=True, slots=True)
class Peer:
    """Where a message goes or came from. ``transport`` is ``UDP``, ``TCP`` or ``TLS``."""

    transport: str
    host: str
    port: int

    @property
    def reliable(self) -> bool:
        """True for stream transports, which need no SIP-level retransmission."""
        return self.transport != "UDP"


class State(Enum):
    """Transaction states of §17 plus RFC 6026's Accepted."""

    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    ACCEPTED = "Accepted"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    TERMINATED = "Terminated"


@dataclass(slots=True)
class Send:
    """Put ``message`` on the wire towards ``peer``."""

    txn: Transaction
    message: Request | Response
    peer: Peer


@dataclass(slots=True)
class Deliver:
    """Hand ``message`` to the transaction user."""

    txn: Transaction | None
    message: Request | Response
    peer: Peer


@dataclass(slots=True)
class TimedOut:
    """Timer B, F or H fired: the TU sees a timeout (treated as 408 by a client TU)."""

    txn: Transaction


@dataclass(slots=True)
class Terminated:
    """The transaction reached Terminated and has been removed from the layer."""

    txn: Transaction


Action = Send | Deliver | TimedOut | Terminated

INF = float("inf")


class Timed(Protocol):
    """Anything the layer's single heap can drive."""

    @property
    def deadline(self) -> float:
        """Next time :meth:`on_timer` must run (``inf`` = none)."""
        ...

    def on_timer(self, now: float) -> list[Action]:
        """Run every timer due at ``now``."""
        ...


def client_key(branch: str, method: str) -> tuple[str, str]:
    """Client transaction key (§17.1.3): top-Via branch and CSeq method (ACK → INVITE)."""
    return (branch, "INVITE" if method == "ACK" else method)


def server_key(request: Request, method: str | None = None) -> tuple[str, ...]:
    """Server transaction key (§17.2.3).

    For an RFC 3261 branch: branch, sent-by and method (ACK maps to INVITE). For an RFC 2543
    peer (no magic cookie) a key made of Request-URI, tags, Call-ID, CSeq number and top Via,
    so that a retransmission or the ACK of a non-2xx still matches (§17.2.3 first part).
    """
    via = request.top_via
    m = method or request.method
    if m == "ACK":
        m = "INVITE"
    sent_by = f"{via.host.lower()}:{via.port or 0}"
    branch = via.branch
    if branch is not None and branch.startswith("z9hG4bK"):
        return ("3261", branch, sent_by, m)
    from_tag = request.from_.tag or ""
    to_tag = "" if request.method == "ACK" else (request.to.tag or "")
    return (
        "2543",
        request.uri,
        from_tag,
        to_tag,
        request.call_id,
        str(request.cseq.number),
        str(request.top_via),
        m,
    )


def build_ack_for_non2xx(invite: Request, response: Response) -> Request:
    """The ACK a client INVITE transaction sends for a 300-699 (§17.1.1.3).

    Same Request-URI, Call-ID, From, top Via (hence branch) and Route set as the INVITE, To
    from the response (with its tag), CSeq number of the INVITE with method ACK.
    """
    ack = Request(method="ACK", uri=invite.uri)
    via = invite.get("Via")
    if via is None:
        raise SipParseError("INVITE without Via")
    ack.headers.append(("Via", str(invite.top_via)))
    ack.headers.append(("Max-Forwards", "70"))
    for r in invite.get_all("Route"):
        ack.headers.append(("Route", r))
    for name in ("From", "To", "Call-ID"):
        src = response if name == "To" else invite
        value = src.get(name)
        if value is not None:
            ack.headers.append((name, value))
    ack.headers.append(("CSeq", f"{invite.cseq.number} ACK"))
    return ack


@dataclass(eq=False)
class Transaction:
    """Common state of the four machines. ``key`` identifies it in the layer."""

    request: Request
    peer: Peer
    timers: Timers
    key: tuple[str, ...]
    state: State = State.TRYING
    # One slot per named timer: fire time (inf = stopped).
    _timers: dict[str, float] = field(default_factory=dict)
    _interval: float = 0.0
    last_response: Response | None = None
    timed_out: bool = False
    scheduled: float = INF

    @property
    def deadline(self) -> float:
        """Earliest running timer (``inf`` when none)."""
        return min(self._timers.values(), default=INF)

    @property
    def terminated(self) -> bool:
        """True once the machine reached Terminated."""
        return self.state is State.TERMINATED

    def _start(self, name: str, at: float) -> None:
        self._timers[name] = at

    def _stop(self, *names: str) -> None:
        for n in names:
            self._timers.pop(n, None)

    def _terminate(self) -> list[Action]:
        self.state = State.TERMINATED
        self._timers.clear()
        return [Terminated(self)]

    def on_timer(self, now: float) -> list[Action]:
        """Fire every timer due at ``now`` (in deadline order)."""
        out: list[Action] = []
        while not self.terminated:
            due = [(at, n) for n, at in self._timers.items() if at <= now]
            if not due:
                break
            _, name = min(due)
            del self._timers[name]
            out += self._fire(name, now)
        return out

    def _fire(self, name: str, now: float) -> list[Action]:
        raise NotImplementedError


# ---------------------------------------------------------------------------------------
# Client transactions


class InviteClient(Transaction):
    """INVITE client transaction (§17.1.1, Figure 5 as amended by RFC 6026 §7.2).

    Calling: Timer A retransmits (T1, doubling without cap) on unreliable transports, Timer B
    (64*T1) times out. 1xx → Proceeding. 2xx → Accepted (Timer M = 64*T1; further 2xx are
    delivered, the ACK for 2xx is the TU's). 300-699 → Completed: ACK sent inside the
    transaction and resent for each retransmitted final; Timer D (32 s unreliable, 0 reliable).
    """

    _ack: Request | None = None

    def start(self, now: float) -> list[Action]:
        """Send the INVITE and arm Timers A and B."""
        self.state = State.CALLING
        if not self.peer.reliable:
            self._interval = self.timers.t1
            self._start("A", now + self._interval)
        self._start("B", now + 64 * self.timers.t1)
        return [Send(self, self.request, self.peer)]

    def on_response(self, resp: Response, now: float) -> list[Action]:
        """Feed a response matched to this transaction."""
        st = self.state
        code = resp.status
        if st in (State.CALLING, State.PROCEEDING):
            if code < 200:
                self.state = State.PROCEEDING
                self._stop("A", "B")
                return [Deliver(self, resp, self.peer)]
            self._stop("A", "B")
            self.last_response = resp
            if code < 300:
                self.state = State.ACCEPTED
                self._start("M", now + 64 * self.timers.t1)
                return [Deliver(self, resp, self.peer)]
            self.state = State.COMPLETED
            ack = build_ack_for_non2xx(self.request, resp)
            self._ack = ack
            self._start("D", now + (0.0 if self.peer.reliable else 32.0))
            return [Send(self, ack, self.peer), Deliver(self, resp, self.peer)]
        if st is State.ACCEPTED and 200 <= code < 300:
            return [Deliver(self, resp, self.peer)]
        if st is State.COMPLETED and code >= 300 and self._ack is not None:
            return [Send(self, self._ack, self.peer)]
        return []

    def _fire(self, name: str, now: float) -> list[Action]:
        if name == "A" and self.state is State.CALLING:
            self._interval *= 2
            self._start("A", now + self._interval)
            return [Send(self, self.request, self.peer)]
        if name == "B" and self.state is State.CALLING:
            self.timed_out = True
            return [TimedOut(self), *self._terminate()]
        if name in ("D", "M"):
            return self._terminate()
        return []


class NonInviteClient(Transaction):
    """Non-INVITE client transaction (§17.1.2, Figure 6).

    Trying: Timer E retransmits at T1, doubling up to T2; in Proceeding it retransmits every
    T2. Timer F (64*T1) times out. A final → Completed, Timer K (T4 unreliable, 0 reliable).
    """

    def start(self, now: float) -> list[Action]:
        """Send the request and arm Timers E and F."""
        self.state = State.TRYING
        if not self.peer.reliable:
            self._interval = self.timers.t1
            self._start("E", now + self._interval)
        self._start("F", now + 64 * self.timers.t1)
        return [Send(self, self.request, self.peer)]

    def on_response(self, resp: Response, now: float) -> list[Action]:
        """Feed a response matched to this transaction."""
        if self.state not in (State.TRYING, State.PROCEEDING):
            return []  # Completed absorbs retransmitted finals
        if resp.status < 200:
            self.state = State.PROCEEDING
            return [Deliver(self, resp, self.peer)]
        self.last_response = resp
        self.state = State.COMPLETED
        self._stop("E", "F")
        self._start("K", now + (0.0 if self.peer.reliable else self.timers.t4))
        return [Deliver(self, resp, self.peer)]

    def _fire(self, name: str, now: float) -> list[Action]:
        if name == "E" and self.state in (State.TRYING, State.PROCEEDING):
            if self.state is State.TRYING:
                self._interval = min(2 * self._interval, self.timers.t2)
            else:
                self._interval = self.timers.t2
            self._start("E", now + self._interval)
            return [Send(self, self.request, self.peer)]
        if name == "F" and self.state in (State.TRYING, State.PROCEEDING):
            self.timed_out = True
            return [TimedOut(self), *self._terminate()]
        if name == "K":
            return self._terminate()
        return []


# ---------------------------------------------------------------------------------------
# Server transactions


class InviteServer(Transaction):
    """INVITE server transaction (§17.2.1, Figure 7 as amended by RFC 6026 §7.1).

    Proceeding on creation; sends ``100 Trying`` at once (§17.2.1: unless the TU answers within
    200 ms; sending it always is allowed). A retransmitted INVITE gets the last provisional again.
    TU 2xx → Accepted (Timer L = 64*T1): retransmitted INVITEs are absorbed, ACKs and further
    2xx from the TU pass through (the TU retransmits 2xx until the ACK, §13.3.1.4).
    TU 300-699 → Completed: Timer G retransmits (T1 doubling to T2, unreliable only), Timer H
    (64*T1) gives up; ACK → Confirmed, Timer I (T4 unreliable, 0 reliable) → Terminated.
    """

    def start(self, now: float, send_trying: bool = True) -> list[Action]:
        """Enter Proceeding; optionally send 100 Trying (§8.2.6.1)."""
        self.state = State.PROCEEDING
        if send_trying:
            trying = make_response(self.request, 100, "Trying")
            self.last_response = trying
            return [Send(self, trying, self.peer)]
        return []

    def respond(self, resp: Response, now: float) -> list[Action]:
        """Send a response from the TU."""
        st = self.state
        if st is State.PROCEEDING:
            self.last_response = resp
            if resp.status < 200:
                return [Send(self, resp, self.peer)]
            if resp.status < 300:
                self.state = State.ACCEPTED
                self._start("L", now + 64 * self.timers.t1)
                return [Send(self, resp, self.peer)]
            self.state = State.COMPLETED
            if not self.peer.reliable:
                self._interval = self.timers.t1
                self._start("G", now + self._interval)
            self._start("H", now + 64 * self.timers.t1)
            return [Send(self, resp, self.peer)]
        if st is State.ACCEPTED and 200 <= resp.status < 300:
            return [Send(self, resp, self.peer)]
        return []

    def on_request(self, req: Request, now: float) -> list[Action]:
        """Feed a retransmitted INVITE or an ACK matched to this transaction."""
        st = self.state
        if req.method == "ACK":
            if st is State.COMPLETED:
                self.state = State.CONFIRMED
                self._stop("G", "H")
                self._start("I", now + (0.0 if self.peer.reliable else self.timers.t4))
                return []
            if st is State.ACCEPTED:
                return [Deliver(self, req, self.peer)]
            return []
        if st in (State.PROCEEDING, State.COMPLETED) and self.last_response is not None:
            return [Send(self, self.last_response, self.peer)]
        return []  # Accepted/Confirmed absorb retransmissions

    def _fire(self, name: str, now: float) -> list[Action]:
        if name == "G" and self.state is State.COMPLETED and self.last_response is not None:
            self._interval = min(2 * self._interval, self.timers.t2)
            self._start("G", now + self._interval)
            return [Send(self, self.last_response, self.peer)]
        if name == "H" and self.state is State.COMPLETED:
            self.timed_out = True
            return [TimedOut(self), *self._terminate()]
        if name in ("I", "L"):
            return self._terminate()
        return []


class NonInviteServer(Transaction):
    """Non-INVITE server transaction (§17.2.2, Figure 8).

    Trying absorbs retransmissions; a TU 1xx → Proceeding (retransmissions get it again); a TU
    final → Completed, retransmissions get the final again, Timer J (64*T1 unreliable, 0 reliable).
    """

    def start(self, now: float) -> list[Action]:
        """Enter Trying."""
        self.state = State.TRYING
        return []

    def respond(self, resp: Response, now: float) -> list[Action]:
        """Send a response from the TU."""
        if self.state not in (State.TRYING, State.PROCEEDING):
            return []
        self.last_response = resp
        if resp.status < 200:
            self.state = State.PROCEEDING
            return [Send(self, resp, self.peer)]
        self.state = State.COMPLETED
        self._start("J", now + (0.0 if self.peer.reliable else 64 * self.timers.t1))
        return [Send(self, resp, self.peer)]

    def on_request(self, req: Request, now: float) -> list[Action]:
        """Feed a retransmission."""
        if self.state in (State.PROCEEDING, State.COMPLETED) and self.last_response is not None:
            return [Send(self, self.last_response, self.peer)]
        return []

    def _fire(self, name: str, now: float) -> list[Action]:
        if name == "J":
            return self._terminate()
        return []


# ---------------------------------------------------------------------------------------
# The layer


class TransactionLayer:
    """All transactions of one UA with one deadline heap (sans-I/O).

    The driver feeds :meth:`receive` with parsed messages, calls :meth:`tick` when
    :meth:`next_deadline` has passed, and executes the returned actions. Entries in the heap
    are lazily invalidated: an entry whose time no longer equals the object's ``scheduled``
    value is skipped.
    """

    def __init__(self, timers: Timers | None = None) -> None:
        self.timers = timers or Timers()
        self.clients: dict[tuple[str, ...], InviteClient | NonInviteClient] = {}
        self.servers: dict[tuple[str, ...], InviteServer | NonInviteServer] = {}
        self._heap: list[tuple[float, int, Timed]] = []
        self._seq = itertools.count()
        self._sched: dict[int, float] = {}

    def __len__(self) -> int:
        return len(self.clients) + len(self.servers)

    # -- timers -----------------------------------------------------------------------

    def schedule(self, obj: Timed) -> None:
        """(Re)arm ``obj`` in the heap at ``obj.deadline`` (no-op when unchanged)."""
        at = obj.deadline
        oid = id(obj)
        if self._sched.get(oid, INF) == at:
            return
        if at == INF:
            self._sched.pop(oid, None)
            return
        self._sched[oid] = at
        heapq.heappush(self._heap, (at, next(self._seq), obj))

    def next_deadline(self) -> float | None:
        """Earliest pending timer over all transactions, or None."""
        heap = self._heap
        while heap:
            at, _, obj = heap[0]
            if self._sched.get(id(obj)) == at:
                return at
            heapq.heappop(heap)
        return None

    def tick(self, now: float) -> list[Action]:
        """Fire every timer due at ``now``; returns the resulting actions."""
        out: list[Action] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            at, _, obj = heapq.heappop(heap)
            oid = id(obj)
            if self._sched.get(oid) != at:
                continue
            del self._sched[oid]
            acts = obj.on_timer(now)
            self._after(obj, acts)
            out += acts
        return out

    def _after(self, obj: Timed, acts: list[Action]) -> None:
        for a in acts:
            if isinstance(a, Terminated):
                t = a.txn
                if isinstance(t, InviteClient | NonInviteClient):
                    if self.clients.get(t.key) is t:
                        del self.clients[t.key]
                elif self.servers.get(t.key) is t:
                    del self.servers[t.key]
                self._sched.pop(id(t), None)
                if t is obj:
                    return
        self.schedule(obj)

    # -- client side ------------------------------------------------------------------

    def send_request(
        self, request: Request, peer: Peer, now: float
    ) -> tuple[InviteClient | NonInviteClient, list[Action]]:
        """Create a client transaction for ``request`` (not ACK) and start it."""
        if request.method == "ACK":
            raise ValueError("ACK for 2xx is sent by the TU without a transaction (§17.1.1.3)")
        branch = request.top_via.branch
        if branch is None:
            raise ValueError("request needs a Via branch")
        key = client_key(branch, request.method)
        txn: InviteClient | NonInviteClient
        if request.method == "INVITE":
            txn = InviteClient(request, peer, self.timers, key)
        else:
            txn = NonInviteClient(request, peer, self.timers, key)
        self.clients[key] = txn
        acts = txn.start(now)
        self._after(txn, acts)
        return txn, acts

    # -- server side ------------------------------------------------------------------

    def respond(
        self, txn: InviteServer | NonInviteServer, response: Response, now: float
    ) -> list[Action]:
        """Send a TU response through its server transaction."""
        acts = txn.respond(response, now)
        self._after(txn, acts)
        return acts

    def find_invite_for_cancel(self, cancel: Request) -> InviteServer | None:
        """The INVITE server transaction a CANCEL refers to (§9.2), if still known."""
        t = self.servers.get(server_key(cancel, "INVITE"))
        return t if isinstance(t, InviteServer) else None

    # -- input ------------------------------------------------------------------------

    def receive(
        self, msg: Request | Response, peer: Peer, now: float, *, send_trying: bool = True
    ) -> list[Action]:
        """Match an incoming message to a transaction (§17.1.3, §17.2.3) and run it.

        New requests (other than ACK) create a server transaction and are delivered; an ACK that
        matches no transaction (the ACK for a 2xx) and a response that matches none (a stray
        2xx retransmission) are delivered with ``txn=None``. May raise :class:`SipParseError`
        when a needed header is malformed.
        """
        if isinstance(msg, Response):
            branch = msg.top_via.branch
            ct = self.clients.get(client_key(branch, msg.cseq.method)) if branch else None
            if ct is None:
                return [Deliver(None, msg, peer)]
            acts = ct.on_response(msg, now)
            self._after(ct, acts)
            return acts
        key = server_key(msg)
        st = self.servers.get(key)
        if st is not None:
            acts = st.on_request(msg, now)
            self._after(st, acts)
            return acts
        if msg.method == "ACK":
            return [Deliver(None, msg, peer)]
        txn: InviteServer | NonInviteServer
        if msg.method == "INVITE":
            ist = InviteServer(msg, peer, self.timers, key)
            self.servers[key] = ist
            acts = ist.start(now, send_trying)
            txn = ist
        else:
            txn = NonInviteServer(msg, peer, self.timers, key)
            self.servers[key] = txn
            acts = txn.start(now)
        acts = [*acts, Deliver(txn, msg, peer)]
        self._after(txn, acts)
        return acts
