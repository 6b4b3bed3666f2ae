"""``tgsip run`` as a user starts it: a real process, its configuration file, a clean stop."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from telethon import TelegramClient
from telethon.sessions import StringSession

from tgsip.sandbox import trust_key
from tgsip.sandbox.sandbox import DEFAULT_API_HASH, DEFAULT_API_ID


def run_gateway(tmp_path: Path, config: str, *args: str) -> subprocess.CompletedProcess[str]:
    cfg = tmp_path / "tgsip.toml"
    cfg.write_text(config)
    return subprocess.run(
        [sys.executable, "-m", "tgsip", "run", "--config", str(cfg), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_runs_on_embedded_defaults_against_the_sandbox(tmp_path: Path) -> None:
    data = tmp_path / "data"
    proc = run_gateway(
        tmp_path,
        f"""
data_dir = "{data}"
[media]
port_min = 44000
port_max = 44999
[sip]
host = "127.0.0.1"
udp_port = 0
tcp_port = 0
[sandbox]
port = 0
bot_api_port = 0
""",
        "--for",
        "1.5",
    )
    assert proc.returncode == 0, proc.stderr
    assert "running against the local sandbox" in proc.stderr
    assert "gateway running" in proc.stderr
    assert "administrator bot polling" in proc.stderr
    assert " ERROR " not in proc.stderr, proc.stderr
    assert (data / "sandbox" / "rsa_public.pem").read_text().startswith("-----BEGIN")
    assert "configuration store" in proc.stderr
    assert "set sandbox.print_codes = true to see them" in proc.stderr  # this command's option
    assert (data / "gateway.db").exists()
    assert (data / "secret.key").stat().st_mode & 0o777 == 0o600


def test_a_wrong_secret_key_is_a_clear_error(tmp_path: Path) -> None:
    key = tmp_path / "bad.key"
    key.write_text("c2hvcnQ=")  # base64 of 5 bytes
    cfg = tmp_path / "tgsip.toml"
    cfg.write_text(f'data_dir = "{tmp_path / "data"}"\n[sandbox]\nport = 0\nbot_api_port = 0\n')
    proc = subprocess.run(
        [sys.executable, "-m", "tgsip", "run", "--config", str(cfg), "--for", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "TGSIP_SECRET_KEY_FILE": str(key)},
    )
    assert proc.returncode == 2
    assert "must hold 32 bytes" in proc.stderr


def test_bad_configuration_is_a_clear_error(tmp_path: Path) -> None:
    proc = run_gateway(tmp_path, "[media]\nworkerz = 2\n")
    assert proc.returncode == 2
    assert "invalid configuration" in proc.stderr
    assert "workerz" in proc.stderr


async def _read_until(
    stream: asyncio.StreamReader, pattern: str, log: list[str], limit: float
) -> str:
    """Reads log lines (bounded in time) until one matches ``pattern``; returns the match."""
    async with asyncio.timeout(limit):
        while True:
            raw = await stream.readline()
            if not raw:
                raise AssertionError("the gateway exited:\n" + "".join(log[-30:]))
            line = raw.decode(errors="replace")
            log.append(line)
            m = re.search(pattern, line)
            if m is not None:
                return m.group(1)


async def test_the_admin_bot_answers_start_from_a_sandbox_user(tmp_path: Path) -> None:
    """``tgsip run`` against the sandbox: the sandbox operator signs in with a real Telethon
    client, writes /start to the administrator bot and gets the main menu; SIGTERM stops the
    gateway cleanly."""
    data = tmp_path / "data"
    cfg = tmp_path / "tgsip.toml"
    cfg.write_text(
        f"""
data_dir = "{data}"
[media]
port_min = 44000
port_max = 44999
[sip]
host = "127.0.0.1"
udp_port = 0
tcp_port = 0
[sandbox]
port = 0
bot_api_port = 0
print_codes = true
"""
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tgsip",
        "run",
        "--config",
        str(cfg),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    log: list[str] = []
    client: TelegramClient | None = None
    try:
        port = int(
            await _read_until(proc.stderr, r"sandbox listening on 127\.0\.0\.1:(\d+)", log, 30)
        )
        bot_name = await _read_until(proc.stderr, r"administrator bot is @(\w+)", log, 60)
        phone = await _read_until(proc.stderr, r"operator (\+\d+)", log, 10)
        await _read_until(proc.stderr, r"(gateway running)", log, 30)
        trust_key((data / "sandbox" / "rsa_public.pem").read_text())
        client = TelegramClient(
            StringSession(), DEFAULT_API_ID, DEFAULT_API_HASH, connection_retries=1, timeout=5
        )
        client.session.set_dc(2, "127.0.0.1", port)
        await asyncio.wait_for(client.connect(), 15)
        await asyncio.wait_for(client.send_code_request(phone), 15)
        code = await _read_until(proc.stderr, r"login code for \+\d+: (\d+)", log, 15)
        await asyncio.wait_for(client.sign_in(phone, code), 15)
        sent = await asyncio.wait_for(client.send_message("@" + bot_name, "/start"), 15)
        reply = None
        loop = asyncio.get_running_loop()
        end = loop.time() + 20
        while reply is None and loop.time() < end:
            async with asyncio.timeout(5):
                msgs = await client.get_messages("@" + bot_name, limit=5)
            reply = next((m for m in msgs if m.id > sent.id and not m.out), None)
            if reply is None:
                await asyncio.sleep(0.2)
        assert reply is not None, "the bot did not answer /start"
        assert reply.buttons, reply.message
    finally:
        if client is not None:
            await client.disconnect()
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        rest = await asyncio.wait_for(proc.stderr.read(), 30)
        log.append(rest.decode(errors="replace"))
        code_ = await asyncio.wait_for(proc.wait(), 30)
    text = "".join(log)
    assert code_ == 0, text[-3000:]
    assert "stopping" in text
    assert "Traceback" not in text, text[-3000:]
    assert " ERROR " not in text, text[-3000:]
