"""Tests for tgsip.sip.bans (sip.md section 8.3) on a fake clock and a real SQLite file."""

from __future__ import annotations

import ipaddress
import random
import sqlite3
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tgsip.sip.bans import Ban, BanList, BanStore, BanStoreError, normalize_ip

HOUR = 3600.0
DAY = 86400.0


def fail(bl: BanList, ip: str, now: float, n: int, step: float = 1.0) -> Ban | None:
    """Record *n* failures of *ip* starting at *now*, *step* seconds apart; return last result."""
    result = None
    for i in range(n):
        result = bl.record_failure(ip, now + i * step, "bad password")
    return result


def test_four_failures_do_not_ban_the_fifth_does() -> None:
    bl = BanList()
    assert fail(bl, "203.0.113.5", 0.0, 4) is None
    assert not bl.is_banned("203.0.113.5", 4.0)
    assert bl.failures("203.0.113.5", 4.0) == 4
    ban = bl.record_failure("203.0.113.5", 5.0, "bad password")
    assert ban == Ban("203.0.113.5", 5.0 + HOUR, 1, "bad password")
    assert bl.is_banned("203.0.113.5", 6.0)
    assert not bl.is_banned("203.0.113.6", 6.0)
    assert bl.active_bans(6.0) == [ban]


def test_failures_slide_out_of_the_window() -> None:
    bl = BanList()
    fail(bl, "198.51.100.1", 0.0, 4)  # at 0, 1, 2, 3
    # At 600.5 the failure at 0 is older than 10 minutes: 1, 2, 3 and this one remain.
    assert bl.record_failure("198.51.100.1", 600.5, "x") is None
    assert bl.failures("198.51.100.1", 600.5) == 4
    assert not bl.is_banned("198.51.100.1", 600.5)
    # At 601.5 the failure at 1 slides out too: still 4, no ban.
    assert bl.record_failure("198.51.100.1", 601.5, "x") is None
    assert bl.failures("198.51.100.1", 601.5) == 4
    # A fifth inside the window (2, 3, 600.5, 601.5, 601.9) bans.
    assert bl.record_failure("198.51.100.1", 601.9, "x") is not None
    assert bl.is_banned("198.51.100.1", 602.0)


def test_spread_out_failures_never_ban() -> None:
    bl = BanList()
    for i in range(100):
        assert bl.record_failure("192.0.2.9", i * 150.0, "x") is None  # 4 per 600 s window
    assert not bl.is_banned("192.0.2.9", 100 * 150.0)


def test_ban_expires() -> None:
    bl = BanList()
    ban = fail(bl, "192.0.2.1", 0.0, 5)
    assert ban is not None
    assert bl.is_banned("192.0.2.1", ban.until - 0.001)
    assert not bl.is_banned("192.0.2.1", ban.until)
    assert bl.active_bans(ban.until) == []
    # Failures while banned were ignored and the window restarts from zero.
    assert bl.failures("192.0.2.1", ban.until) == 0


def test_failures_while_banned_are_ignored() -> None:
    bl = BanList()
    ban = fail(bl, "192.0.2.1", 0.0, 5)
    assert ban is not None
    assert fail(bl, "192.0.2.1", 10.0, 20) is None
    assert bl.active_bans(100.0) == [ban]


def test_repeat_bans_double_and_are_capped() -> None:
    bl = BanList(ban_time=HOUR, max_ban_time=7 * DAY)
    now = 0.0
    durations = []
    for _ in range(10):
        ban = fail(bl, "2001:db8::1", now, 5)
        assert ban is not None
        durations.append(ban.until - (now + 4))
        now = ban.until  # the next round starts when the ban ends
    assert durations[:8] == [HOUR * 2**i for i in range(8)]  # 1 h .. 128 h
    assert durations[8:] == [7 * DAY, 7 * DAY]  # 256 h > 168 h: capped
    assert [b.count for b in bl.active_bans(now - 1)] == [10]


def test_repeat_history_is_forgotten_after_seven_days() -> None:
    bl = BanList()
    first = fail(bl, "192.0.2.7", 0.0, 5)
    assert first is not None
    second = fail(bl, "192.0.2.7", first.until + 1, 5)
    assert second is not None
    assert second.count == 2
    assert second.until - (first.until + 5) == 2 * HOUR
    # Just under 7 days after the second ban ended: still counted as a repeat.
    third = fail(bl, "192.0.2.7", second.until + 7 * DAY - 10, 5)
    assert third is not None
    assert third.count == 3
    # 7 days without a ban: back to a first ban of one hour.
    fourth = fail(bl, "192.0.2.7", third.until + 7 * DAY, 5)
    assert fourth is not None
    assert fourth.count == 1
    assert fourth.until - (third.until + 7 * DAY + 4) == HOUR


