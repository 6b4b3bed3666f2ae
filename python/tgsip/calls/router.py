"""Call routing decisions, sans I/O (``product.md`` §8.3-§8.5, §9, §14).

The gateway's call bridge (:mod:`tgsip.callbridge`) carries these decisions out; nothing here
touches the network or reads the clock (times are passed as ``now``, in seconds of any
monotonic origin).

* :func:`plan_forks`: for a Telegram → SIP call, which lines of the session are called, with
  which number (dial rules, then Number on PBX), Caller ID and Caller Name.
* :class:`Hunt`: priority hunting over those forks (§8.5): equal priority in parallel, lower
  values first, the next group only after every fork of the group failed; a 6xx stops; the
  first 2xx cancels the others; each group rings at most ``group_timeout`` and the whole hunt
  ends by ``deadline`` (Telegram's ring limit, §9.4).
* :class:`CandidateNumbers`: the user's last text as the number of their next call, for
  10 minutes (decision 9).
* :func:`refusal_status` and :func:`ended_status`: the SIP final response for a SIP → Telegram
  call that Telegram refused or that ended before the answer (§14).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from tgsip.calls.callerid import Called, CalledKind, CallerInfo, parse_called, render
from tgsip.calls.dialrules import DialRuleError, DialRules
from tgsip.config.lines import LineKind, SipLine

__all__ = [
    "CANDIDATE_TTL",
    "GROUP_TIMEOUT",
    "Cancel",
    "CandidateNumbers",
    "Failed",
    "FloodGuard",
    "Fork",
    "Hunt",
    "HuntAction",
    "Invite",
    "Routed",
    "SipFinal",
    "called_identifier",
    "ended_status",
    "plan_forks",
    "refusal_status",
    "telegram_target",
]

GROUP_TIMEOUT = 30.0
"""Default ring time of one priority group, seconds (§8.5)."""
CANDIDATE_TTL = 600.0
"""How long a text stays the number of the user's next call, seconds (decision 9)."""


@dataclass(frozen=True, slots=True)
class Fork:
    """One INVITE of a hunt: ``number`` is the user part to call ("" = the registered contact
    of a PBX → gateway line), ``caller_id``/``caller_name`` go into From."""

    line_id: int
    priority: int
    number: str
    caller_id: str | None
    caller_name: str | None


def plan_forks(lines: Iterable[SipLine], candidate: str, caller: CallerInfo) -> list[Fork]:
    """The forks of a Telegram → SIP call, ordered by priority then line id.

    Per enabled line: number = dial rules(candidate) (§8.3); a filter rule that does not match
    drops the line; an empty result means Number on PBX; a gateway → PBX or IP ⇿ IP line
    with neither is not callable and dropped, a PBX → gateway line then calls its registered
    contact as is (decision 7). Rules that no longer compile drop the line (§8.3: "Bad rules
    lead to No lines for call").
    """
    values = caller.values()
    forks: list[Fork] = []
    for line in sorted(lines, key=lambda ln: (ln.priority, ln.id)):
        if not line.enabled:
            continue
        try:
            number = DialRules(line.dial_rules).apply(candidate)
        except DialRuleError:
            continue
        if number is None:
            continue
        if not number:
            number = line.number_on_pbx
        if not number and line.kind is not LineKind.PBX_TO_GATEWAY:
            continue
        forks.append(
            Fork(
                line.id,
                line.priority,
                number,
                render(line.caller_phone, values),
                render(line.caller_name, values),
            )
        )
    return forks


@dataclass(frozen=True, slots=True)
class Invite:
    """Send an INVITE for ``fork`` (index into :attr:`Hunt.forks`)."""

    fork: int


@dataclass(frozen=True, slots=True)
class Cancel:
    """Cancel the pending INVITE (or hang up the leg) of ``fork``."""

    fork: int


@dataclass(frozen=True, slots=True)
class Routed:
    """``fork`` answered: accept the Telegram call and bridge it to this leg."""

    fork: int


@dataclass(frozen=True, slots=True)
class Failed:
    """Every fork failed (or none was eligible, ``no_lines``). ``busy``: every final was 486
    or 600, so the Telegram call is discarded as busy (§9.1 step 7); ``status``/``reason``:
    the last final response (what the administrator is told)."""

    busy: bool
    status: int
    reason: str
    no_lines: bool = False


HuntAction = Invite | Cancel | Routed | Failed


class _Fork(enum.Enum):
    IDLE = "idle"
    RINGING = "ringing"
    FAILED = "failed"
    ANSWERED = "answered"


