"""``tgsip run`` as a user starts it: a real process, its configuration file, a clean stop."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


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
    assert (data / "sandbox" / "rsa_public.pem").read_text().startswith("-----BEGIN")
    assert "configuration store" in proc.stderr
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
