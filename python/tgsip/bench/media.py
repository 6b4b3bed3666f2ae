"""``tgsip bench media``: how many lines and calls one core carries, at what memory and quality.

Stages, all in one process on one machine so the ratios compare like with like:

1. *codec floor*: the bare codec work of one two-way Opus ⇄ G.711 call per 20 ms (Opus encode
   at 8 kHz, Opus decode to 8 kHz, G.711 both ways), no RTP, jitter buffer, DTMF or sockets.
2. *transcoding*: N calls, each an Opus line bridged to a G.711 (PCMA) line on one engine
   worker, both fed real speech over loopback UDP by a load generator thread at 20 ms ptime;
   jitter buffers and in-band DTMF detection on. The worker's thread CPU time over the run
   gives calls per core; divided by the codec floor it gives ``codec_floor_ratio``.
3. *relay*: N pairs of bridged PCMA lines (packets forwarded without decoding).
4. *memory*: resident-set growth per transcoding line, in a fresh process.
5. *quality*: PESQ (ITU-T P.862, narrowband) of speech after a round trip through two lines
   over loopback, for G.711 and for Opus, in real time.

CPU time of the load generator is not counted (it runs on its own thread); kernel work the
loopback does on the sender's side lands there too, so the figures are for the engine's thread.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from typing import Any

from tgsip.bench.machine import cpu_model, rss_bytes
from tgsip.media import EngineConfig, Line, LineConfig, MediaEngine, OpusSettings, g711
from tgsip.media.corpus import speech
from tgsip.media.loadgen import LoadGenerator, codec_floor_ns, encode_payloads

OPUS_PT = 111
#: Target load of the worker core while measuring: high enough to amortise the tick, low
#: enough that no deadline is missed.
TARGET_LOAD = 0.6


def _log(quiet: bool, msg: str) -> None:
    if not quiet:
        print(f"[bench media] {msg}", file=sys.stderr, flush=True)


def _worker_cpu_ns(engine: MediaEngine) -> int:
    return sum(w["cpu_ns"] for w in engine.worker_loads())


def _late_ticks(engine: MediaEngine) -> int:
    return sum(w["late_ticks"] for w in engine.worker_loads())


def _open_pairs(
    engine: MediaEngine, gen: LoadGenerator, n: int, transcode: bool
) -> tuple[list[Line], list[tuple[str, int, int, int]]]:
    """Opens ``n`` bridged pairs towards the generator's sockets: Opus ⇄ PCMA when
    ``transcode`` (jitter buffers on, DTMF detection on the G.711 side), else PCMA ⇄ PCMA
    relaying. Returns the lines and the generator's targets (payload set 0: Opus, 1: PCMA)."""
    addrs = gen.addresses
    lines: list[Line] = []
    targets: list[tuple[str, int, int, int]] = []
    for i in range(n):
        if transcode:
            a = engine.open_line(
                LineConfig(
                    codec="opus",
                    payload_type=OPUS_PT,
                    detect_inband_dtmf=False,
                    opus=OpusSettings(),
                    stats_interval_ms=0,
                )
            )
            b = engine.open_line(
                LineConfig(codec="PCMA", payload_type=8, stats_interval_ms=0), near=a
            )
        else:
            relay_cfg = LineConfig(
                codec="PCMA", payload_type=8, detect_inband_dtmf=False, stats_interval_ms=0
            )
            a = engine.open_line(relay_cfg)
            b = engine.open_line(relay_cfg, near=a)
        a.bridge(b)
        lines += [a, b]
        a.start(*addrs[2 * i])
        b.start(*addrs[2 * i + 1])
        ha, pa = a.local_address
        hb, pb = b.local_address
        if transcode:
            targets += [(ha, pa, OPUS_PT, 0), (hb, pb, 8, 1)]
        else:
            targets += [(ha, pa, 8, 1), (hb, pb, 8, 1)]
    return lines, targets