def test_prune_drops_stale_entries_and_keeps_history() -> None:
    bl = BanList()
    fail(bl, "192.0.2.1", 0.0, 2)
    ban = fail(bl, "192.0.2.2", 0.0, 5)
    assert ban is not None
    assert len(bl) == 2
    assert bl.prune(ban.until + 1) == 1  # 192.0.2.1 idle and empty; .2 keeps its history
    assert len(bl) == 1
    assert bl.prune(ban.until + 7 * DAY) == 1
    assert len(bl) == 0


def test_exempt_networks_are_never_banned() -> None:
    bl = BanList(exempt=["10.0.0.0/8", "2001:db8:1::/48", "::ffff:192.0.2.0/120"])
    for ip in ("10.1.2.3", "2001:db8:1::99", "::ffff:10.9.9.9", "192.0.2.77"):
        assert fail(bl, ip, 0.0, 50) is None
        assert not bl.is_banned(ip, 60.0)
        assert bl.is_exempt(ip)
    assert fail(bl, "11.0.0.1", 0.0, 5) is not None
    assert not bl.is_exempt("11.0.0.1")


def test_ipv6_and_ipv4_mapped_are_normalised() -> None:
    bl = BanList()
    # One host, three spellings: the failures add up to one ban.
    fail(bl, "::ffff:198.51.100.7", 0.0, 2)
    fail(bl, "::FFFF:c633:6407", 2.0, 2)
    ban = bl.record_failure(ipaddress.ip_address("198.51.100.7"), 4.0, "x")
    assert ban is not None
    assert ban.ip == "198.51.100.7"
    assert bl.is_banned("::ffff:198.51.100.7", 5.0)
    ban6 = fail(bl, "2001:DB8:0:0::0:1", 0.0, 3)
    assert ban6 is None
    assert fail(bl, "2001:db8::1", 3.0, 2) is not None
    assert bl.is_banned("2001:0db8:0000::0001", 10.0)
    assert normalize_ip("fe80::1%eth0") == ipaddress.IPv6Address("fe80::1")


def test_bad_address_is_a_value_error() -> None:
    bl = BanList()
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 address"):
        bl.record_failure("not-an-ip", 0.0, "x")
    with pytest.raises(ValueError, match="does not appear"):
        bl.is_banned("999.1.1.1", 0.0)


def test_bad_parameters_rejected() -> None:
    with pytest.raises(ValueError, match="threshold"):
        BanList(threshold=0)
    with pytest.raises(ValueError, match="max_ban_time"):
        BanList(ban_time=10, max_ban_time=5)
    with pytest.raises(ValueError, match="max_tracked"):
        BanList(max_tracked=0)


def test_unban() -> None:
    bl = BanList()
    fail(bl, "192.0.2.3", 0.0, 5)
    assert bl.unban("192.0.2.3")
    assert not bl.is_banned("192.0.2.3", 10.0)
    assert not bl.unban("192.0.2.3")
    # History forgotten: next ban is a first ban.
    ban = fail(bl, "192.0.2.3", 20.0, 5)
    assert ban is not None
    assert ban.count == 1


def test_tracked_ip_cap_holds_under_random_flood() -> None:
    bl = BanList()  # default cap: 100,000
    rng = random.Random(1234)
    banned = fail(bl, "192.0.2.200", 0.0, 5)
    assert banned is not None
    sources = [ipaddress.IPv4Address(rng.getrandbits(32)) for _ in range(200_000)]
    started = time.perf_counter()
    for i, addr in enumerate(sources):
        bl.record_failure(addr, 10.0 + i * 1e-4, "untrusted source")
        if i % 1000 == 0:
            assert len(bl) <= 100_000
    elapsed = time.perf_counter() - started
    assert len(bl) == bl.max_tracked == 100_000
    # The oldest non-banned entries went first; the banned IP was kept.
    assert bl.is_banned("192.0.2.200", 30.0)
    assert bl.failures(sources[0], 30.0) == 0
    assert bl.failures(sources[-1], 30.0) == 1
    assert elapsed < 5.0


def test_cap_evicts_soonest_ban_when_all_are_banned() -> None:
    bl = BanList(threshold=1, max_tracked=3)
    for i, ip in enumerate(("192.0.2.1", "192.0.2.2", "192.0.2.3")):
        assert bl.record_failure(ip, float(i), "x") is not None
    assert bl.record_failure("192.0.2.4", 10.0, "x") is not None
    assert len(bl) == 3
    assert not bl.is_banned("192.0.2.1", 11.0)
    assert all(bl.is_banned(ip, 11.0) for ip in ("192.0.2.2", "192.0.2.3", "192.0.2.4"))


