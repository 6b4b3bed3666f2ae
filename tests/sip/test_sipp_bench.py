"""``tgsip bench sip`` end to end with real SIPp (short stages)."""

from __future__ import annotations

import shutil

import pytest

from tgsip.bench.sip import run


@pytest.mark.peer
@pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp (sip-tester) is not installed")
def test_bench_sip_reports_measured_figures() -> None:
    result = run(0.3, quiet=True)
    assert result["failed"] == 0
    assert result["calls_per_second"] > 50
    assert result["registrations_per_second"] > 50
    assert 0 < result["sip_ua_cpu_percent"] <= 200
    assert isinstance(result["cpu"], str)
    assert result["cpu"]
    assert [s["offered_cps"] for s in result["stages"]][:2] == [250, 500]
    assert all(s["successful"] == s["calls"] for s in result["stages"])