def _measure_calls(
    n: int, seconds: float, speech_8k: bytes, opus_packets: list[bytes], transcode: bool
) -> dict[str, float]:
    """Runs ``n`` bridged pairs on one worker; returns the worker's load and cost figures."""
    pcma = encode_payloads("PCMA", speech_8k, 8000)
    with MediaEngine(EngineConfig(workers=1)) as engine:
        gen = LoadGenerator(2 * n)
        lines, targets = _open_pairs(engine, gen, n, transcode)
        received0 = sum(int(line.stats()["packets_received"] or 0) for line in lines)
        cpu0 = _worker_cpu_ns(engine)
        late0 = _late_ticks(engine)
        t0 = time.monotonic()
        sent = gen.run(targets, [opus_packets, pcma], [960, 160], ptime_ms=20, seconds=seconds)
        wall = time.monotonic() - t0
        # The worker publishes its CPU time once per tick: let one more tick pass.
        time.sleep(0.03)
        cpu = _worker_cpu_ns(engine) - cpu0
        late = _late_ticks(engine) - late0
        received = sum(int(line.stats()["packets_received"] or 0) for line in lines) - received0
    load = cpu / 1e9 / wall
    # Pairs actually served: packets the engine received over the run, at 50 packets per second
    # per line and two lines per pair (the generator may fall short of the nominal rate).
    served = received / (2 * 50 * wall)
    return {
        "pairs": n,
        "served_pairs": served,
        "load": load,
        "ns_per_pair_frame": cpu / max(served * wall / 0.020, 1.0),
        "late_ticks": late,
        "packets_sent": sent["sent"],
        "packets_received": received,
    }


def _find_capacity(
    start: int,
    seconds: float,
    speech_8k: bytes,
    opus_packets: list[bytes],
    transcode: bool,
    quiet: bool,
) -> dict[str, float]:
    """Measures at ``start`` pairs, then once more near the target load."""
    kind = "transcode" if transcode else "relay"
    m = _measure_calls(start, seconds, speech_8k, opus_packets, transcode)
    _log(quiet, f"{kind} {start} pairs ({m['served_pairs']:.0f} served): load {m['load']:.2f}")
    if not 0.4 <= m["load"] <= 0.8 and m["load"] > 0:
        n = max(1, min(int(start * TARGET_LOAD / m["load"]), 4000))
        m = _measure_calls(n, seconds, speech_8k, opus_packets, transcode)
        _log(quiet, f"{kind} {n} pairs ({m['served_pairs']:.0f} served): load {m['load']:.2f}")
    return m


def memory_probe(pairs: int = 200, seconds: float = 2.0) -> float:
    """Resident-set growth per transcoding line: ``pairs`` Opus ⇄ PCMA bridges opened and fed
    for ``seconds`` (so every buffer has been touched). Run it in a fresh process: memory freed
    by earlier stages would otherwise be reused and hide the growth."""
    speech_8k = speech(10.0)
    opus_packets = encode_payloads("opus", speech_8k, 8000)
    pcma = encode_payloads("PCMA", speech_8k, 8000)
    rss0 = rss_bytes()
    with MediaEngine(EngineConfig(workers=1)) as engine:
        gen = LoadGenerator(2 * pairs)
        _, targets = _open_pairs(engine, gen, pairs, transcode=True)
        gen.run(targets, [opus_packets, pcma], [960, 160], ptime_ms=20, seconds=seconds)
        grown = rss_bytes() - rss0
    return grown / (2 * pairs)


def _memory_in_subprocess() -> float:
    code = "import tgsip.bench.media as m; print(m.memory_probe())"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    return float(out.stdout.strip().splitlines()[-1])


async def _round_trip(engine: MediaEngine, cfg: LineConfig, pcm: bytes) -> bytes:
    """Plays ``pcm`` into one line, over loopback RTP into a second, and records what comes out,
    in real time (10 ms frames paced by the loop's clock)."""
    tx = engine.open_line(cfg, pcm_endpoint=True)
    rx = engine.open_line(cfg, pcm_endpoint=True)
    tx.start(*rx.local_address)
    rx.start(*tx.local_address)
    frame = tx.frame_bytes
    frames = len(pcm) // frame
    tail = 30  # 300 ms for the jitter buffer to drain
    out: list[bytes] = []
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    for i in range(frames + tail):
        chunk = pcm[i * frame : (i + 1) * frame] if i < frames else bytes(frame)
        tx.push_pcm(chunk)
        out.append(rx.pull_pcm())
        delay = t0 + (i + 1) * 0.010 - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
    engine.close_line(tx)
    engine.close_line(rx)
    return b"".join(out)