@dataclass
class Hunt:
    """Priority hunting over ``forks`` (see the module docstring).

    Drive it with :meth:`start`, :meth:`on_final`, :meth:`on_answer`, :meth:`abort` and
    :meth:`tick` (at :attr:`deadline`); each returns actions to carry out in order. After a
    :class:`Routed` or :class:`Failed` the hunt is :attr:`done` and ignores further input
    (late finals of cancelled forks).
    """

    forks: Sequence[Fork]
    group_timeout: float = GROUP_TIMEOUT
    deadline_at: float = math.inf
    """The latest end of the whole hunt (the Telegram call's ring limit)."""
    done: bool = False
    _state: list[_Fork] = field(default_factory=list)
    _finals: list[int] = field(default_factory=list)
    _last: tuple[int, str] = (0, "")
    _groups: list[list[int]] = field(default_factory=list)
    _group: int = -1
    _group_deadline: float = math.inf

    def __post_init__(self) -> None:
        self._state = [_Fork.IDLE] * len(self.forks)
        by_prio: dict[int, list[int]] = {}
        for i, f in enumerate(self.forks):
            by_prio.setdefault(f.priority, []).append(i)
        self._groups = [by_prio[p] for p in sorted(by_prio)]

    @property
    def deadline(self) -> float | None:
        """When :meth:`tick` must run next (None when done)."""
        if self.done:
            return None
        return min(self._group_deadline, self.deadline_at)

    def start(self, now: float) -> list[HuntAction]:
        """Call the first group (or fail at once when there is no fork)."""
        if not self.forks:
            self.done = True
            return [Failed(False, 404, "No lines for call", no_lines=True)]
        return self._next_group(now)

    def _next_group(self, now: float) -> list[HuntAction]:
        self._group += 1
        if self._group >= len(self._groups) or now >= self.deadline_at:
            return self._fail()
        group = self._groups[self._group]
        for i in group:
            self._state[i] = _Fork.RINGING
        self._group_deadline = now + self.group_timeout
        return [Invite(i) for i in group]

    def _fail(self) -> list[HuntAction]:
        self.done = True
        busy = bool(self._finals) and all(s in (486, 600) for s in self._finals)
        status, reason = self._last if self._last[0] else (480, "Temporarily Unavailable")
        return [Failed(busy, status, reason)]

    def _pending(self) -> list[int]:
        return [i for i, s in enumerate(self._state) if s is _Fork.RINGING]

    def on_final(self, fork: int, status: int, reason: str, now: float) -> list[HuntAction]:
        """A fork ended without answer (final non-2xx, transport error as 503, timeout 408)."""
        if self.done or self._state[fork] is not _Fork.RINGING:
            return []
        self._state[fork] = _Fork.FAILED
        self._finals.append(status)
        self._last = (status, reason)
        if status >= 600:  # RFC 3261 §16.7: a 6xx ends the search
            acts: list[HuntAction] = [Cancel(i) for i in self._pending()]
            for i in self._pending():
                self._state[i] = _Fork.FAILED
            return [*acts, *self._fail()]
        if self._pending():
            return []
        return self._next_group(now)

    def on_answer(self, fork: int) -> list[HuntAction]:
        """A fork answered (2xx): the others are cancelled. A fork answering after the hunt
        ended is cancelled too (its leg must be hung up)."""
        if self.done or self._state[fork] is not _Fork.RINGING:
            return [Cancel(fork)]
        self._state[fork] = _Fork.ANSWERED
        others = self._pending()
        for i in others:
            self._state[i] = _Fork.FAILED
        self.done = True
        return [*(Cancel(i) for i in others), Routed(fork)]

    def abort(self) -> list[HuntAction]:
        """The Telegram caller gave up: cancel every pending fork."""
        if self.done:
            return []
        pending = self._pending()
        for i in pending:
            self._state[i] = _Fork.FAILED
        self.done = True
        return [Cancel(i) for i in pending]

    def tick(self, now: float) -> list[HuntAction]:
        """The group's ring time or the hunt's deadline passed: cancel the group's forks
        (each counts as 408) and go on with the next group, or fail."""
        deadline = self.deadline
        if deadline is None or now < deadline:
            return []
        pending = self._pending()
        acts: list[HuntAction] = [Cancel(i) for i in pending]
        for i in pending:
            self._state[i] = _Fork.FAILED
            self._finals.append(408)
            self._last = (408, "Request Timeout")
        if now >= self.deadline_at:
            return [*acts, *self._fail()]
        return [*acts, *self._next_group(now)]


class CandidateNumbers:
    """The last text of each (session, user) as the number of the user's next call (§9.1 step
    3), valid ``ttl`` seconds and used once."""

    def __init__(self, ttl: float = CANDIDATE_TTL, limit: int = 10000) -> None:
        self.ttl = ttl
        self.limit = limit
        self._texts: dict[tuple[int, int], tuple[str, float]] = {}

    def remember(self, session_id: int, user_id: int, text: str, now: float) -> None:
        """The user sent ``text`` at ``now``."""
        key = (session_id, user_id)
        self._texts.pop(key, None)
        self._texts[key] = (text, now)
        while len(self._texts) > self.limit:
            self._texts.pop(next(iter(self._texts)))

    def take(self, session_id: int, user_id: int, now: float) -> str:
        """The candidate for a call starting at ``now`` ("" when none or expired); forgotten."""
        got = self._texts.pop((session_id, user_id), None)
        if got is None or now - got[1] > self.ttl:
            return ""
        return got[0]


