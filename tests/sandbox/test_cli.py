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
        stdout=asyncio.subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None
    try:
        lines = []
        for _ in range(12):
            line = (await asyncio.wait_for(proc.stdout.readline(), TIMEOUT)).decode()
            lines.append(line)
            if "777000" in line:
                break
        text = "".join(lines)
        match = re.search(r"listening on 127\.0\.0\.1:(\d+) \(dc (\d+)\)", text)
        assert match, text
        port, dc_id = int(match.group(1)), int(match.group(2))
        assert "fingerprint" in text
        assert "rsa.add_key" in text
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
            sent = await asyncio.wait_for(client.send_code_request("15558001"), TIMEOUT)
            assert sent.phone_code_hash
        finally:
            await asyncio.wait_for(client.disconnect(), TIMEOUT)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), TIMEOUT) == 0
