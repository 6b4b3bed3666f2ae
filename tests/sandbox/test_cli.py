"""``python -m tgsip.sandbox`` starts standalone and tells a client how to connect."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

from telethon import TelegramClient
from telethon.crypto import rsa
from telethon.sessions import StringSession

from tgsip.sandbox import DEFAULT_API_HASH, DEFAULT_API_ID

from .conftest import TIMEOUT

ROOT = Path(__file__).resolve().parents[2]


async def test_standalone_server_prints_instructions(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "python"))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tgsip.sandbox",
        "--port",
        "0",
        "--data-dir",
        str(tmp_path),
        "--user",
        "15558001:Lena:lena",
        "--bot",
        "cli_bot:CLI",
        "--bot-api-port",
        "0",
        "--print-codes",
        "--reflector-port",
        "0",
        stdout=asyncio.subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None
    try:
        lines = []
        for _ in range(20):
            line = (await asyncio.wait_for(proc.stdout.readline(), TIMEOUT)).decode()
            lines.append(line)
            if "bot tokens" in line:
                break
        text = "".join(lines)
        match = re.search(r"listening on 127\.0\.0\.1:(\d+) \(dc (\d+)\)", text)
        assert match, text
        port, dc_id = int(match.group(1)), int(match.group(2))
        assert "fingerprint" in text
        assert "rsa.add_key" in text
        assert "Bot API: http://127.0.0.1:" in text
        assert re.search(r"call reflector: udp 127\.0\.0\.1:\d+", text), text
        tokens = (tmp_path / "bot_tokens.txt").read_text().split()
        assert tokens[0] == "cli_bot"
        assert tokens[1] not in text  # tokens go to a 0600 file, not to the log
        rsa.add_key((tmp_path / "rsa_public.pem").read_text(), old=False)
        client = TelegramClient(
            StringSession(),
            DEFAULT_API_ID,
            DEFAULT_API_HASH,
            timeout=5,
            connection_retries=1,
            retry_delay=0,
        )
        client.session.set_dc(dc_id, "127.0.0.1", port)
        await asyncio.wait_for(client.connect(), TIMEOUT)
        try:
            await asyncio.wait_for(client.send_code_request("15558001"), TIMEOUT)
            line = (await asyncio.wait_for(proc.stdout.readline(), TIMEOUT)).decode()
            code = re.fullmatch(r"login code for \+15558001: (\d+)\n", line)
            assert code, line
            me = await asyncio.wait_for(client.sign_in("15558001", code.group(1)), TIMEOUT)
            assert me.username == "lena"
        finally:
            await asyncio.wait_for(client.disconnect(), TIMEOUT)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), TIMEOUT) == 0
