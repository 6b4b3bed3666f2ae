"""Routing decisions with a fake clock: forks, priority hunting, candidates, error mapping."""

from __future__ import annotations

import pytest

from tgsip.calls.callerid import Called, CalledKind, CallerInfo
from tgsip.calls.router import (
    Cancel,
    CandidateNumbers,
    Failed,
    FloodGuard,
    Fork,
    Hunt,
    Invite,
    Routed,
    called_identifier,
    ended_status,
    plan_forks,
    refusal_status,
    telegram_target,
)
from tgsip.config.lines import LineKind, SipLine

ALICE = CallerInfo(4242, phone="+79991234567", username="alice", first_name="Alice", last_name="Ö")


def line(line_id: int, kind: LineKind = LineKind.IP_IP, **kw: object) -> SipLine:
    base: dict[str, object] = {"address": "127.0.0.1:5070"}
    base.update(kw)
    return SipLine(id=line_id, session_id=1, kind=kind, **base)  # type: ignore[arg-type]


def forks(*prios: int) -> list[Fork]:
    return [Fork(i + 1, p, "100", None, None) for i, p in enumerate(prios)]


def test_plan_applies_dial_rules_number_on_pbx_filters_and_templates() -> None:
    lines = [
        line(1, priority=2, dial_rules=(".*=",), number_on_pbx="200"),
        line(2, priority=1, dial_rules=(r"[^+*#\w]=", "^8=7")),
        line(3, priority=1, dial_rules=("^9",)),  # filter: not suitable for 8...
        line(4, dial_rules=(".*=",)),  # nothing to call
        line(5, LineKind.PBX_TO_GATEWAY, login="pbx", password="x", priority=3),
        line(6, enabled=False),
    ]
    got = plan_forks(lines, "8 (926) 123-45-67", ALICE)
    assert [(f.line_id, f.priority, f.number) for f in got] == [
        (2, 1, "79261234567"),
        (1, 2, "200"),
        (5, 3, "8 (926) 123-45-67"),
    ]
    assert got[0].caller_id == "+79991234567"
    assert got[0].caller_name == "Alice O"
    # A PBX -> gateway line without a number calls its registered contact as is.
    assert plan_forks([lines[4]], "", CallerInfo(7)) == [Fork(5, 3, "", "07", None)]


def test_equal_priority_rings_in_parallel_first_answer_cancels_the_others() -> None:
    h = Hunt(forks(1, 1, 2), group_timeout=30.0)
    assert h.start(0.0) == [Invite(0), Invite(1)]
    assert h.deadline == 30.0
    assert h.on_answer(1) == [Cancel(0), Routed(1)]
    assert h.done
    assert h.deadline is None
    # a late answer of a cancelled fork is hung up
    assert h.on_answer(0) == [Cancel(0)]
    assert h.on_final(0, 487, "Request Terminated", 1.0) == []


def test_next_group_only_after_every_fork_failed() -> None:
    h = Hunt(forks(1, 1, 5))
    h.start(0.0)
    assert h.on_final(0, 486, "Busy Here", 1.0) == []
    assert h.on_final(1, 404, "Not Found", 2.0) == [Invite(2)]
    assert h.deadline == 32.0
    assert h.on_final(2, 486, "Busy Here", 3.0) == [Failed(False, 486, "Busy Here")]


def test_all_busy_discards_as_busy() -> None:
    h = Hunt(forks(0, 1))
    h.start(0.0)
    assert h.on_final(0, 486, "Busy Here", 1.0) == [Invite(1)]
    assert h.on_final(1, 600, "Busy Everywhere", 2.0) == [Failed(True, 600, "Busy Everywhere")]


def test_6xx_stops_hunting_and_cancels_the_group() -> None:
    h = Hunt(forks(0, 0, 1))
    h.start(0.0)
    assert h.on_final(1, 603, "Decline", 1.0) == [Cancel(0), Failed(False, 603, "Decline")]
    assert h.done


def test_group_timeout_moves_on_and_the_ring_limit_bounds_the_hunt() -> None:
    h = Hunt(forks(0, 1, 2), group_timeout=10.0, deadline_at=15.0)
    h.start(100.0 - 100.0)
    assert h.tick(9.9) == []
    assert h.tick(10.0) == [Cancel(0), Invite(1)]
    assert h.deadline == 15.0  # bounded by the Telegram ring limit, not 20
    assert h.tick(15.0) == [Cancel(1), Failed(False, 408, "Request Timeout")]
    assert h.tick(99.0) == []