def _pesq(reference: bytes, degraded: bytes) -> float:
    import numpy as np
    from pesq import pesq  # type: ignore[import-untyped]

    ref = np.frombuffer(reference, dtype="<i2").astype(np.float32)
    deg = np.frombuffer(degraded, dtype="<i2").astype(np.float32)
    return float(pesq(8000, ref, deg[: len(ref) + 8000], "nb"))


async def _quality(speech_8k: bytes) -> tuple[float, float]:
    with MediaEngine(EngineConfig(workers=1)) as engine:
        g711 = LineConfig(codec="PCMA", payload_type=8, stats_interval_ms=0)
        opus = LineConfig(codec="opus", payload_type=OPUS_PT, stats_interval_ms=0)
        out_g, out_o = await asyncio.gather(
            _round_trip(engine, g711, speech_8k), _round_trip(engine, opus, speech_8k)
        )
    return _pesq(speech_8k, out_g), _pesq(speech_8k, out_o)


def run(seconds: float | None = None, quiet: bool = False) -> dict[str, Any]:
    """Runs every stage and returns the result object."""
    seconds = seconds or 5.0
    speech_8k = speech(60.0)
    opus_packets = encode_payloads("opus", speech_8k, 8000)
    complexity = OpusSettings().complexity
    floor_ns = codec_floor_ns(speech_8k, opus_packets, complexity=complexity)
    _log(quiet, f"codec floor: {floor_ns / 1000:.1f} µs per call per 20 ms")

    trans = _find_capacity(100, seconds, speech_8k, opus_packets, True, quiet)
    relay = _find_capacity(500, seconds, speech_8k, opus_packets, False, quiet)
    bytes_per_line = _memory_in_subprocess()
    _log(quiet, f"memory: {bytes_per_line / 1024:.1f} KiB per transcoding line")

    clip = speech(8.0)
    pesq_g711, pesq_opus = asyncio.run(_quality(clip))
    # The codec alone on the same clip: what the engine's path is compared with.
    pesq_g711_codec = _pesq(clip, g711.decode("alaw", g711.encode("alaw", clip)))
    _log(
        quiet,
        f"PESQ G.711 {pesq_g711:.2f} (codec alone {pesq_g711_codec:.2f}), Opus {pesq_opus:.2f}",
    )

    return {
        "cpu": cpu_model(),
        "g711_relay_lines_per_core": round(2 * relay["served_pairs"] / relay["load"]),
        "opus_g711_calls_per_core": round(trans["served_pairs"] / trans["load"]),
        "opus_complexity": complexity,
        "bytes_per_line": round(bytes_per_line),
        "pesq_g711": round(pesq_g711, 3),
        "pesq_opus": round(pesq_opus, 3),
        "pesq_g711_codec_only": round(pesq_g711_codec, 3),
        "codec_floor_ratio": round(trans["ns_per_pair_frame"] / floor_ns, 3),
        "codec_floor_us_per_call": round(floor_ns / 1000, 2),
        "engine_us_per_call": round(trans["ns_per_pair_frame"] / 1000, 2),
        "transcode_calls_measured": trans["pairs"],
        "transcode_calls_served": round(trans["served_pairs"], 1),
        "transcode_worker_load": round(trans["load"], 3),
        "transcode_late_ticks": trans["late_ticks"],
        "relay_lines_measured": 2 * relay["pairs"],
        "relay_lines_served": round(2 * relay["served_pairs"], 1),
        "relay_worker_load": round(relay["load"], 3),
        "relay_late_ticks": relay["late_ticks"],
        "seconds_per_stage": seconds,
    }


__all__ = ["memory_probe", "run"]