def test_restart_keeps_bans(tmp_path: Path) -> None:
    path = tmp_path / "bans.sqlite3"
    with BanStore(path) as store:
        bl = BanList(store=store)
        ban = fail(bl, "2001:db8::5", 0.0, 5)
        assert ban is not None
        short = fail(bl, "192.0.2.8", 100.0, 5)
        assert short is not None
        fail(bl, "192.0.2.9", 0.0, 4)  # partial count: not persisted
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
    with BanStore(path) as store:
        bl2 = BanList(store=store)
        restored = bl2.restore(50.0)
        assert sorted(restored, key=lambda b: b.ip) == sorted([ban, short], key=lambda b: b.ip)
        assert bl2.is_banned("2001:db8::5", 60.0)
        assert bl2.is_banned("192.0.2.8", 200.0)
        assert bl2.failures("192.0.2.9", 60.0) == 0
        # Repeat count survives: the next ban of the same IP doubles.
        assert not bl2.is_banned("2001:db8::5", ban.until)
        again = fail(bl2, "2001:db8::5", ban.until + 1, 5)
        assert again is not None
        assert again.count == 2
        bl2.unban("192.0.2.8")
    with BanStore(path) as store:
        loaded = store.load(ban.until + 10)
        assert [b.ip for b in loaded] == ["2001:db8::5"]
        assert loaded[0].count == 2
        # Expired bans are pruned from the file on load.
        assert store.load(again.until) == []
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM bans").fetchone()[0] == 0
    db.close()


def test_store_written_only_when_bans_start_or_end(tmp_path: Path) -> None:
    path = tmp_path / "bans.sqlite3"
    with BanStore(path) as store:
        writes: list[str] = []
        store._db.set_trace_callback(writes.append)
        bl = BanList(store=store)
        fail(bl, "192.0.2.1", 0.0, 4)
        assert writes == []
        ban = fail(bl, "192.0.2.1", 10.0, 1)
        assert ban is not None
        assert len(writes) == 1
        assert writes[0].startswith("INSERT")
        assert not bl.is_banned("192.0.2.1", ban.until)
        assert len(writes) == 2
        assert writes[1].startswith("DELETE")
        store._db.set_trace_callback(None)


def test_corrupt_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "bans.sqlite3"
    path.write_bytes(b"this is not a sqlite database at all" * 200)
    with pytest.raises(BanStoreError, match=r"bans\.sqlite3 is not usable: file is not a database"):
        BanStore(path)


def test_bad_rows_are_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "bans.sqlite3"
    BanStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO bans VALUES ('not-an-ip', 1e12, 1, 'x')")
    db.close()
    with BanStore(path) as store, pytest.raises(BanStoreError, match="bad address 'not-an-ip'"):
        store.load(0.0)


def test_wrong_schema_version_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "bans.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version=7")
    db.close()
    with pytest.raises(BanStoreError, match="schema version 7"):
        BanStore(path)


IPS = ["192.0.2.1", "::ffff:192.0.2.1", "2001:db8::1", "10.0.0.1", "198.51.100.2"]
EVENTS = st.lists(
    st.tuples(st.sampled_from(IPS), st.floats(min_value=0.0, max_value=2000.0)),
    max_size=60,
)


@settings(max_examples=100, deadline=None)
@given(events=EVENTS)
def test_property_ban_state_is_consistent(events: list[tuple[str, float]]) -> None:
    threshold, window = 3, 600.0
    bl = BanList(
        threshold=threshold,
        window=window,
        ban_time=300.0,
        max_ban_time=900.0,
        exempt=["10.0.0.0/8"],
    )
    now = 0.0
    history: dict[str, list[float]] = {}
    for ip, step in events:
        now += step
        key = str(normalize_ip(ip))
        was_banned = bl.is_banned(ip, now)
        ban = bl.record_failure(ip, now, "p")
        if key.startswith("10."):
            assert ban is None
            assert not bl.is_banned(ip, now)
            continue
        if was_banned:
            assert ban is None
            assert bl.is_banned(ip, now)
            continue
        history.setdefault(key, []).append(now)
        recent = [t for t in history[key] if t > now - window]
        if ban is not None:
            # Never banned with fewer than threshold failures inside the window.
            assert len(recent) >= threshold
            assert ban.ip == key
            assert 300.0 - 1e-6 <= ban.until - now <= 900.0 + 1e-6
            assert bl.is_banned(ip, now)
            history[key] = []
        else:
            assert len(recent) < threshold
            assert not bl.is_banned(ip, now)
    for b in bl.active_bans(now):
        assert b.until > now
        assert bl.is_banned(b.ip, now)
    assert len(bl) <= len(IPS)