def test_no_forks_is_no_lines_for_call() -> None:
    assert Hunt([]).start(0.0) == [Failed(False, 404, "No lines for call", no_lines=True)]


def test_caller_hangup_cancels_every_pending_fork() -> None:
    h = Hunt(forks(0, 0))
    h.start(0.0)
    h.on_final(0, 480, "Temporarily Unavailable", 1.0)
    assert h.abort() == [Cancel(1)]
    assert h.abort() == []


def test_candidate_numbers_last_ten_minutes_and_are_used_once() -> None:
    c = CandidateNumbers()
    c.remember(1, 7, "100", now=1000.0)
    c.remember(1, 7, "101", now=1001.0)
    assert c.take(1, 8, 1002.0) == ""
    assert c.take(1, 7, 1601.0) == "101"
    assert c.take(1, 7, 1602.0) == ""
    c.remember(1, 7, "102", now=0.0)
    assert c.take(1, 7, 600.5) == ""


@pytest.mark.parametrize(
    ("error", "status", "reason"),
    [
        ("USER_NOT_FOUND", 404, "Not Found"),
        ("USERNAME_NOT_OCCUPIED", 404, "Not Found"),
        ("USER_PRIVACY_RESTRICTED", 403, "Forbidden"),
        ("PARTICIPANT_VERSION_OUTDATED", 488, "Telegram client too old"),
        ("TIMEOUT", 408, "Timeout of waiting RPC result"),
        ("OFFLINE", 503, "Service Unavailable"),
        ("SOMETHING_ELSE", 500, "Server Internal Error"),
    ],
)
def test_refusals_map_to_sip(error: str, status: int, reason: str) -> None:
    got = refusal_status(error)
    assert (got.status, got.reason, got.headers) == (status, reason, ())


def test_flood_wait_is_503_with_retry_after() -> None:
    got = refusal_status("FLOOD_WAIT", 37)
    assert got.status == 503
    assert got.reason == "Too Many Requests: retry after 37"
    assert got.headers == (("Retry-After", "37"),)


@pytest.mark.parametrize(
    ("reason", "by_remote", "ringing", "error", "status"),
    [
        ("busy", True, False, None, 486),
        ("busy", True, True, None, 603),
        ("hangup", True, True, None, 603),
        ("missed", False, False, "ring timeout", 480),
        ("disconnect", False, True, "connect timeout", 500),
        ("disconnect", True, False, "PARTICIPANT_VERSION_OUTDATED", 488),
    ],
)
def test_early_ends_map_to_sip(
    reason: str, by_remote: bool, ringing: bool, error: str | None, status: int
) -> None:
    assert ended_status(reason, by_remote=by_remote, ringing=ringing, error=error).status == status


def test_called_identifier_and_target() -> None:
    reg = line(1, LineKind.PBX_TO_GATEWAY, login="abc", password="p")
    assert called_identifier(reg, "abc", "@bob_user") == Called(CalledKind.USERNAME, "bob_user")
    assert called_identifier(reg, "+15550202", "abc") == Called(CalledKind.PHONE, "15550202")
    assert called_identifier(reg, "04242", "") == Called(CalledKind.USERID, "4242")
    assert called_identifier(reg, "", "") is None
    assert telegram_target(Called(CalledKind.USERID, "4242")) == 4242
    assert telegram_target(Called(CalledKind.USERNAME, "bob")) == "@bob"
    assert telegram_target(Called(CalledKind.PHONE, "15550202")) == "+15550202"


def test_flood_wait_blocks_the_session_for_its_seconds() -> None:
    g = FloodGuard()
    assert g.wait_left(1, 100.0) == 0
    g.hit(1, 30, now=100.0)
    assert g.wait_left(1, 100.0) == 30
    assert g.wait_left(2, 100.0) == 0  # other sessions are not blocked
    assert g.wait_left(1, 129.2) == 1
    g.hit(1, 5, now=110.0)  # a shorter wait does not shorten the block
    assert g.wait_left(1, 120.0) == 10
    assert g.wait_left(1, 130.0) == 0