class FloodGuard:
    """Telegram's ``FLOOD_WAIT_N`` on a session blocks its outgoing calls for N seconds
    (§14.1): meanwhile every new SIP → Telegram call gets 503 with the time left."""

    def __init__(self) -> None:
        self._until: dict[int, float] = {}

    def hit(self, session_id: int, seconds: int, now: float) -> None:
        """Telegram asked session ``session_id`` to wait ``seconds`` from ``now``."""
        self._until[session_id] = max(self._until.get(session_id, 0.0), now + seconds)

    def wait_left(self, session_id: int, now: float) -> int:
        """Whole seconds the session must still wait (0 = calls allowed)."""
        until = self._until.get(session_id)
        if until is None:
            return 0
        if now >= until:
            del self._until[session_id]
            return 0
        return max(1, math.ceil(until - now))


@dataclass(frozen=True, slots=True)
class SipFinal:
    """A SIP final response for a SIP → Telegram call that did not connect."""

    status: int
    reason: str
    headers: tuple[tuple[str, str], ...] = ()


_NOT_FOUND = frozenset(
    {
        "USER_NOT_FOUND",
        "USERNAME_NOT_OCCUPIED",
        "USERNAME_INVALID",
        "PHONE_NOT_OCCUPIED",
        "PHONE_NUMBER_INVALID",
        "USER_ID_INVALID",
        "PEER_ID_INVALID",
        "INPUT_USER_DEACTIVATED",
    }
)
_PRIVACY = frozenset({"USER_PRIVACY_RESTRICTED", "USER_IS_BLOCKED", "USER_BLOCKED"})
_TOO_OLD = frozenset({"PARTICIPANT_VERSION_OUTDATED", "CALL_PROTOCOL_FLAGS_INVALID"})


def refusal_status(error: str, flood_seconds: int | None = None) -> SipFinal:
    """The response for a call Telegram refused to place (§14): ``error`` is Telegram's error
    name; ``flood_seconds`` set means ``FLOOD_WAIT_N``; ``TIMEOUT`` means an RPC did not
    answer in time; ``OFFLINE`` means the session is not connected."""
    if flood_seconds is not None:
        return SipFinal(
            503,
            f"Too Many Requests: retry after {flood_seconds}",
            (("Retry-After", str(flood_seconds)),),
        )
    if error in _NOT_FOUND:
        return SipFinal(404, "Not Found")
    if error in _PRIVACY:
        return SipFinal(403, "Forbidden")
    if error in _TOO_OLD:
        return SipFinal(488, "Telegram client too old")
    if error == "TIMEOUT":
        return SipFinal(408, "Timeout of waiting RPC result")
    if error == "OFFLINE":
        return SipFinal(503, "Service Unavailable")
    if error == "USER_BUSY":
        return SipFinal(486, "Busy Here")
    return SipFinal(500, "Server Internal Error")


def ended_status(reason: str, *, by_remote: bool, ringing: bool, error: str | None) -> SipFinal:
    """The response for a SIP → Telegram call whose Telegram leg ended before media connected.

    ``reason`` is the discard reason (``missed``, ``busy``, ``hangup``, ``disconnect``),
    ``ringing`` whether the callee's device had rung. A refusal after the device rang is the
    user declining: 603 (official clients decline with ``busy``, so ``busy`` after ringing is
    a decline too); ``busy`` before ringing is a busy line: 486. Missed / ring timeout: 480.
    A media or key failure: 500 (§14.2). An ``error`` naming a too old client gives 488.
    """
    if error is not None and any(name in error for name in _TOO_OLD):
        return SipFinal(488, "Telegram client too old")
    if reason == "busy" and by_remote:
        return SipFinal(603, "Decline") if ringing else SipFinal(486, "Busy Here")
    if reason == "hangup" and by_remote:
        return SipFinal(603, "Decline")
    if reason == "missed":
        return SipFinal(480, "Temporarily Unavailable")
    if reason == "disconnect":
        return SipFinal(500, "Server Internal Error")
    return SipFinal(480, "Temporarily Unavailable")


def called_identifier(line: SipLine, ruri_user: str, to_user: str) -> Called | None:
    """What a PBX's INVITE on ``line`` calls (§9.2 step 2, decisions 6 and 7): the
    Request-URI user part, or ``To``'s when the Request-URI names the line's own login (a
    registered PBX calling the contact); read with the line's Caller phone templates."""
    user = ruri_user
    if not user or (line.kind is LineKind.PBX_TO_GATEWAY and user == line.login):
        user = to_user
    if not user:
        return None
    return parse_called(line.caller_phone, user)


def telegram_target(called: Called) -> int | str:
    """The argument for ``CallService.call``: a user id, ``@username`` or ``+phone``."""
    if called.kind is CalledKind.USERID:
        return int(called.value)
    if called.kind is CalledKind.USERNAME:
        return "@" + called.value
    return "+" + called.value
