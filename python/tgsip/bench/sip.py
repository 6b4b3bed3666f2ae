"""``tgsip bench sip``: SIPp drives our UAS on loopback; one JSON-able dict of figures.

Our :class:`~tgsip.sip.ua.UserAgent` runs in this process on uvloop (pinned to CPU 0 when
the machine has two or more); SIPp runs as a child (pinned to CPU 1 with ``taskset`` when
available). Calls use SIPp's built-in ``uac`` scenario over UDP (INVITE, 100, 180, 200, ACK,
BYE, 200) at increasing rates; each stage runs ``rate * seconds`` calls and the step-up stops at
the first stage with a failed call. Registrations use a small REGISTER/200 scenario written to
a temporary directory (our UA keeps bindings in memory, without authentication).

``calls_per_second`` is the best achieved rate (successful calls / wall time of the SIPp run)
over stages with zero failed calls; ``failed`` counts the failed calls of every stage run, which
can only come from ``overload``, the first stage that lost calls, where the step-up stopped
(None when every rate held); ``sip_ua_cpu_percent`` is this process's CPU time divided
by wall time over all call stages (100 = one core).
"""

from __future__ import annotations

import asyncio
import gc
import os
import re
import resource
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tgsip.bench.machine import cpu_model
from tgsip.sip.ua import UserAgent

__all__ = ["RATES", "run", "sipp_counts"]

RATES = (250, 500, 1000, 1500, 2000, 3000)

REGISTER_XML = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="register">
  <send retrans="500">
    <![CDATA[
      REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:user[call_number]@[remote_ip]>;tag=[pid]SIPpTag[call_number]
      To: <sip:user[call_number]@[remote_ip]>
      Call-ID: [call_id]
      CSeq: 1 REGISTER
      Contact: <sip:user[call_number]@[local_ip]:[local_port]>
      Expires: 60
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
</scenario>
"""


def sipp_counts(directory: Path) -> tuple[int, int]:
    """(successful, failed) calls from the newest SIPp ``-trace_screen`` log in ``directory``."""
    logs = sorted(directory.glob("*_screen.log"), key=lambda p: p.stat().st_mtime)
    if not logs:
        return (0, 0)
    text = logs[-1].read_text(errors="replace")
    ok = re.findall(r"Successful call\s*\|\s*\d+\s*\|\s*(\d+)", text)
    bad = re.findall(r"Failed call\s*\|\s*\d+\s*\|\s*(\d+)", text)
    return (int(ok[-1]) if ok else 0, int(bad[-1]) if bad else 0)


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def _sipp(args: list[str], cwd: Path, limit: float, pin: bool) -> tuple[int, float]:
    for old in cwd.glob("*_screen.log"):
        old.unlink()
    cmd = ["sipp", *args]
    if pin and shutil.which("taskset"):
        cmd = ["taskset", "-c", "1", *cmd]
    t0 = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with asyncio.timeout(limit):
            rc = await proc.wait()
    except TimeoutError:
        proc.kill()
        rc = await proc.wait()
    return rc, time.perf_counter() - t0


async def _main(seconds: float, quiet: bool, work: Path, pin: bool) -> dict[str, Any]:
    ua = UserAgent("127.0.0.1")
    await ua.start(udp_port=0)
    gc.freeze()  # long-lived start-up objects leave the collector's scans
    port = ua.ports["UDP"]
    stages: list[dict[str, Any]] = []
    best = 0.0
    failed_total = 0
    overload: dict[str, Any] | None = None
    cpu_used = 0.0
    wall_used = 0.0
    try:
        for rate in RATES:
            calls = max(1, int(rate * seconds))
            args = ["-sn", "uac", f"127.0.0.1:{port}", "-i", "127.0.0.1"]
            args += ["-p", str(_free_udp_port()), "-m", str(calls), "-r", str(rate)]
            args += ["-l", str(max(calls, 100)), "-d", "0", "-nostdin", "-trace_screen"]
            args += ["-timeout", f"{int(seconds * 3 + 10)}s", "-timeout_error"]
            c0 = _cpu()
            rc, wall = await _sipp(args, work, seconds * 3 + 15, pin)
            cpu = _cpu() - c0
            ok, failed = sipp_counts(work)
            failed += calls - ok - failed if rc != 0 and ok + failed < calls else 0
            achieved = ok / wall if wall > 0 else 0.0
            stage = {
                "offered_cps": rate,
                "calls": calls,
                "successful": ok,
                "failed": failed,
                "achieved_cps": round(achieved, 1),
                "sip_ua_cpu_percent": round(100 * cpu / wall, 1),
                "sipp_rc": rc,
            }
            stages.append(stage)
            if not quiet:
                print(stage, file=sys.stderr)
            cpu_used += cpu
            wall_used += wall
            if failed or rc != 0:
                overload = {"offered_cps": rate, "failed": failed, "sipp_rc": rc}
                failed_total += failed
                break
            best = max(best, achieved)
        # registrations
        (work / "register.xml").write_text(REGISTER_XML)
        regs = max(1, int(1000 * seconds))
        args = ["-sf", "register.xml", f"127.0.0.1:{port}", "-i", "127.0.0.1"]
        args += ["-p", str(_free_udp_port()), "-m", str(regs), "-r", "1000"]
        args += ["-l", str(regs), "-nostdin", "-trace_screen"]
        args += ["-timeout", f"{int(seconds * 3 + 10)}s", "-timeout_error"]
        rc, wall = await _sipp(args, work, seconds * 3 + 15, pin)
        rok, rfail = sipp_counts(work)
    finally:
        await ua.close()
    return {
        "calls_per_second": round(best, 1),
        "registrations_per_second": round(rok / wall, 1) if rfail == 0 and rc == 0 else None,
        "registrations_failed": rfail,
        "failed": failed_total,
        "cpu": cpu_model(),
        "sip_ua_cpu_percent": round(100 * cpu_used / wall_used, 1) if wall_used else None,
        "overload": overload,
        "stages": stages,
        "transport": "UDP",
        "loop": type(asyncio.get_running_loop()).__module__.split(".")[0],
    }


def run(seconds: float | None = None, quiet: bool = False) -> dict[str, Any]:
    """Run the SIP benchmark (``seconds`` per stage, default 5) and return its figures.

    Needs ``sipp`` (Debian ``sip-tester``); without it every figure is None and ``error`` says
    why.
    """
    secs = 5.0 if seconds is None else seconds
    if shutil.which("sipp") is None:
        return {
            "calls_per_second": None,
            "registrations_per_second": None,
            "failed": None,
            "cpu": cpu_model(),
            "sip_ua_cpu_percent": None,
            "error": "sipp (Debian package sip-tester) is not installed",
        }
    pin = (os.cpu_count() or 1) >= 2 and hasattr(os, "sched_setaffinity")
    old_affinity = os.sched_getaffinity(0) if pin else None
    if pin:
        os.sched_setaffinity(0, {0})
    try:
        with tempfile.TemporaryDirectory(prefix="tgsip-bench-sip-") as d:
            try:
                import uvloop

                return uvloop.run(_main(secs, quiet, Path(d), pin))
            except ImportError:
                return asyncio.run(_main(secs, quiet, Path(d), pin))
    finally:
        if old_affinity is not None:
            os.sched_setaffinity(0, old_affinity)
