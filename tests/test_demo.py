"""``tgsip demo`` as a newcomer runs it: a real process narrating the gateway's steps against
the sandbox (real aiogram bot, Telethon session, SIP registration), exit status 0."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tgsip.demo import _call_skip_reason, _can_unshare, analyse, in_call_namespace


def demo(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tgsip", "demo", *args],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
        env={**os.environ, **(env or {})},
    )


def test_demo_narrates_the_bot_and_sip_steps(tmp_path: Path) -> None:
    proc = demo("--no-call", "--data-dir", str(tmp_path / "data"))
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr[-3000:]
    steps = [
        "[1] operator +15550000 opens @tgsip_admin_bot with /gateway",
        "[1] bot: ✅ Connected: session #1 @demo_gateway.",
        "[1] recommended setting applied: ✅ Allow calls from all users",
        "[2] operator creates a SIP line PBX→tgsip through the bot",
        "[2] Show account: server 127.0.0.1:",
        "registers: 200 OK",
        "[2] the line card shows: Registered: yes",
        "[3] call step skipped: --no-call",
        "demo finished: every step passed",
    ]
    positions = [out.find(s) for s in steps]
    assert all(p >= 0 for p in positions), out
    assert positions == sorted(positions), out
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert (tmp_path / "data" / "gateway.db").exists()


def test_a_failing_step_is_named_with_a_clear_message(tmp_path: Path) -> None:
    key = tmp_path / "bad.key"
    key.write_text("c2hvcnQ=")  # base64 of 5 bytes
    proc = demo(
        "--no-call", "--data-dir", str(tmp_path / "d"), env={"TGSIP_SECRET_KEY_FILE": str(key)}
    )
    assert proc.returncode == 1
    assert "FAILED (starting the gateway)" in proc.stdout, proc.stdout
    assert "must hold 32 bytes" in proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]


def test_keep_leaves_the_gateway_running_with_its_bot_token(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tgsip", "demo", "--keep", "--data-dir", str(tmp_path / "k")],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while not any(line.startswith("bot token") for line in lines):
            assert time.monotonic() < deadline, "".join(lines)
            line = proc.stdout.readline()
            assert line, "the demo exited:\n" + "".join(lines)
            lines.append(line)
        text = "".join(lines)
        assert "[3] call step skipped: --keep" in text
        assert "client.session.set_dc(2, '127.0.0.1', " in text
        api, token = lines[-1].split("(Bot API at ", 1)[1].split("): ")
        # The printed token works against the still running sandbox Bot API.
        with urllib.request.urlopen(f"{api}/bot{token.strip()}/getMe", timeout=10) as resp:
            me = json.load(resp)
        assert me["result"]["username"] == "tgsip_admin_bot"
    finally:
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, rest
    assert "stopping" in rest


def test_analyse_measures_a_tone() -> None:
    import math
    import struct

    rate = 48000
    amp = 32767 * 10 ** (-12 / 20) * math.sqrt(2)  # -12 dBFS RMS
    pcm = struct.pack(
        f"<{rate // 2}h",
        *(round(amp * math.sin(2 * math.pi * 440 * i / rate)) for i in range(rate // 2)),
    )
    freq, level = analyse(pcm, rate)
    assert freq == pytest.approx(440, abs=1)
    assert level == pytest.approx(-12.0, abs=0.1)
    assert analyse(b"", rate) == (0.0, -math.inf)


@pytest.mark.netns
@pytest.mark.skipif(
    not in_call_namespace(),
    reason="needs a network namespace with 127.0.0.2 on a non-loopback interface "
    "(WebRTC ignores lo): run `make test-calls` (root, scripts/netns-run)",
)
def test_full_demo_with_a_call_echoed_by_the_pbx() -> None:
    proc = demo()
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr[-3000:]
    assert "[3] Telegram user +15550202 calls @demo_gateway" in out
    assert "[3] the PBX answered the INVITE" in out
    assert "[3] the caller hears back 440 Hz at -1" in out  # -12 dBFS, within a dB
    assert "[3] the caller hangs up (hangup); the PBX got the BYE" in out
    assert "demo finished: every step passed" in out


def test_without_root_the_call_step_is_skipped_with_the_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert not _can_unshare()
    both = argparse.Namespace(no_call=False, keep=False)
    if in_call_namespace():
        assert _call_skip_reason(both) is None
    else:
        reason = _call_skip_reason(both)
        assert reason is not None
        assert "needs root and `unshare -n`" in reason
    assert _call_skip_reason(argparse.Namespace(no_call=True, keep=False)) == "--no-call"
