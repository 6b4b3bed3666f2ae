"""``tgsip bench media`` end to end, briefly: the command runs and its JSON has every key.

The figures themselves are measured with ``make bench`` (longer stages); here each stage runs
half a second so the harness is exercised on every test run without judging the machine.
"""

from __future__ import annotations

import json
import subprocess
import sys

KEYS = {
    "cpu",
    "g711_relay_lines_per_core",
    "opus_g711_calls_per_core",
    "opus_complexity",
    "bytes_per_line",
    "pesq_g711",
    "pesq_opus",
    "codec_floor_ratio",
}


def test_bench_media_prints_one_json_object() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tgsip", "bench", "media", "--json", "--seconds", "0.5"],
        capture_output=True,
        text=True,
        timeout=240,
        check=True,
    )
    result = json.loads(proc.stdout)
    assert result.keys() >= KEYS
    assert result["opus_g711_calls_per_core"] > 0
    assert result["g711_relay_lines_per_core"] > 0
    assert 0 < result["bytes_per_line"] < 16 * 1024 * 1024
    # Speech through two lines is still speech (PESQ 1.0 would be noise).
    assert result["pesq_g711"] > 2.5
    assert result["pesq_opus"] > 2.5
    assert result["codec_floor_ratio"] > 0
